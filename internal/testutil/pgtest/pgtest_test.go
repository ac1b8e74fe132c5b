package pgtest_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDBIsFreshAndIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := pgtest.NewDB(t), pgtest.NewDB(t)
	require.NotEqual(t, a, b)
	pa, pb := pgtest.Connect(t, a), pgtest.Connect(t, b)
	_, err := pa.Exec(ctx, "CREATE TABLE only_in_a (v int)")
	require.NoError(t, err)
	assert.Equal(t, 1, tableCount(t, pa))
	assert.Equal(t, 0, tableCount(t, pb), "databases must not share tables")
}

var setupRuns atomic.Int32

func TestNewDBFromClonesTemplateOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(ctx context.Context, dsn string) error {
		setupRuns.Add(1)
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return err
		}
		// Deliberately left open: pgtest must terminate it.
		_, err = pool.Exec(ctx, "CREATE TABLE seeded (v int); INSERT INTO seeded VALUES (7)")
		return err
	}
	for range 3 {
		pool := pgtest.Connect(t, pgtest.NewDBFrom(t, "seeded", setup))
		var v int
		require.NoError(t, pool.QueryRow(ctx, "SELECT v FROM seeded").Scan(&v))
		assert.Equal(t, 7, v)
		_, err := pool.Exec(ctx, "INSERT INTO seeded VALUES (8)")
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), setupRuns.Load(), "setup runs once per template key")
}

func TestNewClusterRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := pgtest.NewCluster(t)
	require.NoError(t, c.CreateDatabase(ctx, "r"))
	pool := pgtest.Connect(t, c.DSN("r"))
	_, err := pool.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (1)")
	require.NoError(t, err)
	require.NoError(t, c.Restart(ctx))
	// An idle pooled connection may report the restart once (SQLSTATE
	// 57P01); the next attempt gets a new connection.
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM x").Scan(&n); err != nil {
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM x").Scan(&n), "pool reconnects after restart")
	}
	assert.Equal(t, 1, n, "data survives the restart")
}

func tableCount(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n))
	return n
}
