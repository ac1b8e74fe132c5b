package registrytest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what BulkLoad needs of a connection or pool (*pgx.Conn and
// *pgxpool.Pool satisfy it).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// BulkChunk is the rows BulkLoad inserts per statement.
const BulkChunk = 1_000_000

// BulkLoad fills blob_registry with rows 0..rows-1 fast: it drops the
// secondary indexes (all but the primary key and the (type, key) unique
// index), runs insert once per BulkChunk rows with $1 the first and $2 the
// last row number of the chunk (bigint, inclusive; typically an
// INSERT ... SELECT ... FROM generate_series($1, $2)) followed by args,
// rebuilds the indexes (far faster than maintaining them row by row) and
// runs VACUUM ANALYZE, as autovacuum would have.
func BulkLoad(ctx context.Context, db DB, rows int, insert string, args ...any) error {
	r, err := db.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'blob_registry'
		AND indexname NOT IN ('blob_registry_pkey', 'blob_registry_type_key_uniq')`)
	if err != nil {
		return fmt.Errorf("registrytest: bulk load: indexes: %w", err)
	}
	type index struct{ Name, Def string }
	indexes, err := pgx.CollectRows(r, pgx.RowToStructByPos[index])
	if err != nil {
		return fmt.Errorf("registrytest: bulk load: indexes: %w", err)
	}
	for _, ix := range indexes {
		if _, err := db.Exec(ctx, "DROP INDEX "+ix.Name); err != nil {
			return fmt.Errorf("registrytest: bulk load: drop %s: %w", ix.Name, err)
		}
	}
	for lo := 0; lo < rows; lo += BulkChunk {
		if _, err := db.Exec(ctx, insert, append([]any{int64(lo), int64(min(lo+BulkChunk, rows) - 1)}, args...)...); err != nil {
			return fmt.Errorf("registrytest: bulk load rows %d..: %w", lo, err)
		}
	}
	for _, ix := range indexes {
		if _, err := db.Exec(ctx, ix.Def); err != nil {
			return fmt.Errorf("registrytest: bulk load: rebuild %s: %w", ix.Name, err)
		}
	}
	if _, err := db.Exec(ctx, "VACUUM ANALYZE blob_registry"); err != nil {
		return fmt.Errorf("registrytest: bulk load: vacuum: %w", err)
	}
	return nil
}
