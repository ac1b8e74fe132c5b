package registry_test

import (
	"context"
	"errors"
	"fmt"
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

// TestProgressDrainAndETA records the backlog the way the scheduled
// backfill pass does while rows are copied, and checks the baseline, the
// drain rate and the ETA the status derives, the 30 s sampling gap and
// the one-day retention.
func TestProgressDrainAndETA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := registrytest.NewClock(t0)
	s := registrytest.NewStore(t, registry.Options{Clock: clock.Now})
	sample := func() map[string]registry.TypeStatus {
		t.Helper()
		st, err := s.TypeStatus(ctx)
		require.NoError(t, err)
		require.NoError(t, s.RecordProgress(ctx, st))
		m := map[string]registry.TypeStatus{}
		for _, x := range st {
			m[x.DataType] = x
		}
		return m
	}
	for i := range 100 {
		_, err := s.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: fmt.Sprintf("k%03d", i), Size: 10})
		require.NoError(t, err)
	}
	_, err := s.RecordCreated(ctx, registry.ObjectEvent{DataType: "maven", Key: "stuck", Size: 5})
	require.NoError(t, err)
	sample() // t0: npm 100 waiting, maven 1

	base, err := s.ProgressBaselines(ctx, registry.ProgressWindow)
	require.NoError(t, err)
	require.Contains(t, base, "npm")
	assert.Equal(t, int64(100), base["npm"].Backlog)
	assert.Equal(t, int64(1000), base["npm"].BacklogBytes)
	p := registry.ProgressOf(clock.Now(), 100, 1000, ptr(base["npm"]))
	assert.Equal(t, registry.TrendUnknown, p.Trend, "no history yet")

	// 10 minutes later 60 npm rows are synced (claimed in FIFO order and finished)
	clock.Advance(10 * time.Minute)
	synced := 0
	for synced < 60 {
		claims, err := s.ClaimDue(ctx, registry.ClaimOptions{Limit: 60 - synced, DataTypes: []string{"npm"}})
		require.NoError(t, err)
		require.NotEmpty(t, claims)
		for _, c := range claims {
			_, err := s.MarkSynced(ctx, c, registry.SyncResult{Size: 10})
			require.NoError(t, err)
		}
		synced += len(claims)
	}
	now := sample()
	clock.Advance(10 * time.Second)
	sample() // within 30 s of the last sample: skipped, the baseline stays t0

	base, err = s.ProgressBaselines(ctx, registry.ProgressWindow)
	require.NoError(t, err)
	assert.True(t, base["npm"].At.Equal(t0), "baseline: the oldest sample in the window, got %s", base["npm"].At)
	recent, err := s.ProgressBaselines(ctx, 5*time.Second)
	require.NoError(t, err)
	assert.NotContains(t, recent, "npm", "the sample 10 s after the last one was skipped")
	rows, bytes := now["npm"].Backlog()
	require.Equal(t, int64(40), rows)
	require.Equal(t, int64(400), bytes)
	p = registry.ProgressOf(clock.Now(), rows, bytes, ptr(base["npm"]))
	assert.Equal(t, registry.TrendDraining, p.Trend)
	assert.InDelta(t, 60.0/610, p.DrainPerSecond, 1e-9, "60 rows in 610 s")
	assert.InDelta(t, 600.0/610, p.DrainBytesPerSecond, 1e-9)
	require.NotNil(t, p.ETASeconds)
	assert.Equal(t, 407.0, *p.ETASeconds, "40 rows at 60/610 per second: 406.7 s, rounded up")

	m := now["maven"]
	mr, mb := m.Backlog()
	pm := registry.ProgressOf(clock.Now(), mr, mb, ptr(base["maven"]))
	assert.Equal(t, registry.TrendStalled, pm.Trend, "maven's row has not moved in 10 minutes")
	assert.Nil(t, pm.ETASeconds)
	assert.Equal(t, registry.TrendGrowing, registry.ProgressOf(clock.Now(), 50, 0,
		&registry.ProgressSample{At: t0, Backlog: 10}).Trend)
	assert.Equal(t, registry.TrendIdle, registry.ProgressOf(clock.Now(), 0, 0, nil).Trend)

	// a day later: the old samples are forgotten when the next one is taken
	clock.Advance(25 * time.Hour)
	sample()
	base, err = s.ProgressBaselines(ctx, 48*time.Hour)
	require.NoError(t, err)
	assert.True(t, base["npm"].At.Equal(clock.Now()), "samples older than a day are gone")
}

func ptr[T any](v T) *T { return &v }
