package backfill

import (
	"context"
	"errors"
	"fmt"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/metrics"
)

// bucketChecker is implemented by a Primary that can tell whether its
// bucket exists (*blobstore.Store).
type bucketChecker interface {
	HeadBucket(ctx context.Context) error
}

var _ bucketChecker = (*blobstore.Store)(nil)

// Health reads the registry health of the enabled types and whether the
// primary bucket exists (one HeadBucket; other errors of that check are
// not a missing bucket and leave the flag at 0).
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
	if bc, ok := r.o.Primary.(bucketChecker); ok && errors.Is(bc.HeadBucket(ctx), blobstore.ErrNoSuchBucket) {
		h.PrimaryBucketMissing = 1
	}
	if rh.OldestUnsynced != nil {
		h.OldestUnsyncedAge = max(r.now().Sub(*rh.OldestUnsynced), 0)
	}
	return h, nil
}
