package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The statements backfill needs on blob_registry. Those that work on a
// batch of listed objects run in the caller's transaction (which also moves
// the caller's cursor): the batch is staged in a temporary table that lives
// until the transaction ends.

// ListedObject is one object of an enabled data type found on the primary
// by a listing or an S3 Inventory report.
type ListedObject struct {
	DataType, Key, ETag string
	Size                int64
}

// KeyRef names a registry row.
type KeyRef struct {
	DataType, Key string
}

// StageListed copies objs into tx's staging table and registers those
// without a row as pending (created at now). It returns how many it
// registered and the staged objects whose row, not changed since
// unchangedSince, disagrees with the listing (a tombstone, or a synced row
// with another ETag): the caller checks those with a HEAD. The staging
// table is what ListingOrphans and RememberStaged read, until tx ends.
func (s *Store) StageListed(ctx context.Context, tx pgx.Tx, objs []ListedObject, now, unchangedSince time.Time) (int64, []KeyRef, error) {
	if _, err := tx.Exec(ctx, qStageCreate); err != nil {
		return 0, nil, fmt.Errorf("registry: staging table: %w", err)
	}
	if len(objs) == 0 {
		return 0, nil, nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, stageColumns, pgx.CopyFromSlice(len(objs), func(i int) ([]any, error) {
		o := objs[i]
		return []any{o.DataType, o.Key, o.Size, o.ETag}, nil
	})); err != nil {
		return 0, nil, fmt.Errorf("registry: copy %d listed objects: %w", len(objs), err)
	}
	rows, err := tx.Query(ctx, qRegisterStaged, now, unchangedSince)
	if err != nil {
		return 0, nil, fmt.Errorf("registry: register %d listed objects: %w", len(objs), err)
	}
	var (
		changed    []KeyRef
		registered int64
		inserted   bool
		k          KeyRef
	)
	_, err = pgx.ForEachRow(rows, []any{&inserted, &k.DataType, &k.Key}, func() error {
		if inserted {
			registered++
		} else {
			changed = append(changed, k)
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("registry: register %d listed objects: %w", len(objs), err)
	}
	return registered, changed, nil
}

// ListingOrphans returns, in key order, the live rows of dataTypes (and the
// Store's KeyPrefixes) created before createdBefore whose key lies in the
// range (after, upTo] (upTo nil = to the end) and is not in tx's staging
// table: their primary object is gone, unless a create raced the listing.
func (s *Store) ListingOrphans(ctx context.Context, tx pgx.Tx, dataTypes []string, after string, upTo *string, createdBefore time.Time) ([]KeyRef, error) {
	return collect(ctx, tx, "listing orphans", scanKeyRef,
		qListingOrphans, dataTypes, after, upTo, createdBefore, s.prefixes)
}

func scanKeyRef(row pgx.CollectableRow) (KeyRef, error) {
	var k KeyRef
	return k, row.Scan(&k.DataType, &k.Key)
}

// RememberStaged adds the keys of tx's staging table to the seen keys of
// the inventory pass named cursor (table backfill_seen), which
// InventoryOrphans reads.
func (s *Store) RememberStaged(ctx context.Context, tx pgx.Tx, cursor string) error {
	if _, err := tx.Exec(ctx, qSeenStaged, cursor); err != nil {
		return fmt.Errorf("registry: remember seen keys: %w", err)
	}
	return nil
}

// InventoryOrphans returns up to limit live rows of dataTypes (and the
// Store's KeyPrefixes) with id > afterID, created before createdBefore,
// that the inventory pass named cursor did not see, in id order, and the
// last id returned.
func (s *Store) InventoryOrphans(ctx context.Context, cursor string, dataTypes []string, createdBefore time.Time, afterID int64, limit int) ([]KeyRef, int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: inventory orphans: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// A nested-loop anti-join over the unindexed seen table would take
	// hours at a million keys; make the planner hash it.
	if _, err := tx.Exec(ctx, "SET LOCAL enable_nestloop = off"); err != nil {
		return nil, 0, fmt.Errorf("registry: inventory orphans: %w", err)
	}
	rows, err := tx.Query(ctx, qInventoryOrphans, cursor, dataTypes, createdBefore, afterID, s.prefixes)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: inventory orphans: %w", err)
	}
	defer rows.Close()
	var (
		out    []KeyRef
		lastID int64
	)
	for len(out) < limit && rows.Next() {
		var k KeyRef
		if err := rows.Scan(&lastID, &k.DataType, &k.Key); err != nil {
			return nil, 0, fmt.Errorf("registry: inventory orphans: %w", err)
		}
		out = append(out, k)
	}
	if len(out) < limit {
		if err := rows.Err(); err != nil {
			return nil, 0, fmt.Errorf("registry: inventory orphans: %w", err)
		}
	}
	return out, lastID, nil
}

// CountDue returns how many rows of dataTypes (and the Store's KeyPrefixes)
// ClaimDue would claim now.
func (s *Store) CountDue(ctx context.Context, dataTypes []string) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, qCountDue, dataTypes, s.now(), s.prefixes).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry: count due: %w", err)
	}
	return n, nil
}

