package s3test

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fault is what a FaultProxy does with one request. The zero value
// forwards the request untouched.
type Fault struct {
	// Status, when non-zero, answers the request with this HTTP status and an
	// S3 XML error body (after draining the request body) instead of
	// forwarding it. 500 and 503 are retryable for the SDK.
	Status int
	// Cut closes the client connection after CutAfter bytes of the request
	// body have been read, without any response: a network failure in the
	// middle of an upload. Nothing is forwarded.
	Cut      bool
	CutAfter int64
	// CutResponse forwards the request but closes the connection after
	// CutAfter bytes of the response body (headers, with the full
	// Content-Length, already sent): a download that breaks half way.
	CutResponse bool
	// Corrupt forwards the request with the request-body byte at offset
	// CorruptAt inverted (length unchanged): a bit flip in transit.
	Corrupt   bool
	CorruptAt int64
}

// FaultProxy is a reverse proxy in front of an S3 endpoint that injects
// faults chosen by a rule and counts requests per S3 operation.
type FaultProxy struct {
	url  string
	rule func(*http.Request) Fault

	requests atomic.Int64
	injected atomic.Int64
	mu       sync.Mutex
	byOp     map[string]int64
}

// NewFaultProxy starts a proxy to target (an endpoint URL) that asks rule
// about every request before forwarding it; rule may be called
// concurrently. The Host header is kept so SigV4 signatures made for the
// proxy still verify on the target. The proxy stops when the test ends.
func NewFaultProxy(t testing.TB, target string, rule func(*http.Request) Fault) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err, "s3test: fault proxy target")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p := &FaultProxy{rule: rule, byOp: map[string]int64{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.count(r)
		f := Fault{}
		if p.rule != nil {
			f = p.rule(r)
		}
		switch {
		case f.Cut:
			p.injected.Add(1)
			_, _ = io.CopyN(io.Discard, r.Body, f.CutAfter)
			hj, ok := w.(http.Hijacker)
			if !ok {
				cannotCut(w)
				return
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case f.CutResponse:
			p.injected.Add(1)
			rp.ServeHTTP(&cutWriter{ResponseWriter: w, left: f.CutAfter}, r)
		case f.Corrupt:
			p.injected.Add(1)
			r.Body = &corruptReader{r: r.Body, at: f.CorruptAt}
			rp.ServeHTTP(w, r)
		case f.Status != 0:
			p.injected.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			code := "InternalError"
			if f.Status == http.StatusServiceUnavailable {
				code = "SlowDown"
			}
			writeS3Error(w, f.Status, code, "injected by s3test.FaultProxy")
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		tr.CloseIdleConnections()
	})
	p.url = srv.URL
	return p
}

// cannotCut answers when the connection cannot be hijacked (HTTP/2), so a
// cut degrades to an error response instead of a crash.
func cannotCut(w http.ResponseWriter) {
	writeS3Error(w, http.StatusInternalServerError, "InternalError", "s3test: cannot cut an HTTP/2 connection")
}

// corruptReader inverts the byte at offset at.
type corruptReader struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (c *corruptReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if i := c.at - c.off; i >= 0 && i < int64(n) {
		b[i] ^= 0xff
	}
	c.off += int64(n)
	return n, err
}

func (c *corruptReader) Close() error { return c.r.Close() }

// cutWriter passes left bytes of the response body, then closes the
// connection under the client.
type cutWriter struct {
	http.ResponseWriter
	left int64
	cut  bool
}

func (w *cutWriter) Write(b []byte) (int, error) {
	if w.cut {
		return 0, net.ErrClosed
	}
	if int64(len(b)) <= w.left {
		w.left -= int64(len(b))
		return w.ResponseWriter.Write(b)
	}
	n, _ := w.ResponseWriter.Write(b[:w.left])
	w.left = 0
	w.cut = true
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush()
	if conn, _, err := rc.Hijack(); err == nil {
		_ = conn.Close()
	}
	return n, net.ErrClosed
}

// Flush forwards to the underlying writer.
func (w *cutWriter) Flush() {
	if !w.cut {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Endpoint is the proxy's URL, to use as the client's endpoint.
func (p *FaultProxy) Endpoint() string { return p.url }

// Requests is the number of requests received so far.
func (p *FaultProxy) Requests() int64 { return p.requests.Load() }

// Injected is the number of requests that were failed by a fault.
func (p *FaultProxy) Injected() int64 { return p.injected.Load() }

// OpCount is the number of requests of the S3 operation op (see Op) received so far.
func (p *FaultProxy) OpCount(op string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byOp[op]
}

func (p *FaultProxy) count(r *http.Request) {
	p.requests.Add(1)
	op := Op(r)
	p.mu.Lock()
	p.byOp[op]++
	p.mu.Unlock()
}

// S3 operation names returned by Op.
const (
	OpPutObject               = "PutObject"
	OpUploadPart              = "UploadPart"
	OpCreateMultipartUpload   = "CreateMultipartUpload"
	OpCompleteMultipartUpload = "CompleteMultipartUpload"
	OpAbortMultipartUpload    = "AbortMultipartUpload"
	OpPutObjectTagging        = "PutObjectTagging"
	OpGetObjectTagging        = "GetObjectTagging"
	OpGetObject               = "GetObject"
	OpHeadObject              = "HeadObject"
	OpDeleteObject            = "DeleteObject"
	OpListObjects             = "ListObjects"
	OpOther                   = "Other"
)

// Op names the S3 operation of a path-style request (object operations
// only; bucket-level requests other than listings are OpOther).
func Op(r *http.Request) string {
	q := r.URL.Query()
	_, hasKey := splitPath(r.URL.Path)
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch {
	case !hasKey && r.Method == http.MethodGet && !has("location") && !has("versioning") && !has("notification"):
		return OpListObjects
	case !hasKey:
		return OpOther
	case has("tagging") && r.Method == http.MethodPut:
		return OpPutObjectTagging
	case has("tagging") && r.Method == http.MethodGet:
		return OpGetObjectTagging
	case r.Method == http.MethodPut && has("uploadId") && has("partNumber"):
		return OpUploadPart
	case r.Method == http.MethodPost && has("uploads"):
		return OpCreateMultipartUpload
	case r.Method == http.MethodPost && has("uploadId"):
		return OpCompleteMultipartUpload
	case r.Method == http.MethodDelete && has("uploadId"):
		return OpAbortMultipartUpload
	case r.Method == http.MethodPut && r.Header.Get("x-amz-copy-source") == "":
		return OpPutObject
	case r.Method == http.MethodGet:
		return OpGetObject
	case r.Method == http.MethodHead:
		return OpHeadObject
	case r.Method == http.MethodDelete:
		return OpDeleteObject
	}
	return OpOther
}

func splitPath(p string) (bucket string, hasKey bool) {
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			return p[1:i], i+1 < len(p)
		}
	}
	if len(p) > 1 {
		return p[1:], false
	}
	return "", false
}

// FailOp returns a rule that applies f to every request of the S3
// operation op (a persistent fault: SDK retries fail too).
func FailOp(op string, f Fault) func(*http.Request) Fault {
	return func(r *http.Request) Fault {
		if Op(r) == op {
			return f
		}
		return Fault{}
	}
}

// FailNth returns a rule that applies f to the n-th (1-based) request of
// the S3 operation op only (a transient fault: an SDK retry gets through).
func FailNth(op string, n int64, f Fault) func(*http.Request) Fault {
	var seen atomic.Int64
	return func(r *http.Request) Fault {
		if Op(r) == op && seen.Add(1) == n {
			return f
		}
		return Fault{}
	}
}
