package registrytest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// seedSQL inserts $1 rows per type of $2 with every state mix: row i has
// replication state i%4, verification state i%5 (synced rows only),
// missing on primary when i%7 = 0, a checksum mismatch when i%11 = 0,
// quarantined when failed and i%3 = 0, a tombstone when i%13 = 0.
const seedSQL = `
INSERT INTO blob_registry (data_type, object_key, state, started_at, retry_at, retry_count,
	last_sync_failure, last_synced_at, size, primary_sha256, secondary_sha256, missing_on_primary,
	checksum_mismatch, quarantined_at, deleted_at, verification_state, verification_started_at,
	verified_at, created_at, updated_at)
SELECT t, format('pkg/%s/%s/file-%s', t, i % 10, i), i % 4,
	CASE WHEN i % 4 = 1 THEN ts END, CASE WHEN i % 4 = 3 THEN ts END, (i % 4 = 3)::int * 2,
	CASE WHEN i % 4 = 3 THEN 'copy failed' END,
	CASE WHEN i % 4 = 2 THEN ts - make_interval(secs => i) END, i * 10,
	repeat('a', 64), CASE WHEN i % 4 = 2 THEN repeat('b', 64) ELSE '' END,
	i % 7 = 0, i % 11 = 0, CASE WHEN i % 4 = 3 AND i % 3 = 0 THEN ts END,
	CASE WHEN i % 13 = 0 THEN ts END,
	CASE WHEN i % 4 = 2 THEN i % 5 ELSE 4 END,
	CASE WHEN i % 4 = 2 AND i % 5 = 1 THEN ts END,
	CASE WHEN i % 4 = 2 AND i % 5 = 2 THEN ts - make_interval(secs => i) END,
	ts, ts
FROM unnest($2::text[]) t, generate_series(1, $1) i, (SELECT '2026-03-01 12:00:00+00'::timestamptz AS ts) c`

// Seed inserts perType rows of each type straight into blob_registry (fast,
// for list, filter and bulk tests), with every state mix: see seedSQL.
func Seed(t testing.TB, pool *pgxpool.Pool, perType int, types ...string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), seedSQL, perType, types); err != nil {
		t.Fatalf("registrytest: seed: %v", err)
	}
}
