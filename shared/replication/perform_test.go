package replication_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

// dispatch registers key as backfill does and claims it the way the
// dispatcher does, returning the request it would send.
func dispatch(t *testing.T, env *rt.Env, key string) events.SyncRequest {
	t.Helper()
	ctx := context.Background()
	typ, ok := env.Catalog.Match(key)
	require.True(t, ok)
	_, err := env.Registry.Register(ctx, registry.ObjectEvent{DataType: typ.Name, Key: key, Size: 1})
	require.NoError(t, err)
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

	// A request whose claim was recovered as stuck (the worker died) is
	// performed when it finally arrives.
	other := "npm/left-pad/-/left-pad-1.3.0.tgz"
	env.PutPrimary(t, other, rt.Content(other, 50))
	req2 := dispatch(t, env, other)
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
