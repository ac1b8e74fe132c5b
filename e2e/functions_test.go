package e2e_test

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/sqsspool"
	geoevents "github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
)

// TestFunctionKilledMidBatchIsRedelivered kills the onCreate function
// process (its emulator and the bootstrap it runs) while it copies a batch:
// the invocation fails, every message of the batch is delivered again after
// the visibility timeout to a new function process, and the buckets and
// the registry converge.
func TestFunctionKilledMidBatchIsRedelivered(t *testing.T) {
	fns := fx.runner.RunningFunctions()
	require.NotNil(t, fns, "the end-to-end stack runs the function binaries under the emulator")
	onCreate := fns.Get(devstack.FnOnCreate)
	pidBefore := onCreate.EmulatorPID()

	ctx := t.Context()
	m := newModel()
	keys := faultKeys(t, "kill", 4)
	ops := putOps(t, keys, 32<<20) // multipart copies that take a while
	first := fx.rec.len()
	primary := fx.settings.Bucket(devstack.Primary)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := primary.Put(ctx, o.key, o.body, samples.ContentType(o.key)); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	// Kill the function as soon as one of the rows is claimed for a copy.
	waitClaimed(t, keys)
	require.NoError(t, onCreate.Kill())
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, o := range ops {
		m.put(o.key, o.body)
	}

	// The killed batch failed as a whole and its messages came back to a
	// new function process.
	// (only this test's messages count: a message of another kind that the
	// kill happened to fail, e.g. a request a scheduled pass dispatched, is
	// not this test's to account for)
	waitRedelivered(t, first, "kill-", keys)
	assert.NotEqual(t, pidBefore, onCreate.EmulatorPID(), "a new emulator took over")

	// The claim the killed process held stays started: the redelivered
	// event sees a copy in progress (a live worker and a dead one look the
	// same). Abandoned claims are backfill's job once they are older than
	// GEOBLOB_SYNC_TIMEOUT (30m in AWS, then backfill runs every minute):
	// here the backfill function, started with a 2 s timeout and invoked
	// with a scheduled event, recovers it and everything converges.
	recoverClaims(t, m, "GEOBLOB_SYNC_TIMEOUT=2s")
	assertBuckets(t, m)
}

