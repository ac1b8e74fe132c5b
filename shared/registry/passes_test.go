package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

func TestPassLogKeepsLastPassAndTotals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := registrytest.NewStore(t, registry.Options{})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	passes, err := s.Passes(ctx)
	require.NoError(t, err)
	assert.Empty(t, passes, "no pass has run")

	require.NoError(t, s.RecordPass(ctx, registry.PassResult{Job: registry.JobBackfill, Started: t0,
		Finished: t0.Add(time.Second), Summary: map[string]int{"synced": 3}}))
	require.NoError(t, s.RecordPass(ctx, registry.PassResult{Job: registry.JobBackfill, Started: t0.Add(time.Minute),
		Finished: t0.Add(time.Minute + 2*time.Second), Err: errors.New("listing failed: " + strings.Repeat("x", 400))}))
	require.NoError(t, s.RecordPass(ctx, registry.PassResult{Job: registry.JobVerify, Started: t0, Finished: t0.Add(time.Second)}))

	passes, err = s.Passes(ctx)
	require.NoError(t, err)
	require.Len(t, passes, 2)
	b, v := passes[0], passes[1]
	assert.Equal(t, registry.JobBackfill, b.Job)
	assert.False(t, b.OK, "the last pass failed")
	assert.True(t, strings.HasPrefix(b.Error, "listing failed: "))
	assert.Len(t, b.Error, registry.MaxFailureLen, "error text cut")
	assert.Equal(t, int64(2), b.Passes)
	assert.Equal(t, int64(1), b.Failures)
	require.NotNil(t, b.LastOKAt, "the earlier success is remembered")
	assert.True(t, b.LastOKAt.Equal(t0.Add(time.Second)))
	assert.True(t, b.FinishedAt.Equal(t0.Add(time.Minute+2*time.Second)))
	assert.JSONEq(t, `{}`, string(b.Summary), "a pass without a summary stores {}")

	assert.Equal(t, registry.JobVerify, v.Job)
	assert.True(t, v.OK)
	assert.Equal(t, int64(0), v.Failures)

	assert.Error(t, s.RecordPass(ctx, registry.PassResult{}), "a pass needs a job")
}

func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewDB(t))
	s := registry.New(pool, registry.Options{})
	applied, embedded, err := s.SchemaVersion(ctx)
	require.NoError(t, err, "a database without the version table is at version 0")
	assert.Zero(t, applied)
	assert.GreaterOrEqual(t, embedded, int64(600))

	require.NoError(t, registry.Migrate(ctx, pool))
	applied, embedded2, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, embedded, embedded2)
	assert.Equal(t, embedded, applied, "migrated database is current")
}
