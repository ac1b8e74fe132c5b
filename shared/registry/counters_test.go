package registry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// recount is the oracle: the figures of TypeStatus computed by counting
// blob_registry, written independently of the migration's trigger SQL.
const recount = `
SELECT data_type,
	count(*) FILTER (WHERE deleted_at IS NULL),
	count(*) FILTER (WHERE deleted_at IS NOT NULL),
	count(*) FILTER (WHERE deleted_at IS NOT NULL AND state <> 2),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 0),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 1),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 2),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 3),
	count(*) FILTER (WHERE deleted_at IS NULL AND verification_state = 0),
	count(*) FILTER (WHERE deleted_at IS NULL AND verification_state = 1),
	count(*) FILTER (WHERE deleted_at IS NULL AND verification_state = 2),
	count(*) FILTER (WHERE deleted_at IS NULL AND verification_state = 3),
	count(*) FILTER (WHERE deleted_at IS NULL AND checksum_mismatch),
	count(*) FILTER (WHERE deleted_at IS NULL AND primary_sha256 <> ''),
	count(*) FILTER (WHERE deleted_at IS NULL AND primary_verification_state = 2),
	count(*) FILTER (WHERE deleted_at IS NULL AND primary_verification_state = 3),
	count(*) FILTER (WHERE deleted_at IS NULL AND primary_checksum_mismatch),
	count(*) FILTER (WHERE deleted_at IS NULL AND missing_on_primary),
	count(*) FILTER (WHERE quarantined_at IS NOT NULL),
	coalesce(sum(size) FILTER (WHERE deleted_at IS NULL), 0)::bigint,
	coalesce(sum(size) FILTER (WHERE deleted_at IS NULL AND state = 2), 0)::bigint,
	coalesce(sum(size) FILTER (WHERE deleted_at IS NULL AND state <> 2), 0)::bigint,
	least(min(updated_at) FILTER (WHERE state = 0), min(started_at) FILTER (WHERE state = 1),
		min(updated_at) FILTER (WHERE state = 3 AND quarantined_at IS NULL))
FROM blob_registry GROUP BY data_type ORDER BY data_type`

func fullRecount(t *testing.T, pool *pgxpool.Pool) map[string]registry.TypeStatus {
	t.Helper()
	rows, err := pool.Query(context.Background(), recount)
	require.NoError(t, err)
	out := map[string]registry.TypeStatus{}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
		var s registry.TypeStatus
		err := r.Scan(&s.DataType, &s.Rows, &s.Tombstones, &s.TombstonesPending, &s.Pending, &s.Started,
			&s.Synced, &s.Failed, &s.VerificationPending, &s.VerificationStarted, &s.Verified,
			&s.VerificationFailed, &s.ChecksumMismatch, &s.PrimaryChecksummed, &s.PrimaryVerified,
			&s.PrimaryChecksumFailed, &s.PrimaryChecksumMismatch, &s.MissingOnPrimary, &s.Quarantined,
			&s.BytesTotal, &s.BytesSynced, &s.BytesPending, &s.OldestUnsyncedAt)
		out[s.DataType] = s
		return struct{}{}, err
	})
	require.NoError(t, err)
	return out
}

// assertCountersExact compares TypeStatus with the recount, ignoring the
// age (it depends on the read time).
func assertCountersExact(t *testing.T, store *registry.Store, pool *pgxpool.Pool) {
	t.Helper()
	got, err := store.TypeStatus(context.Background())
	require.NoError(t, err)
	want := fullRecount(t, pool)
	gotMap := map[string]registry.TypeStatus{}
	for _, s := range got {
		s.OldestUnsyncedAge = 0
		if s.OldestUnsyncedAt != nil {
			u := s.OldestUnsyncedAt.UTC()
			s.OldestUnsyncedAt = &u
		}
		gotMap[s.DataType] = s
	}
	for k, s := range want {
		if s.OldestUnsyncedAt != nil {
			u := s.OldestUnsyncedAt.UTC()
			s.OldestUnsyncedAt = &u
			want[k] = s
		}
	}
	for k, s := range gotMap {
		if _, ok := want[k]; !ok {
			assert.Equal(t, registry.TypeStatus{DataType: k}, s, "a type without rows counts zero")
			delete(gotMap, k)
		}
	}
	assert.Equal(t, want, gotMap)
}