// waitClaimed waits until the row of one of keys is claimed for a copy
// (state started) and returns that key.
func waitClaimed(t *testing.T, keys []string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, k := range keys {
			if row, err := fx.row(t.Context(), k); err == nil && row.State == registry.StateStarted {
				return k
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.FailNow(t, "no copy was seen in progress")
	return ""
}

// waitRedelivered waits until some message whose body contains marker (a
// test's own key tag) failed since delivery first and every such failed
// message was delivered again and acknowledged; it fails the test with
// the deliveries and the rows of keys otherwise.
// (only the test's messages count: a message of another kind that a kill
// happened to fail, e.g. a request a scheduled pass dispatched, is not the
// test's to account for)
func waitRedelivered(t *testing.T, first int, marker string, keys []string) {
	t.Helper()
	if assert.Eventually(t, func() bool {
		failed, redelivered := redeliveries(deliveriesOf(first, marker))
		return len(failed) > 0 && len(redelivered) == len(failed)
	}, 3*time.Minute, 100*time.Millisecond, "every message of the killed batch is delivered again and acknowledged") {
		return
	}
	// what the deliveries were, for the one who reads this failure
	for _, d := range deliveriesOf(first, marker) {
		t.Logf("delivery %s receive %d err=%v body=%.200s", d.MessageID, d.ReceiveCount, d.Err, d.Body)
	}
	for _, k := range keys {
		row, err := fx.row(t.Context(), k)
		t.Logf("row %s: state %v generation %d err=%v", k, row.State, row.Generation, err)
	}
	t.FailNow()
}

// recoverClaims starts the backfill function with the stack's
// configuration plus extra (e.g. a short GEOBLOB_SYNC_TIMEOUT) and invokes
// it with scheduled events until m has converged.
func recoverClaims(t *testing.T, m *model, extra ...string) {
	t.Helper()
	ctx := t.Context()
	env := append(devstack.FunctionEnv(fx.settings, os.Environ()), extra...)
	backfill, err := devstack.StartFunctions(ctx, functions, env, fx.settings.FunctionLogDir(), devstack.FnBackfill)
	require.NoError(t, err)
	defer backfill.Close()
	require.Eventually(t, func() bool {
		if _, err := backfill.Get(devstack.FnBackfill).Invoke(ctx, devstack.ScheduledEvent("us-east-1", "geoblob-backfill", time.Now())); err != nil {
			t.Logf("backfill: %v", err)
			return false
		}
		return converged(ctx, m) == nil
	}, 3*time.Minute, 2*time.Second, "the abandoned claims were recovered and everything converged")
}

// deliveriesOf returns the deliveries recorded since delivery first whose
// message body contains marker (a test's own key tag).
func deliveriesOf(first int, marker string) []sqsspool.Delivery {
	var out []sqsspool.Delivery
	for _, d := range fx.rec.since(first) {
		if strings.Contains(string(d.Body), marker) {
			out = append(out, d)
		}
	}
	return out
}

// redeliveries returns the messages some delivery failed and, of those,
// the ones a later delivery acknowledged.
func redeliveries(ds []sqsspool.Delivery) (failed, redelivered map[string]bool) {
	failed, redelivered = map[string]bool{}, map[string]bool{}
	for _, d := range ds {
		if d.Err != nil {
			failed[d.MessageID] = true
		} else if failed[d.MessageID] && d.ReceiveCount > 1 {
			redelivered[d.MessageID] = true
		}
	}
	return failed, redelivered
}

// TestFunctionProcessesDispatchThroughSQSAPI: the backfill and verify
// function processes (under the emulator, configured with the local
// request queues' URLs and AWS_ENDPOINT_URL_SQS) dispatch through the SQS
// API stand-in with aws-sdk-go-v2, exactly as in AWS: a row put back to
// pending is copied by onCreate from a sync request, and the copies are
// verified by the verify worker processes from verification requests.
func TestFunctionProcessesDispatchThroughSQSAPI(t *testing.T) {
	fns := fx.runner.RunningFunctions()
	require.NotNil(t, fns, "the end-to-end stack runs the function binaries under the emulator")
	ctx := t.Context()
	keys := faultKeys(t, "dispatch", 3)
	primary := fx.settings.Bucket(devstack.Primary)
	for _, o := range putOps(t, keys, 4096) {
		require.NoError(t, primary.Put(ctx, o.key, o.body, samples.ContentType(o.key)))
	}
	synced := func(k string) bool {
		row, err := fx.row(ctx, k)
		return err == nil && row.State == registry.StateSynced
	}
	require.Eventually(t, func() bool { return synced(keys[0]) && synced(keys[1]) && synced(keys[2]) },
		time.Minute, 50*time.Millisecond, "event copies")
	resynced, err := fx.row(ctx, keys[0])
	require.NoError(t, err)
	require.NoError(t, fx.reg.Resync(ctx, resynced.DataType, keys[0]))

	first := fx.rec.len()
	_, err = fns.Get(devstack.FnBackfill).Invoke(ctx, devstack.ScheduledEvent("us-east-1", "geoblob-backfill", time.Now()))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return synced(keys[0]) }, time.Minute, 50*time.Millisecond, "the dispatched sync request was copied")
	verified := func() bool {
		for _, k := range keys {
			row, err := fx.row(ctx, k)
			if err != nil || row.VerificationState != registry.VerificationSucceeded {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool {
		if verified() {
			return true
		}
		_, err := fns.Get(devstack.FnVerify).Invoke(ctx, devstack.ScheduledEvent("us-east-1", "geoblob-verify", time.Now()))
		return err == nil && verified()
	}, 2*time.Minute, 500*time.Millisecond, "the verify workers verified every copy")

	// The queue records a delivery once its invocation returned, which
	// may be after the rows changed: wait for the records.
	require.Eventually(t, func() bool {
		syncs, checks := requestsDone(first)
		return syncs[keys[0]] && checks[keys[0]] && checks[keys[1]] && checks[keys[2]]
	}, time.Minute, 50*time.Millisecond,
		"backfill's sync request went through the SQS API and the sync spool, verify's requests through the SQS API to the workers")
}

// TestSyncRequestsRunInSeveralOnCreateProcesses: the sync requests a
// backfill pass dispatches are copied by several onCreate processes at
// once (the sync-request queue's SyncQueueConcurrency worker processes,
// like separate Lambda execution environments), not one after another by
// a single one, so the dispatcher's window of SyncQueueConcurrency x
// GEOBLOB_COPY_CONCURRENCY is what really copies.
func TestSyncRequestsRunInSeveralOnCreateProcesses(t *testing.T) {
	fns := fx.runner.RunningFunctions()
	require.NotNil(t, fns, "the end-to-end stack runs the function binaries under the emulator")
	pool := fns.Pool(devstack.SyncQueueName)
	require.NotNil(t, pool, "the sync-request queue has its own onCreate worker processes")
	ctx := t.Context()
	m := newModel()
	keys := faultKeys(t, "fanout", 160) // 4 windows of 40 requests
	syncedThenPending(t, m, putOps(t, keys, 8<<10))

	before := pool.Stats()
	first := fx.rec.len()
	require.Eventually(t, func() bool {
		if _, err := fns.Get(devstack.FnBackfill).Invoke(ctx, devstack.ScheduledEvent("us-east-1", "geoblob-backfill", time.Now())); err != nil {
			t.Logf("backfill: %v", err)
			return false
		}
		return converged(ctx, m) == nil
	}, 3*time.Minute, time.Second, "the dispatched sync requests were copied")
	assertBuckets(t, m)

	// Every key came back through the sync-request queue (the queue
	// records a delivery once its invocation returned: wait for it).
	require.Eventually(t, func() bool {
		synced, _ := requestsDone(first)
		for _, k := range keys {
			if !synced[k] {
				return false
			}
		}
		return true
	}, time.Minute, 50*time.Millisecond, "every row was copied from a sync request")

	// ... by more than one onCreate process, at the same time.
	after := pool.Stats()
	used := 0
	for i := range after.Invocations {
		if after.Invocations[i] > before.Invocations[i] {
			used++
		}
	}
	t.Logf("sync worker invocations before %v after %v, overlapped %d", before.Invocations, after.Invocations, after.Overlapped-before.Overlapped)
	assert.GreaterOrEqual(t, used, 2, "sync requests were performed by several onCreate processes")
	assert.Positive(t, after.Overlapped-before.Overlapped, "onCreate processes performed sync requests concurrently")
}

// syncedThenPending uploads ops, waits until their event copies
// converged into m, then puts their rows back to pending through the
// registry (Resync), so that only a backfill pass's dispatched sync
// requests copy them again.
func syncedThenPending(t *testing.T, m *model, ops []op) {
	t.Helper()
	apply(t, m, ops)
	waitConverged(t, m, 2*time.Minute)
	for _, o := range ops {
		row, err := fx.row(t.Context(), o.key)
		require.NoError(t, err)
		require.NoError(t, fx.reg.Resync(t.Context(), row.DataType, o.key))
	}
}

// requestsDone returns the keys of the sync and the verification requests
// delivered and acknowledged since delivery first.
func requestsDone(first int) (syncs, checks map[string]bool) {
	syncs, checks = map[string]bool{}, map[string]bool{}
	for _, d := range fx.rec.since(first) {
		b, err := geoevents.Parse(d.Body)
		if err != nil || d.Err != nil {
			continue
		}
		for _, m := range b.Messages {
			for _, r := range m.Syncs {
				syncs[r.Key] = true
			}
			for _, r := range m.Verifies {
				checks[r.Key] = true
			}
		}
	}
	return syncs, checks
}
