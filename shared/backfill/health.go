package backfill

import (
	"context"
	"fmt"

	"github.com/geoblob/geoblob/shared/metrics"
)

// Health reads the registry health of the enabled types.
func (r *Runner) Health(ctx context.Context) (metrics.Health, error) {
	rh, err := r.o.Registry.Health(ctx, r.typeNames())
	if err != nil {
		return metrics.Health{}, fmt.Errorf("backfill: %w", err)
	}
	st, err := r.o.Registry.BrakeStatus(ctx)
	if err != nil {
		return metrics.Health{}, fmt.Errorf("backfill: %w", err)
	}
	h := metrics.Health{Failed: rh.Failed, Quarantined: rh.Quarantined,
		DeleteBrakeTripped: int64(len(st.Tripped)), HeldDeletes: st.HeldTotal}
	if rh.OldestUnsynced != nil {
		h.OldestUnsyncedAge = max(r.now().Sub(*rh.OldestUnsynced), 0)
	}
	return h, nil
}
