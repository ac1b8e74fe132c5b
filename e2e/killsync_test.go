package e2e_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/registry"
)

// TestSyncWorkerKilledMidBatchConverges kills the onCreate sync worker
// processes (emulator and bootstrap, as crashed execution environments)
// while they copy sync requests a backfill pass dispatched: the killed
// invocation's messages are delivered again to new processes, a
// redelivered request for a row the dead worker still holds copies nothing
// (the row stays started), and a backfill pass with a short
// GEOBLOB_SYNC_TIMEOUT recovers the abandoned claims and dispatches them
// again, after which every object is on the secondary byte for byte and
// its row synced.
func TestSyncWorkerKilledMidBatchConverges(t *testing.T) {
	fns := fx.runner.RunningFunctions()
	require.NotNil(t, fns, "the end-to-end stack runs the function binaries under the emulator")
	require.NotNil(t, fns.Pool(devstack.SyncQueueName), "the sync-request queue has its own onCreate worker processes")
	workers := devstack.WorkerNames(devstack.FnSyncWorker, devstack.SyncQueueConcurrency)
	pidsBefore := map[string]int{}
	for _, w := range workers {
		require.NotNil(t, fns.Get(w), w)
		pidsBefore[w] = fns.Get(w).EmulatorPID()
	}
	ctx := t.Context()

	// Large objects (multipart copies that take a while), copied once from
	// their events, then put back to pending: only a dispatched sync
	// request copies them again.
	m := newModel()
	const tag = "deadworker-" // the key tag of this test's messages
	keys := faultKeys(t, "deadworker", 4)
	syncedThenPending(t, m, putOps(t, keys, 32<<20))

	// The stack's backfill function dispatches the rows; kill every sync
	// worker as soon as one of them claimed a row for its copy.
	first := fx.rec.len()
	dispatched := make(chan error, 1)
	go func() {
		_, err := fns.Get(devstack.FnBackfill).Invoke(ctx, devstack.ScheduledEvent("us-east-1", "geoblob-backfill", time.Now()))
		dispatched <- err
	}()
	claimed := waitClaimed(t, keys)
	for _, w := range workers {
		require.NoError(t, fns.Get(w).Kill())
	}
	atKill, err := fx.row(ctx, claimed)
	require.NoError(t, err)
	require.NoError(t, <-dispatched, "the backfill pass dispatched the rows")

	// The killed invocation failed as a whole and its sync requests came
	// back, to new worker processes.
	waitRedelivered(t, first, tag, keys)
	restarted := 0
	for _, w := range workers {
		if fns.Get(w).EmulatorPID() != pidsBefore[w] {
			restarted++
		}
	}
	assert.Positive(t, restarted, "a new sync worker process took the redelivered requests")

	// A redelivered request for a row the dead worker holds sees a copy in
	// progress and copies nothing: the abandoned claim stays started
	// with the generation of the dead worker's claim (unless the worker
	// finished that copy in the instant before the kill). Abandoned claims are backfill's job once older than
	// GEOBLOB_SYNC_TIMEOUT: a backfill function started with a 2 s timeout,
	// dispatching through the same sync-request queue, recovers them and
	// the sync workers copy them again.
	held := atKill.State == registry.StateStarted
	if held {
		row, err := fx.row(ctx, claimed)
		require.NoError(t, err)
		assert.Equal(t, registry.StateStarted, row.State, "the dead worker's claim of %s is held until the timeout", claimed)
		assert.Equal(t, atKill.Generation, row.Generation, "the redelivered request for %s did not claim it again (compare-and-set)", claimed)
	}
	endpoint := "http://" + fx.settings.EventsAddr()
	recovered := fx.rec.len()
	recoverClaims(t, m,
		"AWS_ENDPOINT_URL_SQS="+endpoint,
		"GEOBLOB_SYNC_QUEUE_URL="+sqsspool.QueueURL(endpoint, devstack.SyncQueueName),
		"GEOBLOB_SYNC_TIMEOUT=2s")
	assertBuckets(t, m)

	// The recovered claim was copied by a sync worker from a request the
	// recovering pass dispatched (the queue records a delivery once its
	// invocation returned: wait for it).
	if held {
		require.Eventually(t, func() bool {
			synced, _ := requestsDone(recovered)
			return synced[claimed]
		}, time.Minute, 50*time.Millisecond, "the recovered row went through the sync-request queue again")
	}
}
