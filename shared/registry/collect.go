package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier runs a statement that returns rows: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

var (
	_ querier = (pgx.Tx)(nil)
	_ querier = (*pgxpool.Pool)(nil)
)

// collect runs sql on q and reads every row it returns with scan. Errors
// are wrapped as "registry: what: ...".
func collect[T any](ctx context.Context, q querier, what string, scan pgx.RowToFunc[T], sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", what, err)
	}
	return out, nil
}

// collectOne runs sql on q and reads the one row it must return with
// scan; no row is ErrNotFound. Errors are wrapped as "registry: what: ...".
func collectOne[T any](ctx context.Context, q querier, what string, scan pgx.RowToFunc[T], sql string, args ...any) (T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("registry: %s: %w", what, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, scan)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return out, fmt.Errorf("registry: %s: %w", what, ErrNotFound)
	case err != nil:
		return out, fmt.Errorf("registry: %s: %w", what, err)
	}
	return out, nil
}

// indexBy maps each element of list by its key (a later duplicate wins).
func indexBy[K comparable, T any](list []T, key func(T) K) map[K]T {
	out := make(map[K]T, len(list))
	for _, v := range list {
		out[key(v)] = v
	}
	return out
}