func TestTypeStatusSimple(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := registrytest.NewClock(time.Time{})
	store, pool := registrytest.NewStorePool(t, registry.Options{Clock: clock.Now})

	got, err := store.TypeStatus(ctx)
	require.NoError(t, err)
	assert.Empty(t, got)

	t0 := clock.Now()
	for i := range 3 {
		_, err := store.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: fmt.Sprintf("k%d", i), Size: 10})
		require.NoError(t, err)
		clock.Advance(time.Second)
	}
	_, err = store.RecordCreated(ctx, registry.ObjectEvent{DataType: "maven", Key: "m", Size: 7})
	require.NoError(t, err)
	claims, err := store.ClaimDue(ctx, registry.ClaimOptions{DataTypes: []string{"npm"}, Limit: 2})
	require.NoError(t, err)
	require.Len(t, claims, 2)
	ok, err := store.MarkSynced(ctx, claims[0], registry.SyncResult{Size: 10, SHA256: fmt64("a")})
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = store.MarkFailed(ctx, claims[1], "boom", true)
	require.NoError(t, err)
	require.True(t, ok)
	clock.Advance(time.Minute)

	got, err = store.TypeStatus(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "maven", got[0].DataType)
	npm := got[1]
	assert.Equal(t, int64(3), npm.Rows)
	assert.Equal(t, int64(1), npm.Synced)
	assert.Equal(t, int64(1), npm.Failed)
	assert.Equal(t, int64(1), npm.Pending)
	assert.Equal(t, int64(1), npm.MissingOnPrimary)
	assert.Equal(t, int64(1), npm.VerificationPending)
	assert.Equal(t, int64(1), npm.PrimaryChecksummed)
	assert.Equal(t, int64(10), npm.BytesSynced)
	assert.Equal(t, int64(20), npm.BytesPending)
	require.NotNil(t, npm.OldestUnsyncedAt)
	// k2 has been pending since t0+2s; the failed row changed at t0+3s.
	assert.Equal(t, t0.Add(2*time.Second), npm.OldestUnsyncedAt.UTC())
	assert.Equal(t, time.Minute+time.Second, npm.OldestUnsyncedAge)
	assertCountersExact(t, store, pool)

	_, err = pool.Exec(ctx, "TRUNCATE blob_registry")
	require.NoError(t, err)
	got, err = store.TypeStatus(ctx)
	require.NoError(t, err)
	assert.Empty(t, got, "truncate resets the counters")
}

func fmt64(s string) string {
	for len(s) < 64 {
		s += s
	}
	return fmt.Sprintf("%x", s)[:64]
}

