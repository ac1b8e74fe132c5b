package verify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/dispatch"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// memQueue stands in for the verification queue: the dispatcher's real
// SQS sender (dispatch.SQS) calls its SendMessageBatch; workers receive
// batches from it. At every send it notes the verification claims in
// flight (the registry's count, right after the dispatcher claimed).
type memQueue struct {
	reg *registry.Store

	mu          sync.Mutex
	bodies      []string
	outstanding int // sent, not yet deleted by a worker
	maxClaims   int64
	seq         int
}

var _ dispatch.BatchSender = (*memQueue)(nil)

func (q *memQueue) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	n, err := q.reg.CountVerifying(ctx)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.maxClaims = max(q.maxClaims, n)
	for _, e := range in.Entries {
		q.bodies = append(q.bodies, aws.ToString(e.MessageBody))
	}
	q.outstanding += len(in.Entries)
	return &sqs.SendMessageBatchOutput{}, nil // nothing failed
}

// receive takes up to n message bodies.
func (q *memQueue) receive(n int) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.bodies))
	got := q.bodies[:n:n]
	q.bodies = q.bodies[n:]
	return got
}

// deleted ends n received messages; requeue puts failed ones back.
func (q *memQueue) deleted(n int, requeue []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.outstanding -= n
	q.bodies = append(q.bodies, requeue...)
}

func (q *memQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.outstanding == 0
}

// sqsEvent wraps bodies as the event source mapping delivers them.
func (q *memQueue) sqsEvent(t *testing.T, bodies []string) ([]byte, map[string]string) {
	q.mu.Lock()
	ev := lambdaevents.SQSEvent{}
	byID := map[string]string{}
	for _, b := range bodies {
		q.seq++
		id := fmt.Sprintf("m-%06d", q.seq)
		byID[id] = b
		ev.Records = append(ev.Records, lambdaevents.SQSMessage{MessageId: id, Body: b, EventSource: "aws:sqs"})
	}
	q.mu.Unlock()
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	return payload, byID
}

// deliver hands bodies to worker as one invocation and returns what it
// reported failed.
func (q *memQueue) deliver(t *testing.T, worker *verify.Verifier, bodies []string) []string {
	payload, byID := q.sqsEvent(t, bodies)
	resp, _, err := worker.HandleRequests(t.Context(), payload)
	require.NoError(t, err)
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, byID[f.ItemIdentifier])
	}
	return failed
}

// consume runs one goroutine per worker (a Lambda instance each), taking
// batches of up to batch messages, until ctx ends.
func (q *memQueue) consume(ctx context.Context, t *testing.T, workers []*verify.Verifier, batch int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				bodies := q.receive(batch)
				if len(bodies) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				failed := q.deliver(t, w, bodies)
				q.deleted(len(bodies)-len(failed), failed)
			}
		}()
	}
	return &wg
}

func (q *memQueue) waitIdle(t *testing.T) {
	require.Eventually(t, q.idle, time.Minute, 5*time.Millisecond, "queue drained")
}

// dispatcher returns a verifier over e whose passes dispatch to q through
// the real SQS sender with window claims in flight.
func (e *env) dispatcher(q *memQueue, window int, opts verify.Options) *verify.Verifier {
	opts.BatchSize = max(opts.BatchSize, 4)
	opts.PollInterval = 2 * time.Millisecond
	return e.verifier(opts).WithDispatcher(dispatch.NewSQS(q, "http://sqs.local/000000000000/verify", 2), window)
}

func (e *env) verifiedSides(keys []string) (secondary, primary int) {
	for _, k := range keys {
		r := e.row(k)
		if r.VerificationState == registry.VerificationSucceeded {
			secondary++
		}
		if r.Primary.VerifiedAt != nil {
			primary++
		}
	}
	return secondary, primary
}

