package sqsspool

import (
	"bytes"
	"context"
	"crypto/subtle"
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

// Invoker delivers one payload (an SQS event's JSON) to a function and
// returns the function's response: the delivery interface of the queue.
// The lambda.Handler returned by lambda.NewHandler is one (the runtime's
// JSON path in process); a client of the Lambda Runtime Interface Emulator
// running the function's real binary can be another.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

var _ Invoker = lambda.NewHandler(func(context.Context, json.RawMessage) (any, error) { return nil, nil })

// Delivery is one spooled message as one invocation saw it.
type Delivery struct {
	// Body is the webhook body exactly as MinIO sent it (the SQS
	// message's body).
	Body []byte
	// MessageID is the spool id (the SQS messageId); ReceiveCount is the
	// ApproximateReceiveCount of this delivery; BatchSize is how many
	// messages the invocation carried.
	MessageID    string
	ReceiveCount int
	BatchSize    int
	// Err is non-nil (wrapping ErrHandler) when the message failed: the
	// handler errored, or listed it in batchItemFailures.
	Err error
	// Spooled is when the receiver stored the body; Received is when the
	// invocation started, At when the handler returned.
	Spooled, Received, At time.Time
}

// Enqueuer stores a webhook body durably and returns its message id; *Queue
// is one.
type Enqueuer interface {
	Append(body []byte) (string, error)
}

var _ Enqueuer = (*Queue)(nil)

// Receiver is the http.Handler MinIO's webhook target posts bucket
// notifications to: the SQS SendMessage of the local stack. Each POST body
// is appended, unchanged, to the spool (fsync'd) and answered 200 with its
// message id; a body the spool cannot persist is answered 503, so no event
// is acknowledged before it is on disk. A POST must carry the stack's
// secret as MinIO's webhook sends it (Authorization: Bearer <token>, from
// MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>); others are answered 401 and never
// spooled. HEAD and GET answer 200 and touch nothing (liveness checks).
// Invoke runs a body through the handler directly.
type Receiver struct {
	queue   Enqueuer
	invoker Invoker
	auth    []byte // "Bearer <token>"; nil refuses every POST
	logger  *slog.Logger
}

var _ http.Handler = (*Receiver)(nil)

// ReceiverOptions configure NewReceiver.
type ReceiverOptions struct {
	// Token is the per-stack secret every POST must carry as
	// "Authorization: Bearer <Token>". Empty refuses every POST.
	Token string
	// Logger receives one line per refused POST; nil discards.
	Logger *slog.Logger
}

// maxBody bounds a webhook body; MinIO sends one record per POST, and an
// SQS message holds at most 256 KiB.
const maxBody = 256 << 10

// NewReceiver returns a Receiver that spools into queue; inv serves Invoke.
func NewReceiver(queue Enqueuer, inv Invoker, opts ReceiverOptions) *Receiver {
	r := &Receiver{queue: queue, invoker: inv, logger: opts.Logger}
	if opts.Token != "" {
		r.auth = []byte("Bearer " + opts.Token)
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
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
	if r.auth == nil || subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), r.auth) != 1 {
		r.logger.Warn("sqsspool: POST without the stack's token; refused", "remote", req.RemoteAddr)
		http.Error(w, "sqsspool: missing or wrong authorization", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		http.Error(w, "sqsspool: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "sqsspool: body too large", http.StatusRequestEntityTooLarge)
		return
	}
	id, err := r.queue.Append(body)
	if err != nil {
		r.logger.Error("sqsspool: cannot spool event; refused", "error", err, "bytes", len(body))
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "{\"MessageId\":%q}\n", id)
}

// ErrHandler is returned (wrapped) when the handler failed a message.
var ErrHandler = errors.New("sqsspool: handler failed")

// Invoke runs one payload through the invoker directly (no spool) and
// turns a handler error or a response with batch item failures into an
// error wrapping ErrHandler. Tests replay captured bodies with it.
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

// ListenEvents starts serving rec (a *Receiver, possibly behind a mux) on
// addr (host:port; port 0 picks one) and returns once it is listening.
func ListenEvents(addr string, rec http.Handler) (*EventServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sqsspool: listen for events on %s: %w", addr, err)
	}
	s := &EventServer{
		srv: &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute},
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
		return fmt.Errorf("sqsspool: stop event server: %w", err)
	}
	return nil
}