// TestCountersExactUnderChaos runs concurrent transitions through every
// path that writes blob_registry (events, batches, claims, marks, resyncs,
// recoveries, verification and quarantine updates, deletes, rolled-back
// transactions, killed connections, concurrent rollups), then checks the
// counters against a full recount.
func TestCountersExactUnderChaos(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := registrytest.NewStorePool(t, registry.Options{})
	types := []string{"npm", "maven", "pypi"}
	key := func(r *rand.Rand) (string, string) {
		return types[r.IntN(len(types))], fmt.Sprintf("k/%03d", r.IntN(200))
	}
	const workers, steps = 6, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range steps {
				dt, k := key(r)
				ev := registry.ObjectEvent{DataType: dt, Key: k, Size: int64(r.IntN(1000)),
					ETag: fmt.Sprint(r.IntN(3)), Sequencer: fmt.Sprintf("%x", i*workers+w+1)}
				var err error
				switch r.IntN(12) {
				case 0, 1:
					_, err = store.RecordCreated(ctx, ev)
				case 2:
					_, err = store.RecordRemoved(ctx, ev)
				case 3:
					var batch []registry.BatchEvent
					for range 5 {
						dt2, k2 := key(r)
						batch = append(batch, registry.BatchEvent{Kind: registry.EventKind(r.IntN(2)),
							ObjectEvent: registry.ObjectEvent{DataType: dt2, Key: k2, Size: int64(r.IntN(100))}})
					}
					_, err = store.RecordBatch(ctx, batch)
				case 4, 5, 6:
					var claims []registry.Claim
					claims, err = store.ClaimDue(ctx, registry.ClaimOptions{Limit: 4})
					for _, c := range claims {
						if err != nil {
							break
						}
						if r.IntN(3) == 0 {
							_, err = store.MarkFailed(ctx, c, "chaos", r.IntN(2) == 0)
						} else {
							_, err = store.MarkSynced(ctx, c, registry.SyncResult{Size: int64(r.IntN(500)), SHA256: fmt64(fmt.Sprint(r.IntN(9)))})
						}
					}
				case 7:
					err = store.Resync(ctx, dt, k)
					if err != nil && errors.Is(err, registry.ErrNotFound) {
						err = nil
					}
				case 8:
					_, err = store.RecoverStuck(ctx, 0)
				case 9:
					_, err = pool.Exec(ctx, `UPDATE blob_registry SET verification_state = $3,
						verification_started_at = now(), checksum_mismatch = $4, primary_verification_state = $5,
						primary_verification_started_at = now(), primary_checksum_mismatch = $4,
						quarantined_at = CASE WHEN state = 3 THEN now() END
						WHERE data_type = $1 AND object_key >= $2`, dt, k, r.IntN(5), r.IntN(2) == 0, r.IntN(5))
				case 10:
					// a transaction that writes and rolls back, and one whose
					// connection dies mid-transaction
					tx, txErr := pool.Begin(ctx)
					require.NoError(t, txErr)
					_, err = tx.Exec(ctx, `UPDATE blob_registry SET size = size + 1 WHERE data_type = $1`, dt)
					if r.IntN(2) == 0 {
						_ = tx.Rollback(ctx)
					} else {
						_ = tx.Conn().Close(ctx)
						_ = tx.Rollback(ctx)
					}
				case 11:
					if r.IntN(2) == 0 {
						_, err = pool.Exec(ctx, `DELETE FROM blob_registry WHERE data_type = $1 AND object_key = $2`, dt, k)
					} else {
						_, err = store.RollupCounters(ctx)
					}
				}
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
					err = nil // the chaos updates lock rows in any order: an aborted transaction is a fine outcome
				}
				if err != nil {
					assert.NoError(t, err)
				}
			}
		}()
	}
	// status readers run all along (and are done before the final checks:
	// a rollup still running would hold deltas the checks count)
	done, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
				_, err := store.TypeStatus(ctx)
				assert.NoError(t, err)
			}
		}
	}()
	wg.Wait()
	close(done)
	<-readerDone
	assertCountersExact(t, store, pool)
	var deltas int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM registry_counter_delta").Scan(&deltas))
	assert.Zero(t, deltas, "TypeStatus rolled every committed delta up")
}

// TestRollupTruncatesDeltasAfterABurst: a delta table left large by a
// write burst is emptied (TRUNCATE, file size 0) by the next rollup that
// gets its lock within the wait, with every figure still exact; while a
// writer holds the table the rollup falls back to deleting, and the runtime
// role may do it.
func TestRollupTruncatesDeltasAfterABurst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, runtime, _ := runtimeDB(t)
	store := registry.New(pool, registry.Options{})
	for i := range 20 {
		_, err := store.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: fmt.Sprintf("k%02d", i), Size: 7})
		require.NoError(t, err)
	}
	// the burst: 100,000 statements' worth of (zero) deltas, then the rows
	// deleted as a rollup would, which leaves the pages behind
	_, err := pool.Exec(ctx, `INSERT INTO registry_counter_delta (data_type) SELECT 'npm' FROM generate_series(1, 100000)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM registry_counter_delta WHERE rows = 0 AND pending = 0 AND bytes_total = 0`)
	require.NoError(t, err)
	size := func() int64 {
		var n int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT pg_relation_size('registry_counter_delta')`).Scan(&n))
		return n
	}
	require.Greater(t, size(), int64(8<<20), "the burst left pages behind")

	// a writer's transaction holds the delta table: the rollup does not wait
	// for it beyond its 100 ms, and still rolls up
	writer, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = writer.Exec(ctx, `UPDATE blob_registry SET size = size + 1 WHERE data_type = 'npm' AND object_key = 'k00'`)
	require.NoError(t, err)
	ran, err := store.RollupCounters(ctx)
	require.NoError(t, err)
	assert.True(t, ran)
	assert.Greater(t, size(), int64(8<<20), "not truncated while a writer held the table")
	require.NoError(t, writer.Commit(ctx))

	// as the runtime role (DML only, plus TRUNCATE of this one table)
	_, err = registry.New(runtime, registry.Options{}).RollupCounters(ctx)
	require.NoError(t, err)
	assert.Zero(t, size(), "emptied by TRUNCATE")
	assertCountersExact(t, store, pool)
	st, err := store.TypeStatus(ctx)
	require.NoError(t, err)
	require.Len(t, st, 1)
	assert.Equal(t, int64(20), st[0].Pending)
	assert.Equal(t, int64(141), st[0].BytesTotal, "20 rows of 7 bytes, one grown by 1")
}
