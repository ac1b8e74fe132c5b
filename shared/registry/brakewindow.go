package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// $1 start of the window. Per scope ('*' and every type with admitted
// deletes): the deletes admitted since the later of the window's start and
// the scope's reset, as AdmitDelete counts them.
const qBrakeWindow = `
SELECT '*', count(*)::bigint FROM delete_brake_log
WHERE at > greatest($1, coalesce((SELECT reset_at FROM delete_brake WHERE scope = '*'), '-infinity'))
UNION ALL
SELECT l.data_type, count(*)::bigint FROM delete_brake_log l LEFT JOIN delete_brake b ON b.scope = l.data_type
WHERE l.at > greatest($1, coalesce(b.reset_at, '-infinity'))
GROUP BY l.data_type`

// BrakeWindow counts the deletes admitted within the sliding window per
// brake scope (ScopeAll and each data type that had one): the figures the
// budget's thresholds are compared with. window <= 0 means
// DefaultBrakeWindow.
func (s *Store) BrakeWindow(ctx context.Context, window time.Duration) (map[string]int64, error) {
	if window <= 0 {
		window = DefaultBrakeWindow
	}
	rows, err := s.pool.Query(ctx, qBrakeWindow, s.now().Add(-window))
	if err != nil {
		return nil, fmt.Errorf("registry: brake window: %w", err)
	}
	out := map[string]int64{}
	var scope string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&scope, &n}, func() error {
		if n > 0 || scope == ScopeAll {
			out[scope] = n
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("registry: brake window: %w", err)
	}
	return out, nil
}