// N verifications through the queue to R workers of K checks each: the
// claims in flight never exceed the window R x K, no worker runs more
// than K checks at once (its own counters), every row is checked exactly
// once per side that is due, and all converge.
func TestDispatchKeepsWorkersUnderTheirCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const rows, workers, perWorker = 90, 3, 2
	keys := make([]string, rows)
	for i := range keys {
		keys[i] = e.upload(content(i, 1024))
	}
	require.Equal(t, rows, e.syncDue())

	q := &memQueue{reg: e.reg}
	d := e.dispatcher(q, workers*perWorker, verify.Options{})
	pool := make([]*verify.Verifier, workers)
	for i := range pool {
		pool[i] = e.verifier(verify.Options{Concurrency: perWorker})
	}
	ctx, stop := context.WithCancel(t.Context())
	wg := q.consume(ctx, t, pool, 10)
	defer func() { stop(); wg.Wait() }()

	checks := func() (sum int64) {
		for _, w := range pool {
			sum += w.Stats().Checks
		}
		return sum
	}

	// Secondaries due (primaries were hashed by the copy).
	rep := e.run(d, verify.RunOptions{})
	q.waitIdle(t)
	assert.EqualValues(t, rows, rep.Dispatched)
	assert.Positive(t, rep.WindowWaits, "the window filled up and the dispatcher waited")
	assert.Zero(t, rep.Secondary.Checked, "the dispatcher checks nothing itself")
	sec, _ := e.verifiedSides(keys)
	assert.Equal(t, rows, sec)
	assert.EqualValues(t, rows, checks(), "one check per row")

	// 91 days later both sides are due for reverification.
	e.clock.Advance(verify.DefaultReverifyInterval + 24*time.Hour)
	rep = e.run(d, verify.RunOptions{})
	q.waitIdle(t)
	assert.EqualValues(t, 2*rows, rep.Dispatched)
	sec, pri := e.verifiedSides(keys)
	assert.Equal(t, rows, sec)
	assert.Equal(t, rows, pri)
	assert.EqualValues(t, 3*rows, checks(), "one check per row and side")

	assert.LessOrEqual(t, q.maxClaims, int64(workers*perWorker), "claims in flight never above the window")
	assert.Positive(t, q.maxClaims)
	for i, w := range pool {
		st := w.Stats()
		assert.LessOrEqual(t, st.Peak, int64(perWorker), "worker %d ran more checks at once than its concurrency", i)
		assert.Positive(t, st.Checks, "worker %d got work", i)
		assert.Zero(t, st.Dropped)
		assert.Zero(t, st.InFlight)
	}
	n, err := e.reg.CountVerifying(e.ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// dyingSide dies (the goroutine ends, as in a crashed Lambda instance)
// when asked to hash: the claim it took over is left started.
type dyingSide struct{ verify.Side }

func (dyingSide) Hash(context.Context, string) (verify.Digest, error) {
	runtime.Goexit()
	return verify.Digest{}, nil
}

// A worker dies mid-batch after taking its claims over; its messages come
// back (SQS redelivers what was not deleted) along with every other
// request twice, in random order, and one row changes between dispatch and
// delivery. Duplicates and stale requests are dropped without reading a
// byte, the dead worker's claims are recovered after the timeout (not
// before) and dispatched again, and every row converges verified with
// exactly one check each by the healthy workers.
func TestDispatchSurvivesDeadWorkerDuplicatesAndReorder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const rows, timeout = 40, 30 * time.Minute
	keys := make([]string, rows)
	for i := range keys {
		keys[i] = e.upload(content(100+i, 2048))
	}
	require.Equal(t, rows, e.syncDue())

	q := &memQueue{reg: e.reg}
	d := e.dispatcher(q, rows+1, verify.Options{Timeout: timeout, BatchSize: 10}) // +1: the pass sees nothing left due (a full window waits)
	rep := e.run(d, verify.RunOptions{})
	require.EqualValues(t, rows, rep.Dispatched)
	all := q.receive(rows)
	require.Len(t, all, rows)

	// The row of the last request changes: a new upload is copied (its
	// generation moves and its verification starts over).
	changed := keys[rows-1]
	e.putPrimary(changed, content(999, 4096))
	e.recordCreated(changed)
	require.Equal(t, 1, e.syncDue())

	healthy := []*verify.Verifier{e.verifier(verify.Options{Concurrency: 3}), e.verifier(verify.Options{Concurrency: 3})}
	dead, err := verify.New(e.reg, e.primary, dyingSide{e.secondary},
		verify.Options{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	// The dead worker takes the first 10 over and dies hashing them.
	require.Empty(t, q.deliver(t, dead, all[:10]))
	assert.EqualValues(t, 10, dead.Stats().Checks)

	// Redelivered and duplicated, in random order.
	again := append(append([]string{}, all...), all...)
	rand.Shuffle(len(again), func(i, j int) { again[i], again[j] = again[j], again[i] })
	for i := 0; i < len(again); i += 7 {
		require.Empty(t, q.deliver(t, healthy[i%2], again[i:min(i+7, len(again))]))
	}
	checks, dropped := func() (c, d int64) {
		for _, w := range healthy {
			c += w.Stats().Checks
			d += w.Stats().Dropped
		}
		return c, d
	}()
	assert.EqualValues(t, rows-10-1, checks, "each live claim checked once")
	assert.EqualValues(t, 2*rows-(rows-10-1), dropped, "duplicates, the dead worker's and the changed row's requests dropped")
	for _, k := range keys[:10] {
		assert.Equal(t, registry.VerificationStarted, e.row(k).VerificationState, "dead worker's claim %s", k)
	}

	// Before the timeout: nothing recovered, the changed row verified.
	e.clock.Advance(timeout - time.Minute)
	rep = e.run(d, verify.RunOptions{})
	assert.Zero(t, rep.Recovered)
	assert.EqualValues(t, 1, rep.Dispatched)
	require.Empty(t, q.deliver(t, healthy[0], q.receive(10)))

	// After it: the dead worker's claims come back and are verified.
	e.clock.Advance(2 * time.Minute)
	rep = e.run(d, verify.RunOptions{})
	assert.EqualValues(t, 10, rep.Recovered)
	assert.EqualValues(t, 10, rep.Dispatched)
	require.Empty(t, q.deliver(t, healthy[1], q.receive(10)))

	sec, _ := e.verifiedSides(keys)
	assert.Equal(t, rows, sec)
	assert.Equal(t, sha(content(999, 4096)), e.row(changed).SecondarySHA256)
	checks = healthy[0].Stats().Checks + healthy[1].Stats().Checks
	assert.EqualValues(t, rows, checks, "exactly one check per row by the healthy workers")
}

// A message that is not a verification request fails (SQS retries it and
// its dead-letter queue keeps it); the good one in the same batch is done.
func TestWorkerFailsForeignMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	key := e.upload(content(7, 100))
	require.Equal(t, 1, e.syncDue())
	q := &memQueue{reg: e.reg}
	rep := e.run(e.dispatcher(q, 10, verify.Options{}), verify.RunOptions{})
	require.EqualValues(t, 1, rep.Dispatched)
	bodies := append(q.receive(10), `{"geoblob":"sync","version":1,"requests":[{"data_type":"generic_package_file","key":"generic/a/1/a.bin","generation":1}]}`, `not json`)
	failed := q.deliver(t, e.verifier(verify.Options{}), bodies)
	assert.ElementsMatch(t, bodies[1:], failed)
	assert.Equal(t, registry.VerificationSucceeded, e.row(key).VerificationState)
}
