package e2e_test

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/sqsspool"
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
	deadline := time.Now().Add(2 * time.Minute)
	var claimed string
	for claimed == "" && time.Now().Before(deadline) {
		for _, k := range keys {
			if row, err := fx.row(ctx, k); err == nil && row.State == registry.StateStarted {
				claimed = k
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.NotEmpty(t, claimed, "no copy was seen in progress")
	require.NoError(t, onCreate.Kill())
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, o := range ops {
		m.put(o.key, o.body)
	}

	// The killed batch failed as a whole and its messages came back to a
	// new function process.
	require.Eventually(t, func() bool {
		failed, redelivered := redeliveries(fx.rec.since(first))
		return len(failed) > 0 && len(redelivered) == len(failed)
	}, 3*time.Minute, 100*time.Millisecond, "every message of the killed batch is delivered again and acknowledged")
	assert.NotEqual(t, pidBefore, onCreate.EmulatorPID(), "a new emulator took over")

	// The claim the killed process held stays started: the redelivered
	// event sees a copy in progress (a live worker and a dead one look the
	// same). Abandoned claims are backfill's job once they are older than
	// GEOBLOB_SYNC_TIMEOUT (30m in AWS, then backfill runs every minute):
	// here the backfill function, started with a 2 s timeout and invoked
	// with a scheduled event, recovers it and everything converges.
	env := append(devstack.FunctionEnv(fx.settings, os.Environ()), "GEOBLOB_SYNC_TIMEOUT=2s")
	backfill, err := devstack.StartFunctions(ctx, functions, env, fx.settings.FunctionLogDir(), devstack.FnBackfill)
	require.NoError(t, err)
	defer backfill.Close()
	require.Eventually(t, func() bool {
		if _, err := backfill.Get(devstack.FnBackfill).Invoke(ctx, devstack.ScheduledEvent("us-east-1", "geoblob-backfill", time.Now())); err != nil {
			t.Logf("backfill: %v", err)
			return false
		}
		return converged(ctx, m) == nil
	}, 2*time.Minute, 2*time.Second)
	assertBuckets(t, m)
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
