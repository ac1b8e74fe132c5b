// Package sigv4proxy lets an operator use the console and API of a deployed
// stack: the api function sits behind a Lambda function URL with AuthType
// AWS_IAM, so every request must be signed with SigV4 (service "lambda").
// Transport signs requests with credentials from the standard chain; Proxy
// serves the console on 127.0.0.1 and forwards every browser request, signed,
// to the function URL, so no credential ever reaches the browser.
// `geoblob console -aws URL` runs it.
package sigv4proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// Service is the SigV4 service name of Lambda function URLs.
const Service = "lambda"

// maxBody bounds a request body the transport buffers to hash it.
const maxBody = 6 << 20 // Lambda's synchronous payload limit

// Transport signs every request with SigV4 and sends it through Base.
type Transport struct {
	// Base sends the signed request; nil = http.DefaultTransport.
	Base http.RoundTripper
	// Credentials are retrieved (and refreshed) per request.
	Credentials aws.CredentialsProvider
	// Region is the function URL's region.
	Region string
	// Now is the signing clock; nil = time.Now.
	Now func() time.Time
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip signs a copy of r (the body is read to hash it) and sends it.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	body := []byte{}
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("sigv4proxy: read body: %w", err)
		}
		if len(b) > maxBody {
			return nil, fmt.Errorf("sigv4proxy: request body over %d bytes", maxBody)
		}
		body = b
	}
	out := r.Clone(r.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.Header.Del("Authorization")
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	out.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := t.Credentials.Retrieve(r.Context())
	if err != nil {
		return nil, fmt.Errorf("sigv4proxy: credentials: %w", err)
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, out, hash, Service, t.Region, now()); err != nil {
		return nil, fmt.Errorf("sigv4proxy: sign: %w", err)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// RegionOf returns the region of a function URL
// (https://<id>.lambda-url.<region>.on.aws/).
func RegionOf(u *url.URL) (string, error) {
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) == 5 && parts[1] == "lambda-url" && parts[3] == "on" && parts[4] == "aws" {
		return parts[2], nil
	}
	return "", fmt.Errorf("sigv4proxy: %s is not a Lambda function URL (https://<id>.lambda-url.<region>.on.aws/)", u)
}

// NewTransport returns a Transport for the function URL target with
// credentials from the standard chain (environment, shared config and SSO
// profiles, instance and container roles). region "" = the URL's.
func NewTransport(ctx context.Context, target *url.URL, region string) (*Transport, error) {
	if region == "" {
		r, err := RegionOf(target)
		if err != nil {
			return nil, err
		}
		region = r
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("sigv4proxy: aws config: %w", err)
	}
	if cfg.Credentials == nil {
		return nil, errors.New("sigv4proxy: no AWS credentials found")
	}
	return &Transport{Credentials: cfg.Credentials, Region: region}, nil
}

// browserOnly are request headers of the browser that must not reach the
// function: its credentials for other sites and hop-by-hop details.
var browserOnly = []string{"Cookie", "Authorization", "Proxy-Authorization"}

// Proxy serves the console of target on the local listener: every request
// is forwarded to target through rt (a signing Transport). It answers only
// requests addressed to a loopback host (no DNS rebinding) and refuses
// state-changing cross-origin requests (a page on another site must not
// make the operator's credentials resync anything); the function applies
// the same cross-origin check to the forwarded Sec-Fetch-Site header.
func Proxy(target *url.URL, rt http.RoundTripper) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			for _, h := range browserOnly {
				pr.Out.Header.Del(h)
			}
		},
		Transport: rt,
	}
	guarded := http.NewCrossOriginProtection().Handler(rp)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if ip := net.ParseIP(host); !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
			http.Error(w, "sigv4proxy: only loopback hosts are served", http.StatusForbidden)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}
