package replication_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

// TestMissingPrimaryBucketIsAnErrorNotAMissingObject: with the primary
// bucket deleted (or renamed), a created event fails retryably with
// ErrNoSuchBucket and the row is never parked as "missing on primary"; a
// removed event deletes nothing on the secondary.
func TestMissingPrimaryBucketIsAnErrorNotAMissingObject(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	ctx := context.Background()
	kept := "npm/left-pad/-/left-pad-1.3.0.tgz"
	env.PutSecondary(t, kept, []byte("the only copy left"))
	require.NoError(t, env.PrimaryS3.Remove(ctx))

	out, err := env.Engine.Apply(ctx, rt.CreatedEvent(key, 10, "10"))
	require.Error(t, err, "a missing bucket is an outage, to be retried")
	assert.ErrorIs(t, err, blobstore.ErrNoSuchBucket)
	assert.True(t, replication.IsRetryable(err))
	assert.NotEqual(t, replication.OutcomeMissingOnPrimary, out)
	row := env.Row(t, key)
	assert.False(t, row.MissingOnPrimary, "never counted as a missing object")
	assert.NotEqual(t, registry.StateSynced, row.State)

	_, _ = env.Engine.Apply(ctx, rt.RemovedEvent(kept, "20"))
	got, ok := env.SecondaryBytes(t, kept)
	assert.True(t, ok, "no delete propagated while the primary bucket is missing")
	assert.Equal(t, []byte("the only copy left"), got)
}
