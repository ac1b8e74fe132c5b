package backfill_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/handler"
	"github.com/geoblob/geoblob/shared/replication"
)

// fleet stands in for SQS + the event source mapping + onCreate: one
// at-least-once FIFO of messages (sync requests and S3 events alike, all
// served by the same workers), Workers concurrent invocations, each a
// separate "Lambda instance" with its own engine (copy cap PerWorker)
// running the real handler on a real SQS event. It is the backfill
// Dispatcher. One queue is the strict case for live events: in AWS,
// onCreate's event mapping has instances of its own (infra/stacks,
// SyncRequestInstances), so events never wait behind requests at all.
type fleet struct {
	t    testing.TB
	msgs chan *fleetMsg
	// eventQ, when set (splitEvents), carries the S3 events to the
	// workers added with addEventWorker, apart from the requests.
	eventQ  chan *fleetMsg
	workers []*fleetWorker
	batch   int

	// duplicate sends every request twice; shuffle reorders each send.
	duplicate, shuffle bool
	// loseEvery > 0 loses every loseEvery-th request (all its copies):
	// it is accepted and never delivered.
	loseEvery int64
	lost      atomic.Int64
	requests  atomic.Int64
	// visibility is how long a message taken by a dead worker stays
	// invisible before it is delivered again.
	visibility time.Duration

	seq          atomic.Int64
	queuedSyncs  atomic.Int64 // sync requests waiting in the queue
	maxAhead     atomic.Int64 // most sync requests queued ahead of an event
	syncsDone    atomic.Int64
	eventsDone   atomic.Int64
	outstanding  atomic.Int64 // messages sent and not yet acknowledged
	maxInFlight  atomic.Int64 // sampled sum of the workers' InFlight
	stopSampling chan struct{}
	wg           sync.WaitGroup

	latMu        sync.Mutex
	eventLatency []time.Duration // from each event's send to its acknowledgement
}

type fleetMsg struct {
	id    string
	body  []byte
	sync  bool
	ahead int64     // for events: sync requests queued ahead at enqueue
	sent  time.Time // for events: when it was sent
}

type fleetWorker struct {
	engine *replication.Engine
	h      *handler.Handler
	// dieAfter > 0: the worker takes that many batches, hangs in the last
	// one (its copies block forever) and never acknowledges it.
	dieAfter int
	// events: the worker takes the event queue (splitEvents).
	events bool
}

var _ backfill.Dispatcher = (*fleet)(nil)

func newFleet(t testing.TB, batch int) *fleet {
	return &fleet{t: t, msgs: make(chan *fleetMsg, 1<<20), batch: batch, visibility: 200 * time.Millisecond, stopSampling: make(chan struct{})}
}

