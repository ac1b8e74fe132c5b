package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TypeStatus is the status of one data type's registry rows, read from the
// incrementally maintained counters (migration 00200): it always equals a
// full recount of blob_registry at the snapshot it was read in, but costs a
// few index lookups, never a scan. Counts are of live (not tombstoned) rows
// unless the field says otherwise.
type TypeStatus struct {
	DataType                string `json:"data_type"`
	Rows                    int64  `json:"rows"`                      // live rows
	Tombstones              int64  `json:"tombstones"`                // rows recording a deletion
	TombstonesPending       int64  `json:"tombstones_pending"`        // deletions not yet propagated
	Pending                 int64  `json:"pending"`                   // queued for sync
	Started                 int64  `json:"started"`                   // being copied
	Synced                  int64  `json:"synced"`                    //
	Failed                  int64  `json:"failed"`                    // failed, waiting for retry (quarantined included)
	VerificationPending     int64  `json:"verification_pending"`      //
	VerificationStarted     int64  `json:"verification_started"`      //
	Verified                int64  `json:"verified"`                  // verification succeeded
	VerificationFailed      int64  `json:"verification_failed"`       //
	ChecksumMismatch        int64  `json:"checksum_mismatch"`         // secondary differs from primary checksum
	PrimaryChecksummed      int64  `json:"primary_checksummed"`       // primary SHA-256 known
	PrimaryVerified         int64  `json:"primary_verified"`          // primary re-read and matched
	PrimaryChecksumFailed   int64  `json:"primary_checksum_failed"`   // primary verification failed
	PrimaryChecksumMismatch int64  `json:"primary_checksum_mismatch"` // primary bytes changed under a known checksum
	MissingOnPrimary        int64  `json:"missing_on_primary"`        //
	Quarantined             int64  `json:"quarantined"`               // rows (any) in quarantine
	BytesTotal              int64  `json:"bytes_total"`               // size of live rows
	BytesSynced             int64  `json:"bytes_replicated"`          // size of live synced rows
	BytesPending            int64  `json:"bytes_pending"`             // size of live rows not synced
	// OldestUnsyncedAt is the last change of the longest-waiting row not
	// synced (pending, started, failed and not quarantined; tombstones
	// included); nil when every row is synced. Same definition as the
	// backfill health metric.
	OldestUnsyncedAt *time.Time `json:"oldest_unsynced_at,omitempty"`
	// OldestUnsyncedAge is now - OldestUnsyncedAt (the current RPO), 0 when
	// nothing waits.
	OldestUnsyncedAge time.Duration `json:"-"`
}

// counterColumns are the columns of registry_type_counters and
// registry_counter_delta in the order of TypeStatus.counterFields.
var counterColumns = []string{"rows", "tombstones", "tombstones_pending", "pending", "started",
	"synced", "failed", "verification_pending", "verification_started", "verified",
	"verification_failed", "checksum_mismatch", "primary_checksummed", "primary_verified",
	"primary_checksum_failed", "primary_checksum_mismatch", "missing_on_primary", "quarantined",
	"bytes_total", "bytes_synced", "bytes_pending"}

func (t *TypeStatus) counterFields() []any {
	return []any{&t.Rows, &t.Tombstones, &t.TombstonesPending, &t.Pending, &t.Started,
		&t.Synced, &t.Failed, &t.VerificationPending, &t.VerificationStarted, &t.Verified,
		&t.VerificationFailed, &t.ChecksumMismatch, &t.PrimaryChecksummed, &t.PrimaryVerified,
		&t.PrimaryChecksumFailed, &t.PrimaryChecksumMismatch, &t.MissingOnPrimary, &t.Quarantined,
		&t.BytesTotal, &t.BytesSynced, &t.BytesPending}
}

// counterList renders the counter columns with each name passed through f.
func counterList(f func(col string) string) string {
	parts := make([]string, len(counterColumns))
	for i, c := range counterColumns {
		parts[i] = f(c)
	}
	return strings.Join(parts, ", ")
}

