package devstack_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/sqsspool"
	geoevents "github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
)

// seen is one message as the flaky handler saw it.
type seen struct {
	event, key, sequencer string
	receive               int
	failed                bool
}

// flakyHandler takes SQS events of MinIO bodies, fails the first receive of
// every message (batchItemFailures) and records everything in order.
type flakyHandler struct {
	mu   sync.Mutex
	log  []seen
	busy map[string]bool
	both []string // keys that were in flight twice at once
}

func (h *flakyHandler) Handle(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	var mine []string
	h.mu.Lock()
	for _, m := range ev.Records {
		var s3 events.S3Event
		if err := json.Unmarshal([]byte(m.Body), &s3); err != nil || len(s3.Records) != 1 {
			h.mu.Unlock()
			return resp, err
		}
		r := s3.Records[0]
		n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
		s := seen{event: r.EventName, key: r.S3.Object.URLDecodedKey, sequencer: r.S3.Object.Sequencer, receive: n, failed: n == 1}
		if h.busy[s.key] {
			h.both = append(h.both, s.key)
		}
		h.busy[s.key] = true
		mine = append(mine, s.key)
		h.log = append(h.log, s)
		if s.failed {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	h.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // a copy takes a while
	h.mu.Lock()
	for _, k := range mine {
		delete(h.busy, k)
	}
	h.mu.Unlock()
	return resp, nil
}

// done returns, per key, the events that succeeded, in handling order.
func (h *flakyHandler) done() map[string][]seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]seen{}
	for _, s := range h.log {
		if !s.failed {
			out[s.key] = append(out[s.key], s)
		}
	}
	return out
}

func requireMinio(t *testing.T) {
	t.Helper()
	_, err := minioproc.FindBinary()
	require.NoError(t, err, "these tests need a MinIO binary: run `make tools` (or set GEOBLOB_MINIO_BIN)")
}