// Quarantine parks the failed rows of dataTypes that used up maxAttempts:
// they are kept and counted but never due, until ResyncQuarantined. It
// returns how many rows it parked.
func (s *Store) Quarantine(ctx context.Context, maxAttempts int, dataTypes []string) (int64, error) {
	tag, err := s.pool.Exec(ctx, qQuarantine, maxAttempts, dataTypes, s.now())
	if err != nil {
		return 0, fmt.Errorf("registry: quarantine: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ResyncQuarantined ends the quarantine of rows and makes them pending
// (attempts reset, generation bumped): every quarantined row of dataTypes,
// or only the row of key when key is not empty. It returns how many rows it
// changed.
func (s *Store) ResyncQuarantined(ctx context.Context, dataTypes []string, key string) (int64, error) {
	tag, err := s.pool.Exec(ctx, qResyncQuarantined, dataTypes, key, s.now())
	if err != nil {
		return 0, fmt.Errorf("registry: resync quarantined: %w", err)
	}
	return tag.RowsAffected(), nil
}

// QuarantineStats is the backfill view of one data type.
type QuarantineStats struct {
	DataType    string
	Quarantined int64 // failed rows parked until a resync is requested
	Pending     int64
	Failed      int64 // failed rows still retried
}

// QuarantineStatus returns, per data type of dataTypes present, the
// quarantined, pending and retried failed rows.
func (s *Store) QuarantineStatus(ctx context.Context, dataTypes []string) ([]QuarantineStats, error) {
	return collect(ctx, s.pool, "quarantine status", func(row pgx.CollectableRow) (QuarantineStats, error) {
		var q QuarantineStats
		return q, row.Scan(&q.DataType, &q.Quarantined, &q.Pending, &q.Failed)
	}, qQuarantineStats, dataTypes)
}

// LiveKeys returns the keys among keys that have a live (not tombstoned)
// row of one of dataTypes.
func (s *Store) LiveKeys(ctx context.Context, keys, dataTypes []string) ([]string, error) {
	return collect(ctx, s.pool, "live keys", pgx.RowTo[string], qLiveKeys, keys, dataTypes)
}

// Health is the registry's replication health over some data types.
type Health struct {
	OldestUnsynced *time.Time // oldest last change of a live row waiting for a sync; nil when none waits
	Failed         int64      // failed rows still retried
	Quarantined    int64      // failed rows parked
}

// Health reads the replication health of dataTypes.
func (s *Store) Health(ctx context.Context, dataTypes []string) (Health, error) {
	var h Health
	if err := s.pool.QueryRow(ctx, qHealth, dataTypes).Scan(&h.OldestUnsynced, &h.Failed, &h.Quarantined); err != nil {
		return Health{}, fmt.Errorf("registry: health: %w", err)
	}
	return h, nil
}
