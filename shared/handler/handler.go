// Package handler is the Lambda handler shared by the onCreate and onDelete
// functions: it decodes the invocation payload (see package events), applies
// every object event through the replication engine, concurrently across keys
// and in delivery order per key, and answers the way the trigger expects:
// partial batch failures for SQS, an error for a failed direct invocation.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/metrics"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// Applier applies one object event; *replication.Engine satisfies it.
type Applier interface {
	// Apply records and replicates one event (see replication.Engine.Apply).
	Apply(ctx context.Context, ev events.ObjectEvent) (replication.Outcome, error)
	// Perform does the work of a dispatched sync request (see
	// replication.Engine.Perform).
	Perform(ctx context.Context, req events.SyncRequest) (replication.Outcome, error)
	// Concurrency is the engine's cap on copies in flight; the handler
	// runs at most that many keys at once.
	Concurrency() int
}

var _ Applier = (*replication.Engine)(nil)

// Rejecter records events that can never succeed (events.ErrInvalid);
// *registry.Store satisfies it.
type Rejecter interface {
	// RecordRejected stores the rejections, all or none.
	RecordRejected(ctx context.Context, rs []registry.Rejection) error
}

var _ Rejecter = (*registry.Store)(nil)

// ErrForeignBucket: an event names a bucket other than the primary. Such
// records are counted and logged, never retried (retrying cannot help).
var ErrForeignBucket = errors.New("handler: event for a bucket other than the primary")

// ErrFailed is wrapped by the error Handle returns for a direct invocation
// in which some record failed.
var ErrFailed = errors.New("handler: invocation failed")

// Options configure a Handler.
type Options struct {
	// PrimaryBucket is the only bucket whose events are acted on. Required.
	PrimaryBucket string
	// Function names the function in logs ("onCreate", "onDelete").
	Function string
	// Expect is the event kind the function is subscribed to; a record of
	// another kind is still applied (the engine acts on each record's
	// actual kind) but logged as a warning. KindUnknown expects either.
	Expect events.Kind
	// Logger receives JSON logs. Default slog.Default().
	Logger *slog.Logger
	// Rejecter records invalid events (events.ErrInvalid) once, so their
	// messages are acknowledged instead of retried until the dead-letter
	// queue. When recording fails the message fails (and is retried), so
	// nothing is lost. Nil: invalid events are only logged and counted.
	Rejecter Rejecter
	// Metrics receives one CloudWatch EMF line (metrics.NameRejectedEvents)
	// per invocation that rejected events. Default os.Stdout (where Lambda
	// turns EMF into metrics).
	Metrics io.Writer
}

// Handler handles invocations. It is safe for concurrent use and keeps no
// state between invocations.
type Handler struct {
	engine Applier
	opts   Options
	log    *slog.Logger
}

// New returns a Handler applying events through engine.
func New(engine Applier, opts Options) (*Handler, error) {
	if engine == nil {
		return nil, errors.New("handler: engine is nil")
	}
	if opts.PrimaryBucket == "" {
		return nil, errors.New("handler: Options.PrimaryBucket is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = os.Stdout
	}
	log := opts.Logger
	if opts.Function != "" {
		log = log.With("function", opts.Function)
	}
	return &Handler{engine: engine, opts: opts, log: log}, nil
}

// Summary counts what one invocation did. Every record lands in exactly one
// of the outcome counters; Received counts records (object events,
// unsupported records and test events) plus undecodable messages.
type Summary struct {
	Received         int `json:"received"`
	Requests         int `json:"sync_requests"` // of Received: dispatched sync requests
	Synced           int `json:"synced"`
	Deleted          int `json:"deleted"`
	Stale            int `json:"stale"`
	InProgress       int `json:"in_progress"`
	Ignored          int `json:"ignored"`
	ForeignBucket    int `json:"foreign_bucket"`
	Unsupported      int `json:"unsupported"`
	TestEvents       int `json:"test_events"`
	MissingOnPrimary int `json:"missing_on_primary"`
	Kept             int `json:"kept"`
	Held             int `json:"held"`
	Deferred         int `json:"deferred"`
	// Invalid counts records that can never succeed (events.ErrInvalid):
	// recorded as rejected, never retried.
	Invalid   int `json:"invalid"`
	Malformed int `json:"malformed"`
	Failed    int `json:"failed"`
	// FailedMessages are the SQS message ids reported as batch item failures.
	FailedMessages []string `json:"failed_messages,omitempty"`
}

func (s *Summary) count(o replication.Outcome) {
	switch o {
	case replication.OutcomeSynced:
		s.Synced++
	case replication.OutcomeDeleted:
		s.Deleted++
	case replication.OutcomeStale:
		s.Stale++
	case replication.OutcomeInProgress:
		s.InProgress++
	case replication.OutcomeIgnored:
		s.Ignored++
	case replication.OutcomeMissingOnPrimary:
		s.MissingOnPrimary++
	case replication.OutcomeKept:
		s.Kept++
	case replication.OutcomeHeld:
		s.Held++
	case replication.OutcomeDeferred:
		s.Deferred++
	default:
		s.Failed++
	}
}

// Handle processes one invocation payload. For an SQS event it returns an
// events.SQSEventResponse listing exactly the messages that failed (could
// not be decoded, or an event in them failed retryably) and a nil error. For
// a direct invocation it returns the Summary, and an error wrapping ErrFailed
// if any record failed (so Lambda retries the invocation). Records for
// another bucket, unsupported event names, test events and keys of no data
// type are counted and logged, never failures. Invalid records (see
// events.ErrInvalid) are recorded through Options.Rejecter and are not
// failures either: retrying them can never help.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	log := h.log
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		log = log.With("request_id", lc.AwsRequestID)
	}
	batch, err := events.Parse(payload)
	if err != nil {
		log.ErrorContext(ctx, "undecodable payload", "error", err, "bytes", len(payload))
		return Summary{Received: 1, Malformed: 1}, fmt.Errorf("%w: %w", ErrFailed, err)
	}
	sum, failed := h.process(ctx, log, batch)
	if batch.FromSQS {
		resp := lambdaevents.SQSEventResponse{BatchItemFailures: []lambdaevents.SQSBatchItemFailure{}}
		for i, m := range batch.Messages {
			if failed[i] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, lambdaevents.SQSBatchItemFailure{ItemIdentifier: m.ID})
				sum.FailedMessages = append(sum.FailedMessages, m.ID)
			}
		}
		log.InfoContext(ctx, "invocation done", "source", "sqs", "messages", len(batch.Messages), "summary", sum)
		return resp, nil
	}
	log.InfoContext(ctx, "invocation done", "source", "direct", "summary", sum)
	if failed[0] {
		return sum, fmt.Errorf("%w: %d failed, %d malformed of %d records", ErrFailed, sum.Failed, sum.Malformed, sum.Received)
	}
	return sum, nil
}