// TestMinioEventsThroughTheSpool runs real MinIO notifications (no MinIO
// queue) through the spool to a handler that fails every first receive:
// each message is retried with ApproximateReceiveCount 2, the events of a
// key reach the handler one at a time and in the order of the client's
// requests, and messages spooled when the worker stops are delivered by
// the next one.
func TestMinioEventsThroughTheSpool(t *testing.T) {
	requireMinio(t)
	ctx := t.Context()
	s, err := devstack.FreeSettings(stateDir(t))
	require.NoError(t, err)
	h := &flakyHandler{busy: map[string]bool{}}
	qo := sqsspool.QueueOptions{Visibility: 100 * time.Millisecond, MaxVisibility: 500 * time.Millisecond}
	runner := &devstack.InProcess{Invoker: lambda.NewHandler(h.Handle), Queue: qo}
	st, err := devstack.Up(ctx, devstack.UpOptions{Settings: s, Events: runner})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = runner.Close(context.Background())
		_ = st.Close(context.Background())
	})
	_, err = os.Stat(s.MinioDir("primary") + "/queue-" + devstack.WebhookID)
	assert.ErrorIs(t, err, os.ErrNotExist, "MinIO runs without its webhook queue")
	primary := s.Bucket(devstack.Primary)

	keys := []string{"generic/a/1.0.0/a.bin", "generic/b/1.0.0/b.bin", "generic/c/1.0.0/c.bin"}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, primary.Put(ctx, k, []byte("one"), ""))
			assert.NoError(t, primary.Put(ctx, k, []byte("two"), ""))
			assert.NoError(t, primary.Delete(ctx, k))
			assert.NoError(t, primary.Put(ctx, k, []byte("three"), ""))
		}()
	}
	wg.Wait()
	want := []string{"s3:ObjectCreated:Put", "s3:ObjectCreated:Put", "s3:ObjectRemoved:Delete", "s3:ObjectCreated:Put"}
	require.Eventually(t, func() bool {
		d := h.done()
		for _, k := range keys {
			if len(d[k]) < len(want) {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "every event handled after its retry")
	for k, list := range h.done() {
		var names []string
		for i, s := range list {
			names = append(names, s.event)
			assert.Equal(t, 2, s.receive, "succeeded on the second receive")
			if i > 0 {
				assert.Less(t, list[i-1].sequencer, s.sequencer, "%s: handled out of order", k)
			}
		}
		assert.Equal(t, want, names, "%s: per-key order", k)
	}
	h.mu.Lock()
	assert.Empty(t, h.both, "two events of one key in flight at once")
	h.mu.Unlock()

	// Worker stopped with a message failed once: it waits in the spool
	// and the next worker delivers it (receive count kept).
	require.NoError(t, primary.Put(ctx, "generic/d/1.0.0/d.bin", []byte("x"), ""))
	require.Eventually(t, func() bool {
		c, err := sqsspool.CountSpool(s.SpoolDir(), s.DeadLetterDir())
		return err == nil && c.Retrying == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, runner.Close(ctx))
	c, err := sqsspool.CountSpool(s.SpoolDir(), s.DeadLetterDir())
	require.NoError(t, err)
	require.Equal(t, 1, c.Queued, "the failed message is still spooled")
	runner2 := &devstack.InProcess{Invoker: lambda.NewHandler(h.Handle), Queue: qo}
	_, err = runner2.StartEvents(ctx, s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner2.Close(context.Background()) })
	require.Eventually(t, func() bool {
		d := h.done()["generic/d/1.0.0/d.bin"]
		return len(d) == 1 && d[0].receive == 2
	}, 10*time.Second, 20*time.Millisecond, "spooled message delivered after the restart")
}

// TestEventsMissedWhileDownAreBackfilled stops event delivery (MinIO has
// no queue, so it drops the events of that period), uploads and deletes,
// and checks that the daemon's backfill schedule reconciles them and its
// verify schedule verifies the copies, with the real handler.
func TestEventsMissedWhileDownAreBackfilled(t *testing.T) {
	requireMinio(t)
	ctx := t.Context()
	s, err := devstack.FreeSettings(stateDir(t))
	require.NoError(t, err)
	for _, v := range s.Env() {
		if len(v.Name) > 4 && v.Name[:4] == "AWS_" {
			t.Setenv(v.Name, v.Value)
		}
	}
	runner := &devstack.InProcess{}
	st, err := devstack.Up(ctx, devstack.UpOptions{Settings: s, Events: runner})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	primary, secondary := s.Bucket(devstack.Primary), s.Bucket(devstack.Secondary)
	require.NoError(t, primary.Put(ctx, "generic/early/1.0.0/early.bin", []byte("early"), ""))
	require.Eventually(t, func() bool {
		ok, err := secondary.Exists(ctx, "generic/early/1.0.0/early.bin")
		return err == nil && ok
	},
		20*time.Second, 20*time.Millisecond)

	require.NoError(t, runner.Close(ctx))
	require.NoError(t, primary.Put(ctx, "generic/missed/1.0.0/missed.bin", []byte("missed"), ""), "PUT succeeds with the receiver down")
	require.NoError(t, primary.Delete(ctx, "generic/early/1.0.0/early.bin"))
	time.Sleep(time.Second)
	c, err := sqsspool.CountSpool(s.SpoolDir(), s.DeadLetterDir())
	require.NoError(t, err)
	assert.Zero(t, c.Queued, "nothing was queued while down")

	var (
		mu         sync.Mutex
		dispatched []string
		verified   []string // keys of verification requests delivered to the workers
	)
	scheduled := &devstack.InProcess{
		Schedules: devstack.Schedules{Backfill: time.Second, Verify: time.Second, FirstRun: 200 * time.Millisecond},
		Observe: func(d sqsspool.Delivery) {
			b, err := geoevents.Parse(d.Body)
			if err != nil || d.Err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b.Messages {
				for _, r := range m.Syncs {
					dispatched = append(dispatched, r.Key)
				}
				for _, r := range m.Verifies {
					verified = append(verified, r.Key)
				}
			}
		},
	}
	_, err = scheduled.StartEvents(ctx, s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = scheduled.Close(context.Background()) })
	reg, closeReg, err := s.OpenRegistry(ctx)
	require.NoError(t, err)
	defer closeReg()
	require.Eventually(t, func() bool {
		row, err := reg.Get(ctx, "generic_package_file", "generic/missed/1.0.0/missed.bin")
		return err == nil && row.State == registry.StateSynced && row.VerificationState == registry.VerificationSucceeded
	}, 60*time.Second, 100*time.Millisecond, "the backfill schedule replicated what no event announced, verify verified it")
	ok, err := secondary.Exists(ctx, "generic/missed/1.0.0/missed.bin")
	require.NoError(t, err)
	assert.True(t, ok)
	mu.Lock()
	assert.Contains(t, dispatched, "generic/missed/1.0.0/missed.bin", "backfill dispatched the copy to the handler through the sync-request queue")
	assert.Contains(t, verified, "generic/missed/1.0.0/missed.bin", "verify dispatched the check to the workers through the verification queue")
	mu.Unlock()
	require.Eventually(t, func() bool {
		ok, err := secondary.Exists(ctx, "generic/early/1.0.0/early.bin")
		return err == nil && !ok
	}, 30*time.Second, 100*time.Millisecond, "the backfill schedule propagated the missed delete")
}

// stateDir is a temporary state directory PostgreSQL's user can enter
// (t.TempDir is private to root).
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devstack-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
