package backfill_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/replication/replicationtest"
)

// dispatchUntilConverged runs dispatching backfill passes until a pass
// finds nothing to do and the fleet has acknowledged everything.
func dispatchUntilConverged(t testing.TB, ctx context.Context, e *env, f *fleet, passes int) {
	t.Helper()
	for i := 0; i < passes; i++ {
		r := e.runner()
		rep, err := r.Run(ctx, backfill.Request{})
		require.NoError(t, err)
		f.idle(ctx)
		if backfill.Quiet(rep) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not converged after %d passes", passes)
}

// TestDispatchedBackfillSharesTheCapWithEvents: 5,000 unannounced objects
// are registered and dispatched to 4 workers of 4 copies each (one cap of
// 16 copies for everything) while new objects keep arriving as events on
// the same workers. The workers' own counters never show more than 16
// copies at once, no event waits behind more than one window of backfill
// requests, every object converges and each backfill object is copied
// exactly once.
func TestDispatchedBackfillSharesTheCapWithEvents(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("5,000 objects")
	}
	const (
		objects   = 5000
		eventObjs = 150
		workers   = 4
		perWorker = 4
		capAll    = workers * perWorker
	)
	e := newEnv(t, envOptions{})
	puts := &putCounter{puts: map[string]int{}}
	e.setRules(nil, puts.rule)
	e.putTyped(objects, func(i int) int { return 64 + i%200 })
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute) // a safety net only: a loaded 2-core machine needs minutes
	defer cancel()
	f := newFleet(t, 10)
	for range workers {
		f.addWorker(e, perWorker, e.secondary, 0)
	}
	f.start(ctx)
	e.cfg.Window = capAll
	e.cfg.BatchSize = 500   // registration in batches that sync starts on at once
	e.cfg.DispatchLease = 0 // unset: New's default applies (with none, leases would not count)
	e.opts.Dispatcher = f

	// Events keep arriving while the backfill runs.
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		for i := range eventObjs {
			k := fmt.Sprintf("npm/live%d/-/live%d-1.0.0.tgz", i, i)
			body := replicationtest.Content(k, 100)
			e.put(k, body)
			f.sendEvent(k, int64(len(body)))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	dispatchUntilConverged(t, ctx, e, f, 20)
	<-evDone
	f.idle(ctx)
	dispatchUntilConverged(t, ctx, e, f, 5)
	close(f.stopSampling)

	e.requireConverged()
	assert.LessOrEqual(t, f.maxInFlight.Load(), int64(capAll), "copies in flight across all workers")
	for i, w := range f.workers {
		assert.LessOrEqual(t, w.engine.Stats().Peak, int64(perWorker), "worker %d's own peak", i)
	}
	assert.Greater(t, f.maxInFlight.Load(), int64(perWorker), "the fan-out used more than one worker")
	assert.LessOrEqual(t, f.maxAhead.Load(), int64(capAll), "an event waited behind more than one window of backfill requests")
	assert.EqualValues(t, eventObjs, f.eventsDone.Load())
	for i := range objects {
		assert.Equal(t, 1, puts.puts[typedKey(i)], "copies of %s", typedKey(i))
	}
	assert.LessOrEqual(t, f.transfers(), int64(objects+2*eventObjs))
}

