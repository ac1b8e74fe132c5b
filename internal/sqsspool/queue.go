package sqsspool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// QueueOptions configure OpenQueue. Zero values take the defaults, which
// mirror an SQS queue with a redrive policy and a Lambda event source
// mapping.
type QueueOptions struct {
	// Dir is the spool directory; DeadLetterDir receives messages that
	// failed MaxReceives times. Both are required.
	Dir, DeadLetterDir string
	// Invoker runs one SQS event JSON through the handler (the Lambda
	// runtime's JSON path). Required.
	Invoker Invoker
	// BatchSize is the most messages per invocation (default 10, SQS's
	// event source mapping default).
	BatchSize int
	// Concurrency is the most invocations in flight (default 2).
	Concurrency int
	// MaxReceives is the redrive policy's maxReceiveCount (default 5).
	MaxReceives int
	// Visibility is how long a failed message stays invisible after its
	// first failure; it doubles with each further failure, up to
	// MaxVisibility (defaults 2 s and 1 min).
	Visibility, MaxVisibility time.Duration
	// Timeout bounds one invocation (default 5 minutes).
	Timeout time.Duration
	// ShutdownGrace is how long Run waits for the invocations in flight
	// once its context ends; then their contexts are cancelled and Run
	// waits for them to return (default 30 s).
	ShutdownGrace time.Duration
	// Logger receives one line per failed message and per dead letter;
	// nil discards.
	Logger *slog.Logger
	// Observe, when set, is called once per message after each
	// invocation (from the dispatcher; it must not block for long).
	Observe func(Delivery)
}

// Queue is the local stand-in for S3 -> SQS -> Lambda: the receiver
// appends MinIO's webhook bodies to its spool (Append), and Run drains the
// spool in batches, handing each batch to the handler as a real SQS event
// and acting on the SQSEventResponse's batchItemFailures the way the
// event source mapping does: succeeded messages are deleted, failed ones
// become visible again after a growing visibility timeout and go to the
// dead-letter directory after MaxReceives receives. Per key, messages are
// delivered one at a time in arrival order (like an SQS FIFO message
// group): a later event for a key waits while an earlier one is in flight
// or waiting for its retry.
type Queue struct {
	o       QueueOptions
	spool   *spool
	pending []*spoolMessage // spool order; owned by Run
	log     *slog.Logger
}