// addWorker adds a worker whose engine copies through target.
func (f *fleet) addWorker(e *env, perWorker int, target replication.Target, dieAfter int) *fleetWorker {
	eng, err := replication.New(replication.Options{
		Registry: e.reg, Primary: e.primary, Secondary: target, Catalog: e.catalog, Concurrency: perWorker,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(f.t, err)
	h, err := handler.New(eng, handler.Options{PrimaryBucket: primaryBucket, Function: "onCreate", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(f.t, err)
	w := &fleetWorker{engine: eng, h: h, dieAfter: dieAfter}
	f.workers = append(f.workers, w)
	return w
}

// splitEvents gives the S3 events a queue of their own, taken by the
// workers added with addEventWorker: AWS's layout, where onCreate's event
// mapping has instances the requests cannot take.
func (f *fleet) splitEvents() { f.eventQ = make(chan *fleetMsg, 1<<16) }

// addEventWorker adds a worker that takes only the event queue.
func (f *fleet) addEventWorker(e *env, perWorker int) {
	f.addWorker(e, perWorker, e.secondary, 0).events = true
}

func (f *fleet) push(m *fleetMsg) {
	switch {
	case m.sync:
		f.queuedSyncs.Add(1)
	case f.eventQ != nil:
		f.eventQ <- m
		return
	}
	f.msgs <- m
}

// SendSync implements backfill.Dispatcher.
func (f *fleet) SendSync(_ context.Context, reqs []events.SyncRequest) error {
	var out []*fleetMsg
	for _, r := range reqs {
		body, err := events.EncodeSyncRequests([]events.SyncRequest{r})
		if err != nil {
			return err
		}
		n := 1
		if f.duplicate {
			n = 2
		}
		if f.loseEvery > 0 && f.requests.Add(1)%f.loseEvery == 0 {
			f.lost.Add(1)
			continue
		}
		for range n {
			out = append(out, &fleetMsg{id: "s" + strconv.FormatInt(f.seq.Add(1), 10), body: body, sync: true})
		}
	}
	if f.shuffle {
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	f.outstanding.Add(int64(len(out)))
	for _, m := range out {
		f.push(m)
	}
	return nil
}

// sendEvent enqueues an S3 ObjectCreated notification for key.
func (f *fleet) sendEvent(key string, size int64) {
	body, err := json.Marshal(lambdaevents.S3Event{Records: []lambdaevents.S3EventRecord{{
		EventSource: "aws:s3", EventName: "ObjectCreated:Put", EventTime: time.Now(),
		S3: lambdaevents.S3Entity{
			Bucket: lambdaevents.S3Bucket{Name: primaryBucket},
			Object: lambdaevents.S3Object{Key: strings.ReplaceAll(key, " ", "+"), Size: size,
				Sequencer: strconv.FormatInt(time.Now().UnixNano(), 16)},
		},
	}}})
	require.NoError(f.t, err)
	f.outstanding.Add(1)
	f.push(&fleetMsg{id: "e" + strconv.FormatInt(f.seq.Add(1), 10), body: body, ahead: f.queuedSyncs.Load(), sent: time.Now()})
}

// start runs the workers and the in-flight sampler until ctx ends.
func (f *fleet) start(ctx context.Context) {
	for _, w := range f.workers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.work(ctx, w)
		}()
	}
	go func() {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-f.stopSampling:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var sum int64
			for _, w := range f.workers {
				sum += w.engine.Stats().InFlight
			}
			if sum > f.maxInFlight.Load() {
				f.maxInFlight.Store(sum)
			}
		}
	}()
}

func (f *fleet) take(ctx context.Context, q chan *fleetMsg) []*fleetMsg {
	var batch []*fleetMsg
	select {
	case m := <-q:
		batch = append(batch, m)
	case <-ctx.Done():
		return nil
	}
	for len(batch) < f.batch {
		select {
		case m := <-q:
			batch = append(batch, m)
		default:
			goto done
		}
	}
done:
	for _, m := range batch {
		if m.sync {
			f.queuedSyncs.Add(-1)
		} else if m.ahead > f.maxAhead.Load() {
			f.maxAhead.Store(m.ahead)
		}
	}
	return batch
}

func (f *fleet) work(ctx context.Context, w *fleetWorker) {
	q := f.msgs
	if w.events {
		q = f.eventQ
	}
	for n := 1; ; n++ {
		batch := f.take(ctx, q)
		if batch == nil {
			return
		}
		if w.dieAfter > 0 && n >= w.dieAfter {
			// The worker dies mid-batch: its copies hang, nothing is
			// acknowledged, SQS delivers the messages again after the
			// visibility timeout.
			go func() { _, _ = w.h.Handle(ctx, f.sqsEvent(batch)) }()
			time.AfterFunc(f.visibility, func() {
				for _, m := range batch {
					f.push(m)
				}
			})
			<-ctx.Done()
			return
		}
		out, err := w.h.Handle(ctx, f.sqsEvent(batch))
		require.NoError(f.t, err)
		failed := map[string]bool{}
		for _, it := range out.(lambdaevents.SQSEventResponse).BatchItemFailures {
			failed[it.ItemIdentifier] = true
		}
		for _, m := range batch {
			if failed[m.id] {
				f.push(m)
				continue
			}
			if m.sync {
				f.syncsDone.Add(1)
			} else {
				f.eventsDone.Add(1)
				f.latMu.Lock()
				f.eventLatency = append(f.eventLatency, time.Since(m.sent))
				f.latMu.Unlock()
			}
			f.outstanding.Add(-1)
		}
	}
}

func (f *fleet) sqsEvent(batch []*fleetMsg) []byte {
	ev := lambdaevents.SQSEvent{}
	for _, m := range batch {
		ev.Records = append(ev.Records, lambdaevents.SQSMessage{MessageId: m.id, Body: string(m.body), EventSource: "aws:sqs"})
	}
	b, err := json.Marshal(ev)
	require.NoError(f.t, err)
	return b
}

// idle waits until every message sent was acknowledged (or ctx ends).
func (f *fleet) idle(ctx context.Context) {
	for f.outstanding.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// transfers sums the live workers' copy counters.
func (f *fleet) transfers() int64 {
	var n int64
	for _, w := range f.workers {
		if w.dieAfter == 0 {
			n += w.engine.Stats().Transfers
		}
	}
	return n
}

// putCounter counts completed PUTs per key on the secondary proxy.
type putCounter struct {
	mu   sync.Mutex
	puts map[string]int
}

func (c *putCounter) rule(r *http.Request) s3test.Fault {
	if s3test.Op(r) == s3test.OpPutObject {
		c.mu.Lock()
		c.puts[strings.TrimPrefix(r.URL.Path, "/"+secondaryBucket+"/")]++
		c.mu.Unlock()
	}
	return s3test.Fault{}
}

// hangingTarget is a secondary whose writes never finish (a worker that
// died in the middle of its copies).
type hangingTarget struct{ replication.Target }

func (hangingTarget) Put(ctx context.Context, _ string, body io.Reader, _ int64, _ blobstore.PutAttrs) (blobstore.PutResult, error) {
	<-ctx.Done()
	return blobstore.PutResult{}, ctx.Err()
}
