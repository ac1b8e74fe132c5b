package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Restored describes an object geoblob restore wrote back to the primary.
type Restored struct {
	DataType  string
	Key       string
	Size      int64
	ETag      string // as the primary returned it (quotes are stripped)
	VersionID string // primary version id ("" when the primary is unversioned)
	SHA256    string // hex SHA-256 of the bytes, verified on arrival
}

// MarkRestored records that r's object is on the primary again and that the
// secondary holds the same bytes: the row becomes live and synced (a
// tombstone or a held delete is cancelled), verification due, and marked
// restored, so the ObjectCreated event of the restore's own PUT (same ETag
// and version) changes nothing. Any later change clears the mark.
func (s *Store) MarkRestored(ctx context.Context, r Restored) error {
	if r.DataType == "" || r.Key == "" {
		return fmt.Errorf("registry: mark restored: needs a data type and a key")
	}
	_, err := s.pool.Exec(ctx, qMarkRestored, r.DataType, r.Key, r.Size, strings.Trim(r.ETag, `"`),
		r.VersionID, strings.ToLower(r.SHA256), s.now())
	if err != nil {
		return fmt.Errorf("registry: mark restored %s/%s: %w", r.DataType, r.Key, err)
	}
	return nil
}

// DeletedBetween lists tombstones whose deletion was recorded in [from, to),
// optionally of one data type and under a key prefix, in key order after
// afterKey, at most limit (<= 0: 1000).
func (s *Store) DeletedBetween(ctx context.Context, from, to time.Time, dataType, prefix, afterKey string, limit int) ([]Row, error) {
	if limit <= 0 {
		limit = 1000
	}
	return collect(ctx, s.pool, "deleted between", ScanRow, qDeletedBetween, from, to, dataType, prefix, afterKey, limit)
}

// AuditRestore records a restore run in registry_audit.
func (s *Store) AuditRestore(ctx context.Context, actor string, selector any, objects int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return auditDR(ctx, tx, s.now(), actor, "restore", "", selector, objects)
	})
}
