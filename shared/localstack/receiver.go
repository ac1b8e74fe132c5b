package localstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

// Invoker runs one payload through the Lambda runtime's JSON path; the
// lambda.Handler returned by lambda.NewHandler is one.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

var _ Invoker = lambda.NewHandler(func(context.Context, json.RawMessage) (any, error) { return nil, nil })

// Delivery is one webhook POST as the receiver saw it.
type Delivery struct {
	// Body is the request body exactly as MinIO sent it.
	Body []byte
	// Err is the handler's error; nil means the receiver answered 2xx.
	Err error
	// Received is when the POST's body was read; At is when the handler returned.
	Received, At time.Time
}

// Receiver is the http.Handler MinIO's webhook target posts bucket
// notifications to. Each POST body is handed, unchanged, to the invoker
// (the same handler code that runs in Lambda, through the runtime's JSON
// path). A handler error, or an SQS-style response that reports failed
// items, is answered with 500 so MinIO keeps the event in its queue and
// retries it; success is answered with 200. HEAD and GET answer 200 (health).
type Receiver struct {
	invoker Invoker
	logger  *slog.Logger
	observe func(Delivery)
	timeout time.Duration
}

var _ http.Handler = (*Receiver)(nil)

// ReceiverOptions configure NewReceiver.
type ReceiverOptions struct {
	// Logger receives one line per delivery; nil discards.
	Logger *slog.Logger
	// Observe, when set, is called after every POST (from the request's
	// goroutine); tests use it to capture bodies for replay.
	Observe func(Delivery)
	// Timeout bounds one invocation (default 5 minutes).
	Timeout time.Duration
}

// maxBody bounds a webhook body; MinIO sends one record per POST.
const maxBody = 8 << 20

// NewReceiver returns a Receiver that invokes inv.
func NewReceiver(inv Invoker, opts ReceiverOptions) *Receiver {
	r := &Receiver{invoker: inv, logger: opts.Logger, observe: opts.Observe, timeout: opts.Timeout}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Minute
	}
	return r
}

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodHead, http.MethodGet:
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodPost:
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		http.Error(w, "localstack: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "localstack: body too large", http.StatusRequestEntityTooLarge)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.timeout)
	defer cancel()
	start := time.Now()
	resp, err := r.Invoke(ctx, body)
	if r.observe != nil {
		r.observe(Delivery{Body: body, Err: err, Received: start, At: time.Now()})
	}
	if err != nil {
		r.logger.Warn("localstack: event delivery failed; MinIO will retry", "err", err, "duration", time.Since(start))
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.logger.Debug("localstack: event delivered", "duration", time.Since(start), "bytes", len(body))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// ErrHandler is returned (wrapped) by Receiver.Invoke when the handler failed.
var ErrHandler = errors.New("localstack: handler failed")

// Invoke runs one payload through the invoker and turns a handler error or a
// response with batch item failures into an error wrapping ErrHandler.
func (r *Receiver) Invoke(ctx context.Context, body []byte) ([]byte, error) {
	resp, err := r.invoker.Invoke(ctx, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandler, err)
	}
	var partial struct {
		BatchItemFailures []json.RawMessage `json:"batchItemFailures"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(resp), []byte("{")) && json.Unmarshal(resp, &partial) == nil && len(partial.BatchItemFailures) > 0 {
		return nil, fmt.Errorf("%w: %d batch item failure(s): %s", ErrHandler, len(partial.BatchItemFailures), resp)
	}
	return resp, nil
}

// EventServer serves a Receiver on a TCP address until closed.
type EventServer struct {
	srv *http.Server
	ln  net.Listener
	err chan error
}

// ListenEvents starts serving rec on addr (host:port; port 0 picks one) and
// returns once it is listening.
func ListenEvents(addr string, rec *Receiver) (*EventServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("localstack: listen for events on %s: %w", addr, err)
	}
	s := &EventServer{
		srv: &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second},
		ln:  ln,
		err: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.err <- err
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *EventServer) Addr() string { return s.ln.Addr().String() }

// Done returns a channel that receives the serve error (nil after Close).
func (s *EventServer) Done() <-chan error { return s.err }

// Close stops accepting requests and waits up to ctx for in-flight ones.
func (s *EventServer) Close(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("localstack: stop event server: %w", err)
	}
	return nil
}
