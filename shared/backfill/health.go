package backfill

import (
	"context"
	"fmt"
	"time"

	"github.com/geoblob/geoblob/shared/metrics"
)

// Health reads the registry health of the enabled types.
func (r *Runner) Health(ctx context.Context) (metrics.Health, error) {
	var (
		h      metrics.Health
		oldest *time.Time
	)
	if err := r.o.Pool.QueryRow(ctx, qHealth, r.typeNames()).Scan(&oldest, &h.Failed, &h.Quarantined); err != nil {
		return metrics.Health{}, fmt.Errorf("backfill: health: %w", err)
	}
	if oldest != nil {
		h.OldestUnsyncedAge = max(r.now().Sub(*oldest), 0)
	}
	return h, nil
}
