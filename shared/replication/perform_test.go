package replication_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

// register registers key as backfill does (pending).
func register(t *testing.T, env *rt.Env, key string) context.Context {
	t.Helper()
	ctx := context.Background()
	typ, ok := env.Catalog.Match(key)
	require.True(t, ok)
	_, err := env.Registry.Register(ctx, registry.ObjectEvent{DataType: typ.Name, Key: key, Size: 1})
	require.NoError(t, err)
	return ctx
}

// dispatch registers key as backfill does and leases it the way the
// dispatcher does (without claiming it), returning the request it would
// send.
func dispatch(t *testing.T, env *rt.Env, key string) events.SyncRequest {
	t.Helper()
	ctx := register(t, env, key)
	due, err := env.Registry.NewDueScan(nil, time.Hour, 0).Next(ctx, 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	return events.SyncRequest{DataType: due[0].DataType, Key: key, Generation: due[0].Generation}
}

// dispatchClaimed registers key and claims it the way an older dispatcher
// did (requests of which may still be queued after an upgrade).
func dispatchClaimed(t *testing.T, env *rt.Env, key string) events.SyncRequest {
	t.Helper()
	ctx := register(t, env, key)
	claims, err := env.Registry.ClaimDue(ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, 1)
	return events.SyncRequest{DataType: claims[0].DataType, Key: key, Generation: claims[0].Generation}
}

func TestPerformCopiesOnceForDuplicateRequests(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{Concurrency: 4})
	body := rt.Content(key, 8192)
	env.PutPrimary(t, key, body)
	req := dispatch(t, env, key)

	// Four deliveries of one request at once: exactly one copies.
	var g errgroup.Group
	outs := make([]replication.Outcome, 4)
	for i := range outs {
		g.Go(func() (err error) {
			outs[i], err = env.Engine.Perform(context.Background(), req)
			return err
		})
	}
	require.NoError(t, g.Wait())
	synced := 0
	for _, o := range outs {
		if o == replication.OutcomeSynced {
			synced++
		} else {
			assert.Contains(t, []replication.Outcome{replication.OutcomeInProgress, replication.OutcomeStale}, o)
		}
	}
	assert.Equal(t, 1, synced)
	assert.EqualValues(t, 1, env.Engine.Stats().Transfers, "one copy for four deliveries")
	got, ok := env.SecondaryBytes(t, key)
	require.True(t, ok)
	assert.Equal(t, body, got)

	// Redelivered after it finished: nothing to do.
	o, err := env.Engine.Perform(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeStale, o)
	assert.EqualValues(t, 1, env.Engine.Stats().Transfers)
}

func TestPerformDoesTheRowsCurrentWork(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	ctx := context.Background()
	env.PutPrimary(t, key, rt.Content(key, 100))
	req := dispatch(t, env, key)

	// An event changes the object while the request waits in the queue.
	newer := rt.Content(key+"v2", 300)
	env.PutPrimary(t, key, newer)
	_, err := env.Registry.RecordCreated(ctx, registry.ObjectEvent{DataType: req.DataType, Key: key, Size: 300, Sequencer: "0055AED6DCD90281E9"})
	require.NoError(t, err)

	o, err := env.Engine.Perform(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeSynced, o, "the stale request copies the current object")
	got, _ := env.SecondaryBytes(t, key)
	assert.Equal(t, newer, got)
	assert.Equal(t, registry.StateSynced, env.Row(t, key).State)

	// A request whose claim was recovered as stuck (the worker that
	// claimed it died) is performed when a copy of it finally arrives.
	other := "npm/left-pad/-/left-pad-1.3.0.tgz"
	env.PutPrimary(t, other, rt.Content(other, 50))
	req2 := dispatch(t, env, other)
	_, ok, err := env.Registry.ClaimRequested(ctx, req2.DataType, other)
	require.NoError(t, err)
	require.True(t, ok)
	o, err = env.Engine.Perform(ctx, req2)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeInProgress, o, "claimed by a worker (that then dies)")
	n, err := env.Registry.RecoverStuck(ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	o, err = env.Engine.Perform(ctx, req2)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeSynced, o)

	// A request for a row that no longer exists does nothing.
	o, err = env.Engine.Perform(ctx, events.SyncRequest{DataType: req.DataType, Key: "maven/none/1/none-1.jar", Generation: 3})
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeStale, o)
}

// TestPerformTakesOverAClaimedRequest: a request of a dispatcher that
// claimed the row itself (queued before an upgrade) is taken over once by
// its generation; a duplicate copies nothing; after the claim was
// recovered as stuck the request does the row's work.
func TestPerformTakesOverAClaimedRequest(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	ctx := context.Background()
	body := rt.Content(key, 100)
	env.PutPrimary(t, key, body)
	req := dispatchClaimed(t, env, key)
	o, err := env.Engine.Perform(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeSynced, o)
	o, err = env.Engine.Perform(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeStale, o)
	assert.EqualValues(t, 1, env.Engine.Stats().Transfers)
	got, _ := env.SecondaryBytes(t, key)
	assert.Equal(t, body, got)

	other := "npm/left-pad/-/left-pad-1.3.0.tgz"
	env.PutPrimary(t, other, rt.Content(other, 50))
	req2 := dispatchClaimed(t, env, other)
	n, err := env.Registry.RecoverStuck(ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	o, err = env.Engine.Perform(ctx, req2)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeSynced, o)
}