// work is one object event to apply, or one sync request to perform, with
// the message it came from.
type work struct {
	msg int
	ev  events.ObjectEvent
	req *events.SyncRequest
}

func (w work) key() string {
	if w.req != nil {
		return w.req.Key
	}
	return w.ev.Key
}

// process applies every event of the batch and reports, per message,
// whether it failed.
func (h *Handler) process(ctx context.Context, log *slog.Logger, batch events.Batch) (Summary, []bool) {
	var sum Summary
	failed := make([]bool, max(len(batch.Messages), 1))

	// Group the events per key, keeping delivery order within a key.
	type group struct{ items []work }
	var order []string
	groups := map[string]*group{}
	for i, m := range batch.Messages {
		mlog := log
		if m.ID != "" {
			mlog = log.With("message_id", m.ID)
		}
		sum.Received += len(m.Events) + len(m.Unsupported) + len(m.Syncs) + m.Skipped
		sum.Requests += len(m.Syncs)
		sum.TestEvents += m.Skipped
		if m.Skipped > 0 {
			mlog.InfoContext(ctx, "s3:TestEvent received; nothing to do", "count", m.Skipped)
		}
		for _, u := range m.Unsupported {
			sum.Unsupported++
			mlog.WarnContext(ctx, "unsupported event; not acted on", "error", events.ErrUnsupported,
				"event", u.EventName, "bucket", u.Bucket, "key", u.Key)
		}
		if m.Err != nil {
			sum.Received++
			sum.Malformed++
			failed[i] = true
			mlog.ErrorContext(ctx, "undecodable message", "error", m.Err)
		}
		if len(m.Verifies) > 0 {
			// Verification requests belong to the verify workers' queue.
			sum.Received += len(m.Verifies)
			sum.Malformed++
			failed[i] = true
			mlog.ErrorContext(ctx, "verification requests sent to the copy worker; failed (its dead-letter queue keeps them)",
				"requests", len(m.Verifies))
		}
		sum.Received += len(m.Invalid)
		for _, ev := range m.Events {
			if ev.Bucket != h.opts.PrimaryBucket {
				sum.ForeignBucket++
				mlog.ErrorContext(ctx, "event for a bucket that is not the primary; not replicated, not retried",
					"error", ErrForeignBucket, "bucket", ev.Bucket, "primary_bucket", h.opts.PrimaryBucket,
					"key", ev.Key, "event", ev.EventName)
				continue
			}
			if h.opts.Expect != events.KindUnknown && ev.Kind != h.opts.Expect {
				mlog.WarnContext(ctx, "function received an event of the other kind; applying it anyway",
					"expected", h.opts.Expect.String(), "kind", ev.Kind.String(), "event", ev.EventName, "key", ev.Key)
			}
			k := ev.Key
			g := groups[k]
			if g == nil {
				g = &group{}
				groups[k] = g
				order = append(order, k)
			}
			g.items = append(g.items, work{msg: i, ev: ev})
		}
		for j := range m.Syncs {
			w := work{msg: i, req: &m.Syncs[j]}
			k := w.key()
			g := groups[k]
			if g == nil {
				g = &group{}
				groups[k] = g
				order = append(order, k)
			}
			g.items = append(g.items, w)
		}
	}

	type result struct {
		msg     int
		outcome replication.Outcome
		err     error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		slots   = make(chan struct{}, max(h.engine.Concurrency(), 1))
	)
	for _, k := range order {
		g := groups[k]
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			for _, w := range g.items {
				o, err := h.apply(ctx, log, w)
				mu.Lock()
				results = append(results, result{msg: w.msg, outcome: o, err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	h.reject(ctx, log, batch, &sum, failed)
	for _, r := range results {
		if r.err != nil {
			sum.Failed++
			failed[r.msg] = true
			continue
		}
		sum.count(r.outcome)
	}
	return sum, failed
}

// reject records the batch's invalid records (events.ErrInvalid) for the
// primary bucket and counts them. Invalid records of another bucket are
// counted as foreign. If they cannot be recorded, their messages fail so
// that the rejection is retried rather than lost.
func (h *Handler) reject(ctx context.Context, log *slog.Logger, batch events.Batch, sum *Summary, failed []bool) {
	var (
		rs   []registry.Rejection
		msgs []int
	)
	for i, m := range batch.Messages {
		for _, r := range m.Invalid {
			ev := r.Event
			if ev.Bucket != h.opts.PrimaryBucket {
				sum.ForeignBucket++
				continue
			}
			sum.Invalid++
			log.ErrorContext(ctx, "invalid event; rejected, not retried", "error", r.Err, "message_id", m.ID,
				"event", ev.EventName, "key", ev.Key, "size", ev.Size, "sequencer", ev.Sequencer)
			rs = append(rs, registry.Rejection{
				Function: h.opts.Function, MessageID: m.ID, EventName: ev.EventName, Bucket: ev.Bucket,
				Key: ev.Key, Size: ev.Size, Sequencer: ev.Sequencer, VersionID: ev.VersionID, Reason: r.Err.Error(),
			})
			msgs = append(msgs, i)
		}
	}
	if len(rs) == 0 {
		return
	}
	if h.opts.Rejecter != nil {
		if err := h.opts.Rejecter.RecordRejected(ctx, rs); err != nil {
			log.ErrorContext(ctx, "cannot record rejected events; their messages will be retried", "error", err, "count", len(rs))
			for _, i := range msgs {
				failed[i] = true
			}
			sum.Invalid -= len(rs)
			sum.Failed += len(rs)
			return
		}
	}
	if err := metrics.WriteCounts(h.opts.Metrics, map[string]int64{metrics.NameRejectedEvents: int64(len(rs))}, time.Now()); err != nil {
		log.WarnContext(ctx, "cannot write metrics", "error", err)
	}
}

// apply runs one event or sync request through the engine, turning a panic
// into an error so one bad record can not take the whole invocation down.
func (h *Handler) apply(ctx context.Context, log *slog.Logger, w work) (o replication.Outcome, err error) {
	if w.req != nil {
		return h.perform(ctx, log, *w.req)
	}
	defer func() {
		if p := recover(); p != nil {
			o, err = replication.OutcomeFailed, fmt.Errorf("handler: panic applying %s %q: %v", w.ev.EventName, w.ev.Key, p)
			log.ErrorContext(ctx, "panic while applying event", "error", err)
		}
	}()
	o, err = h.engine.Apply(ctx, w.ev)
	attrs := []any{"event", w.ev.EventName, "kind", w.ev.Kind.String(), "key", w.ev.Key,
		"sequencer", w.ev.Sequencer, "outcome", o.String()}
	if err != nil {
		log.ErrorContext(ctx, "event failed; will be retried", append(attrs, "error", err, "retryable", replication.IsRetryable(err))...)
		return o, err
	}
	log.DebugContext(ctx, "event applied", attrs...)
	return o, nil
}

// perform runs one sync request through the engine. A failed copy is not a
// failed message: the engine recorded it on the row, whose retry time
// decides when the dispatcher sends it again (redelivering the message
// would skip the backoff). Only a registry failure (the outcome could not
// be read or written) fails the message, so SQS delivers it again.
func (h *Handler) perform(ctx context.Context, log *slog.Logger, req events.SyncRequest) (o replication.Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			o, err = replication.OutcomeFailed, fmt.Errorf("handler: panic performing sync request %q: %v", req.Key, p)
			log.ErrorContext(ctx, "panic while performing sync request", "error", err)
		}
	}()
	o, err = h.engine.Perform(ctx, req)
	attrs := []any{"request", "sync", "data_type", req.DataType, "key", req.Key, "generation", req.Generation, "outcome", o.String()}
	switch {
	case err == nil:
		log.DebugContext(ctx, "sync request done", attrs...)
		return o, nil
	case errors.Is(err, replication.ErrRegistry):
		log.ErrorContext(ctx, "sync request failed; will be redelivered", append(attrs, "error", err)...)
		return o, err
	}
	log.WarnContext(ctx, "sync request failed; the row retries after its backoff", append(attrs, "error", err)...)
	return replication.OutcomeFailed, nil
}
