package sigv4proxy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/sigv4proxy"
)

const region = "us-west-2"

var operator = aws.Credentials{AccessKeyID: "AKIAOPERATOR", SecretAccessKey: "operator-secret"}

// verify checks r's SigV4 signature the way the function URL does: it signs
// a request made of the signed headers only, with the same signer, at the
// request's X-Amz-Date, and compares; the body must hash to the signed
// payload hash.
func verify(r *http.Request, body []byte, creds aws.Credentials) error {
	auth := r.Header.Get("Authorization")
	_, signedList, ok := strings.Cut(auth, "SignedHeaders=")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+creds.AccessKeyID+"/") || !ok {
		return fmt.Errorf("no SigV4 authorization for %s: %q", creds.AccessKeyID, auth)
	}
	signedList, _, _ = strings.Cut(signedList, ",")
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if r.Header.Get("X-Amz-Content-Sha256") != hash {
		return fmt.Errorf("payload hash %s does not match the body's %s", r.Header.Get("X-Amz-Content-Sha256"), hash)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	again.ContentLength = r.ContentLength
	for _, h := range strings.Split(signedList, ";") {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, again, hash, sigv4proxy.Service, region, at); err != nil {
		return err
	}
	if got := again.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, got)
	}
	return nil
}

type seen struct {
	method, path, cookie, body string
}

// functionURL is a stand-in of the function URL: it verifies every request
// with creds and answers 403 (as AWS_IAM does) when the signature is wrong.
func functionURL(t *testing.T, creds aws.Credentials) (*httptest.Server, *atomic.Pointer[seen], *atomic.Int64) {
	last := &atomic.Pointer[seen]{}
	hits := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := verify(r, body, creds); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		last.Store(&seen{r.Method, r.URL.RequestURI(), r.Header.Get("Cookie"), string(body)})
		fmt.Fprint(w, `{"verified":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, last, hits
}

func proxyTo(t *testing.T, target string, base http.RoundTripper) *httptest.Server {
	u, err := url.Parse(target)
	require.NoError(t, err)
	rt := &sigv4proxy.Transport{Base: base, Credentials: credentials.StaticCredentialsProvider{Value: operator}, Region: region}
	p := httptest.NewServer(sigv4proxy.Proxy(u, rt))
	t.Cleanup(p.Close)
	return p
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProxySignsEveryRequest(t *testing.T) {
	t.Parallel()
	fn, last, _ := functionURL(t, operator)
	p := proxyTo(t, fn.URL, nil)

	code, body := do(t, "GET", p.URL+"/api/v1/status?x=1%2F2", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, &seen{"GET", "/api/v1/status?x=1%2F2", "", ""}, last.Load())

	code, body = do(t, "POST", p.URL+"/api/v1/rows/7/resync", `{"dry_run":false}`,
		map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Cookie": "session=browser"})
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, &seen{"POST", "/api/v1/rows/7/resync", "", `{"dry_run":false}`}, last.Load(),
		"signed body arrives; the browser's cookies do not")
}

func TestVerifierRejectsBadSignatures(t *testing.T) {
	t.Parallel()
	// Signed with other credentials than the function expects.
	fn, _, _ := functionURL(t, aws.Credentials{AccessKeyID: "AKIAOPERATOR", SecretAccessKey: "another-secret"})
	code, body := do(t, "GET", proxyTo(t, fn.URL, nil).URL+"/api/v1/status", "", nil)
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "signature mismatch")

	// Body changed after signing.
	fn, _, _ = functionURL(t, operator)
	tamper := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Body = io.NopCloser(strings.NewReader(`{"all":true}`))
		r.ContentLength = int64(len(`{"all":true}`))
		return http.DefaultTransport.RoundTrip(r)
	})
	code, body = do(t, "POST", proxyTo(t, fn.URL, tamper).URL+"/api/v1/bulk", `{"all":false}`, map[string]string{"Sec-Fetch-Site": "same-origin"})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "payload hash")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestProxyRefusesOtherSitesAndHosts(t *testing.T) {
	t.Parallel()
	fn, _, hits := functionURL(t, operator)
	p := proxyTo(t, fn.URL, nil)
	code, _ := do(t, "POST", p.URL+"/api/v1/bulk", `{"all":true}`, map[string]string{"Sec-Fetch-Site": "cross-site"})
	assert.Equal(t, http.StatusForbidden, code, "a page on another site can not resync through the proxy")
	code, _ = do(t, "POST", p.URL+"/api/v1/bulk", `{"all":true}`, map[string]string{"Origin": "https://evil.example"})
	assert.Equal(t, http.StatusForbidden, code)
	code, _ = do(t, "GET", p.URL+"/api/v1/status", "", map[string]string{"Host": "evil.example"})
	assert.Equal(t, http.StatusForbidden, code, "DNS rebinding: only loopback hosts")
	assert.Zero(t, hits.Load(), "nothing reached the function")
}

func TestRegionOf(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/")
	r, err := sigv4proxy.RegionOf(u)
	require.NoError(t, err)
	assert.Equal(t, "eu-west-1", r)
	u, _ = url.Parse("https://example.com/")
	_, err = sigv4proxy.RegionOf(u)
	assert.Error(t, err)
}
