package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
)

// TestClaimDueUsesPendingIndex guards against the plan that walks the
// primary key and filters past every already-claimed row (claims then get
// slower with every batch): with statistics saying "everything is pending"
// and half the rows claimed, the pending scan must use the partial index.
func TestClaimDueUsesPendingIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	require.NoError(t, Migrate(ctx, pool))
	_, err := pool.Exec(ctx, `
		INSERT INTO blob_registry (data_type, object_key, size, etag, created_at, updated_at)
		SELECT 'type_' || (i % 7), 'key/' || i, 1024, 'etag', now(), now()
		FROM generate_series(1, 20000) AS i`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE blob_registry")
	require.NoError(t, err)
	s := New(pool, Options{})
	for range 20 {
		claims, err := s.ClaimDue(ctx, ClaimOptions{Limit: 500})
		require.NoError(t, err)
		require.Len(t, claims, 500)
	}
	plan := explain(t, pool, qClaimDue, 100, nil, time.Now(), nil)
	assert.Contains(t, plan, "blob_registry_pending_idx", plan)
	assert.Contains(t, plan, "blob_registry_failed_retry_idx", plan)
}

// TestVerificationClaimUsesDueIndex: with most rows verified (low ids) and
// the rest pending, the pending verification claim must read the partial
// index by id, not walk the primary key past every verified row (each
// claim O(rows verified), a pass O(n^2); seen at 300,000 objects).
func TestVerificationClaimUsesDueIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	require.NoError(t, Migrate(ctx, pool))
	_, err := pool.Exec(ctx, `
		INSERT INTO blob_registry (data_type, object_key, size, etag, state, last_synced_at, primary_sha256,
			verification_state, verified_at, created_at, updated_at)
		SELECT 'type_' || (i % 7), 'key/' || i, 1024, 'etag', 2, now(), repeat('a', 64),
			CASE WHEN i <= 15000 THEN 2 ELSE 0 END, CASE WHEN i <= 15000 THEN now() END, now(), now()
		FROM generate_series(1, 20000) AS i`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE blob_registry")
	require.NoError(t, err)
	plan := explain(t, pool, qClaimSecondary, 100, time.Now(), int64(90*24*time.Hour/time.Microsecond), int64(0), nil)
	assert.Contains(t, plan, "blob_registry_verification_due_idx", plan)
}

// explain returns PostgreSQL's plan for sql with args, in a transaction it
// rolls back (the claims lock rows).
func explain(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}