// TestDispatchSurvivesDeadWorkerDuplicatesAndReordering: every request
// is delivered twice and out of order, every 7th request is lost, and one
// worker dies in the middle of its first batch (its copies hang, its
// messages come back after the visibility timeout). The lost requests'
// leases expire and their rows are sent again, the stuck claims are
// recovered, and every object converges with exactly one completed copy:
// the duplicates and the redelivered messages stop at the claim's
// compare-and-set.
func TestDispatchSurvivesDeadWorkerDuplicatesAndReordering(t *testing.T) {
	t.Parallel()
	const objects = 400
	e := newEnv(t, envOptions{})
	puts := &putCounter{puts: map[string]int{}}
	e.setRules(nil, puts.rule)
	e.putTyped(objects, func(i int) int { return 50 + i })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute) // a safety net only
	defer cancel()
	f := newFleet(t, 10)
	f.duplicate, f.shuffle, f.loseEvery = true, true, 7
	dead := f.addWorker(e, 4, hangingTarget{e.secondary}, 1)
	for range 3 {
		f.addWorker(e, 4, e.secondary, 0)
	}
	f.start(ctx)
	e.cfg.Window = 16
	e.opts.Dispatcher = f
	// The stuck-claim timeout: longer than any live copy takes even on a
	// loaded machine (a live claim recovered mid-copy would be copied
	// twice, which is what the timeout's lower bound in
	// GEOBLOB_SYNC_TIMEOUT's description is about), short enough for a test.
	e.opts.SyncTimeout = 8 * time.Second
	// Lost requests are sent again once their dispatch lease ends.
	e.cfg.DispatchLease = 4 * time.Second

	for ctx.Err() == nil {
		rep, err := e.runner().Run(ctx, backfill.Request{})
		require.NoError(t, err)
		inFlight, err := e.reg.CountDispatched(ctx, e.cfg.DispatchLease)
		require.NoError(t, err)
		if backfill.Quiet(rep) && inFlight == 0 && f.outstanding.Load() == 0 {
			break // lost requests were sent again, the dead worker's claims recovered, all copied
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(f.stopSampling)
	e.requireConverged()
	assert.Positive(t, dead.engine.Stats().Transfers, "the dead worker had started copies")
	assert.Positive(t, f.lost.Load(), "requests were lost")
	for i := range objects {
		assert.Equal(t, 1, puts.puts[typedKey(i)], "completed copies of %s", typedKey(i))
	}
	assert.EqualValues(t, objects, f.transfers(), "live workers copied each object once; duplicates copied nothing")
}

// TestSyncStartsOnTheFirstRegisteredBatch: the first pass over a bucket
// starts syncing on the first registered batch, long before registration
// ends: copying in process from a listing, and dispatching to workers from
// an S3 Inventory.
func TestSyncStartsOnTheFirstRegisteredBatch(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"listing, in process", "inventory, dispatched"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{concurrency: 2})
			// Enough batches (50 objects each) that registration outlasts
			// sync's start on a busy machine: the order of the two is what
			// is tested.
			const objects = 1000
			e.putTyped(objects, func(int) int { return 40 })
			e.cfg.BatchSize = 50
			e.opts.ListPageSize = 50
			var f *fleet
			if source == "inventory, dispatched" {
				e.useInventory()
				e.writeInventory(time.Now().Add(time.Second), 50)
				f = newFleet(t, 10)
				f.addWorker(e, 2, e.secondary, 0)
				f.addWorker(e, 2, e.secondary, 0)
				f.start(t.Context())
				e.cfg.Window = 4
				e.opts.Dispatcher = f
			}
			var (
				mu    sync.Mutex
				order []backfill.Phase
			)
			e.opts.Progress = func(p backfill.Progress) {
				mu.Lock()
				order = append(order, p.Phase)
				mu.Unlock()
			}
			rep := e.run(backfill.Request{})
			assert.EqualValues(t, objects, rep.Reconcile.Registered)
			mu.Lock()
			firstSync := slices.Index(order, backfill.PhaseSync)
			lastReconcile := -1
			for i, ph := range order {
				if ph == backfill.PhaseReconcile {
					lastReconcile = i
				}
			}
			mu.Unlock()
			require.GreaterOrEqual(t, firstSync, 0)
			assert.Less(t, firstSync, lastReconcile, "sync started before registration finished")
			if f != nil {
				assert.Positive(t, rep.Sync.Dispatched)
				f.idle(t.Context())
				e.opts.Progress = nil
				dispatchUntilConverged(t, t.Context(), e, f, 20)
			} else {
				assert.EqualValues(t, objects, rep.Sync.Synced)
			}
			e.requireConverged()
		})
	}
}

// TestCompletedListingWaitsForTheRelistInterval: a finished listing pass
// is not started again before GEOBLOB_BACKFILL_RELIST_INTERVAL; sync still
// runs in the meantime.
func TestCompletedListingWaitsForTheRelistInterval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.put(typedKey(1), []byte("one"))
	e.cfg.RelistInterval = time.Hour
	rep := e.run(backfill.Request{})
	require.True(t, rep.Reconcile.PassComplete)
	e.put(typedKey(2), []byte("two"))
	rep = e.run(backfill.Request{})
	assert.Zero(t, rep.Reconcile.Listed, "no new listing within the interval")
	assert.Contains(t, rep.Reconcile.Skipped, "next pass after")

	// An on-demand pass asks for a listing now (the demo, geoblob backfill -relist).
	rep = e.run(backfill.Request{Relist: true})
	assert.EqualValues(t, 1, rep.Reconcile.Registered, "Relist lists within the interval")
	assert.EqualValues(t, 1, rep.Sync.Synced)

	e.put(typedKey(3), []byte("three"))
	e.cfg.RelistInterval = time.Nanosecond
	rep = e.run(backfill.Request{})
	assert.EqualValues(t, 1, rep.Reconcile.Registered)
	assert.EqualValues(t, 1, rep.Sync.Synced)
}