// OpenQueue opens (creating if needed) the spool in o.Dir and loads the
// messages a previous run left in it; they are delivered when Run starts.
func OpenQueue(o QueueOptions) (*Queue, error) {
	if o.Dir == "" || o.DeadLetterDir == "" || o.Invoker == nil {
		return nil, errors.New("sqsspool: QueueOptions.Dir, DeadLetterDir and Invoker are required")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 10
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.MaxReceives <= 0 {
		o.MaxReceives = 5
	}
	if o.Visibility <= 0 {
		o.Visibility = 2 * time.Second
	}
	if o.MaxVisibility < o.Visibility {
		o.MaxVisibility = max(time.Minute, o.Visibility)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sp, msgs, err := openSpool(o.Dir, o.DeadLetterDir)
	if err != nil {
		return nil, err
	}
	if len(msgs) > 0 {
		log.Info("sqsspool: spool holds messages from an earlier run; delivering them", "messages", len(msgs), "dir", o.Dir)
	}
	return &Queue{o: o, spool: sp, pending: msgs, log: log}, nil
}

// Append stores a webhook body durably and returns its message id; the
// receiver answers 2xx only after it returned nil.
func (q *Queue) Append(body []byte) (string, error) { return q.spool.Append(body) }

// batchResult is what one invocation reports back to the dispatcher.
type batchResult struct {
	msgs     []*spoolMessage
	failed   map[string]string // message id -> reason
	started  time.Time
	finished time.Time
}

// Run delivers spooled messages until ctx ends, then waits (up to
// ShutdownGrace) for the invocations in flight, cancels the ones still
// running and waits for them to return: no invocation outlives Run.
// Messages not acknowledged by then stay in the spool and are delivered by
// the next Run.
func (q *Queue) Run(ctx context.Context) error {
	// Buffered for every invocation in flight, so a result is never left
	// with no one to receive it.
	results := make(chan batchResult, q.o.Concurrency)
	invokeCtx, cancelInvocations := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		cancelInvocations()
		wg.Wait()
	}()
	inFlight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var errs []error
	settle := func(r batchResult) {
		inFlight--
		if err := q.settle(r); err != nil {
			errs = append(errs, err)
			q.log.Error("sqsspool: spool bookkeeping failed", "error", err)
		}
	}
	for {
		q.merge(q.spool.take())
		if ctx.Err() != nil {
			break
		}
		for inFlight < q.o.Concurrency {
			batch := q.nextBatch(time.Now())
			if len(batch) == 0 {
				break
			}
			inFlight++
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- q.invoke(invokeCtx, batch)
			}()
		}
		wake := q.nextVisible()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !wake.IsZero() {
			timer.Reset(max(time.Until(wake), time.Millisecond))
		}
		select {
		case <-q.spool.wake:
		case r := <-results:
			settle(r)
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	grace := time.NewTimer(q.o.ShutdownGrace)
	defer grace.Stop()
	for inFlight > 0 {
		select {
		case r := <-results:
			settle(r)
		case <-grace.C:
			q.log.Warn("sqsspool: invocations still running at shutdown; cancelled, their messages stay spooled", "in_flight", inFlight)
			cancelInvocations()
			wg.Wait()
			// Their results are buffered; none is settled, so the
			// messages stay in the spool for the next Run.
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// merge inserts new messages into pending, keeping seq order.
func (q *Queue) merge(msgs []*spoolMessage) {
	for _, m := range msgs {
		i := sort.Search(len(q.pending), func(i int) bool { return q.pending[i].seq > m.seq })
		q.pending = append(q.pending, nil)
		copy(q.pending[i+1:], q.pending[i:])
		q.pending[i] = m
	}
}

// nextBatch picks up to BatchSize visible messages, oldest first, at most
// one per ordering group, skipping groups whose oldest message is in
// flight or invisible; it marks them in flight.
func (q *Queue) nextBatch(now time.Time) []*spoolMessage {
	var batch []*spoolMessage
	blocked := map[string]bool{}
	for _, m := range q.pending {
		if len(batch) == q.o.BatchSize {
			break
		}
		if m.group != "" && blocked[m.group] {
			continue
		}
		if m.group != "" {
			blocked[m.group] = true
		}
		if m.inFlight || m.visibleAt.After(now) {
			continue
		}
		m.inFlight = true
		batch = append(batch, m)
	}
	return batch
}

// nextVisible is the earliest time a waiting message becomes visible
// (zero if none is waiting).
func (q *Queue) nextVisible() time.Time {
	var t time.Time
	for _, m := range q.pending {
		if !m.inFlight && !m.visibleAt.IsZero() && (t.IsZero() || m.visibleAt.Before(t)) {
			t = m.visibleAt
		}
	}
	return t
}

// sqsEvent builds the SQS event JSON the event source mapping would send.
func (q *Queue) sqsEvent(batch []*spoolMessage, now time.Time) ([]byte, error) {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	for i, m := range batch {
		sent := m.spooledAt
		if sent.IsZero() {
			sent = now
		}
		ev.Records[i] = events.SQSMessage{
			MessageId:     m.id(),
			ReceiptHandle: m.id() + "#" + strconv.Itoa(m.receives+1),
			Body:          string(m.body),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(m.receives + 1),
				"SentTimestamp":                    strconv.FormatInt(sent.UnixMilli(), 10),
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(now.UnixMilli(), 10),
				"SenderId":                         "minio",
			},
			MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSourceARN:    "arn:aws:sqs:local:000000000000:geoblob-events",
			EventSource:       "aws:sqs",
			AWSRegion:         "local",
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("sqsspool: encode sqs event: %w", err)
	}
	return b, nil
}

// invoke runs one batch through the handler and reports which messages
// failed, the way the event source mapping reads the response: a handler
// error or an unreadable response fails the whole batch; otherwise exactly
// the batchItemFailures fail.
func (q *Queue) invoke(ctx context.Context, batch []*spoolMessage) batchResult {
	r := batchResult{msgs: batch, failed: map[string]string{}, started: time.Now()}
	fail := func(reason string) {
		for _, m := range batch {
			r.failed[m.id()] = reason
		}
	}
	payload, err := q.sqsEvent(batch, r.started)
	if err != nil {
		fail(err.Error())
		r.finished = time.Now()
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, q.o.Timeout)
	defer cancel()
	resp, err := q.o.Invoker.Invoke(ctx, payload)
	r.finished = time.Now()
	if err != nil {
		fail("invocation failed: " + err.Error())
		return r
	}
	var out events.SQSEventResponse
	if !bytes.HasPrefix(bytes.TrimSpace(resp), []byte("{")) || json.Unmarshal(resp, &out) != nil {
		fail(fmt.Sprintf("invalid handler response: %.200s", resp))
		return r
	}
	ids := map[string]bool{}
	for _, m := range batch {
		ids[m.id()] = true
	}
	for _, f := range out.BatchItemFailures {
		if !ids[f.ItemIdentifier] {
			// Lambda fails the whole batch on an unknown identifier.
			fail(fmt.Sprintf("batchItemFailures names unknown message %q", f.ItemIdentifier))
			return r
		}
		r.failed[f.ItemIdentifier] = "reported in batchItemFailures"
	}
	return r
}

// settle applies one batch's result to the spool.
func (q *Queue) settle(r batchResult) error {
	var errs []error
	done := map[*spoolMessage]bool{}
	now := time.Now()
	for _, m := range r.msgs {
		m.inFlight = false
		reason, failed := r.failed[m.id()]
		d := Delivery{Body: m.body, MessageID: m.id(), ReceiveCount: m.receives + 1, BatchSize: len(r.msgs),
			Spooled: m.spooledAt, Received: r.started, At: r.finished}
		if failed {
			d.Err = fmt.Errorf("%w: message %s: %s", ErrHandler, m.id(), reason)
		}
		if q.o.Observe != nil {
			q.o.Observe(d)
		}
		if !failed {
			errs = append(errs, q.spool.remove(m))
			done[m] = true
			continue
		}
		if err := q.spool.failed(m); err != nil {
			errs = append(errs, err)
		}
		if m.receives >= q.o.MaxReceives {
			why := fmt.Sprintf("%s: %d receives (maxReceiveCount %d); last: %s", now.UTC().Format(time.RFC3339), m.receives, q.o.MaxReceives, reason)
			if err := q.spool.deadLetter(m, why); err != nil {
				errs = append(errs, err)
			} else {
				done[m] = true
				q.log.Error("sqsspool: message moved to the dead-letter directory", "message_id", m.id(),
					"receives", m.receives, "reason", reason, "dir", q.o.DeadLetterDir, "group", m.group)
			}
			continue
		}
		backoff := q.o.Visibility << min(m.receives-1, 20)
		if backoff > q.o.MaxVisibility || backoff <= 0 {
			backoff = q.o.MaxVisibility
		}
		m.visibleAt = now.Add(backoff)
		q.log.Warn("sqsspool: message failed; retrying after the visibility timeout", "message_id", m.id(),
			"receives", m.receives, "visible_in", backoff, "reason", reason, "group", m.group)
	}
	if len(done) > 0 {
		kept := q.pending[:0]
		for _, m := range q.pending {
			if !done[m] {
				kept = append(kept, m)
			}
		}
		clear(q.pending[len(kept):])
		q.pending = kept
	}
	return errors.Join(errs...)
}