var (
	// qTypeStatus: summary + not yet rolled-up deltas, one snapshot; the
	// oldest unsynced row per type from three partial indexes.
	qTypeStatus = `
WITH c AS (
	SELECT data_type, ` + counterList(func(c string) string { return "sum(" + c + ")::bigint" }) + `
	FROM (
		SELECT data_type, ` + counterList(func(c string) string { return c }) + ` FROM registry_type_counters
		UNION ALL
		SELECT data_type, ` + counterList(func(c string) string { return c }) + ` FROM registry_counter_delta
	) x
	GROUP BY data_type
)
SELECT c.*, least(
	(SELECT min(b.updated_at) FROM blob_registry b WHERE b.state = 0 AND b.data_type = c.data_type),
	(SELECT min(b.started_at) FROM blob_registry b WHERE b.state = 1 AND b.data_type = c.data_type),
	(SELECT min(b.updated_at) FROM blob_registry b
		WHERE b.state = 3 AND b.quarantined_at IS NULL AND b.data_type = c.data_type))
FROM c
ORDER BY c.data_type`

	// qRollupCounters moves every committed delta into the summary in one
	// statement: a delta row is either deleted and added here, or left
	// for the next rollup. $1 now.
	qRollupCounters = `
WITH d AS (DELETE FROM registry_counter_delta RETURNING *),
agg AS (
	SELECT data_type, ` + counterList(func(c string) string { return "sum(" + c + ")::bigint AS " + c }) + `
	FROM d GROUP BY data_type
)
INSERT INTO registry_type_counters AS t (data_type, ` + counterList(func(c string) string { return c }) + `, updated_at)
SELECT data_type, ` + counterList(func(c string) string { return c }) + `, $1 FROM agg
ON CONFLICT (data_type) DO UPDATE SET ` + counterList(func(c string) string { return c + " = t." + c + " + EXCLUDED." + c }) + `,
	updated_at = EXCLUDED.updated_at`
)

// rollupLockID is the advisory lock that keeps rollups from queueing behind
// each other ("geoblob-counters").
const rollupLockID int64 = 0x67656f636e7472

// TypeStatus returns one entry per data type that has (or had) registry
// rows, ordered by type. It first folds pending counter deltas into the
// summary (skipped when another rollup runs), then reads summary + deltas:
// the figures are exact at the statement's snapshot and the cost does not
// grow with the table.
func (s *Store) TypeStatus(ctx context.Context) ([]TypeStatus, error) {
	if _, err := s.RollupCounters(ctx); err != nil {
		return nil, err
	}
	return s.readTypeStatus(ctx, s.pool)
}

// readTypeStatus reads summary + deltas through q (no rollup).
func (s *Store) readTypeStatus(ctx context.Context, q querier) ([]TypeStatus, error) {
	now := s.now()
	return collect(ctx, q, "type status", func(r pgx.CollectableRow) (TypeStatus, error) {
		var t TypeStatus
		dest := append([]any{&t.DataType}, t.counterFields()...)
		if err := r.Scan(append(dest, &t.OldestUnsyncedAt)...); err != nil {
			return t, err
		}
		if t.OldestUnsyncedAt != nil {
			t.OldestUnsyncedAge = max(now.Sub(*t.OldestUnsyncedAt), 0)
		}
		return t, nil
	}, qTypeStatus)
}

// RollupCounters folds the committed counter deltas into the per-type
// summary and reports whether it ran (false: another rollup holds the lock;
// its work covers ours). It changes no figure TypeStatus reports. It never
// blocks writers of blob_registry, except that when the delta table has
// grown past deltaCompactBytes (a write burst leaves its pages behind, and
// every read scans them) it waits up to deltaCompactWait for the table's
// lock to empty it with TRUNCATE, holding writers for that long at most;
// if the lock is not granted by then it rolls up as usual.
func (s *Store) RollupCounters(ctx context.Context) (bool, error) {
	ran := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// one round trip (every status read rolls up): the lock, and
		// whether the delta table has grown enough to be emptied
		var big bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1), pg_relation_size('registry_counter_delta') > $2`,
			rollupLockID, deltaCompactBytes).Scan(&ran, &big); err != nil || !ran {
			return err
		}
		if big {
			compacted, err := s.compactDeltas(ctx, tx)
			if err != nil || compacted {
				return err
			}
		}
		_, err := tx.Exec(ctx, qRollupCounters, s.now())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("registry: rollup counters: %w", err)
	}
	return ran, nil
}

// The delta table is emptied with TRUNCATE once it is larger than
// deltaCompactBytes, if its lock comes within deltaCompactWait.
const (
	deltaCompactBytes = 8 << 20
	deltaCompactWait  = "100ms"
)

// compactDeltas rolls every delta up and truncates the delta table under
// its exclusive lock, in a savepoint of tx; it reports false (and leaves
// tx as it was) when the lock is not granted within deltaCompactWait.
// TRUNCATE is safe for TypeStatus's single READ COMMITTED statement: it
// takes its locks before its snapshot, so it reads the summary and the
// deltas both before or both after this commit.
func (s *Store) compactDeltas(ctx context.Context, tx pgx.Tx) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	if _, err := sp.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, deltaCompactWait); err != nil {
		_ = sp.Rollback(ctx)
		return false, err
	}
	if _, err := sp.Exec(ctx, `LOCK TABLE registry_counter_delta IN ACCESS EXCLUSIVE MODE`); err != nil {
		_ = sp.Rollback(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return false, nil
		}
		return false, err
	}
	if _, err := sp.Exec(ctx, qRollupCounters, s.now()); err != nil {
		_ = sp.Rollback(ctx)
		return false, err
	}
	if _, err := sp.Exec(ctx, `TRUNCATE registry_counter_delta`); err != nil {
		_ = sp.Rollback(ctx)
		return false, err
	}
	return true, sp.Commit(ctx)
}
