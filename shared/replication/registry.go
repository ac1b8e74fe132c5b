package replication

import (
	"context"
	"time"

	"github.com/geoblob/geoblob/shared/registry"
)

var _ Registry = (*registry.Store)(nil)

// Registry is the part of the registry the engine uses; *registry.Store
// satisfies it.
type Registry interface {
	// RecordCreated records that the object exists on the primary (row
	// pending, generation bumped). Applied is false when the event is a
	// duplicate or older than the row's state; nothing changed then. An
	// event with an empty sequencer is never stale and keeps the stored one.
	RecordCreated(ctx context.Context, ev registry.ObjectEvent) (registry.Applied, error)
	// RecordRemoved records a deletion (tombstone pending), same contract.
	RecordRemoved(ctx context.Context, ev registry.ObjectEvent) (registry.Applied, error)
	// ClaimKey moves a pending or failed row to started and returns the
	// claim; ok is false when the row is in no claimable state.
	ClaimKey(ctx context.Context, dataType, key string) (claim registry.Claim, ok bool, err error)
	// MarkSynced finishes a claim; won is false when the row changed since
	// the claim (compare-and-set lost) and nothing was written.
	MarkSynced(ctx context.Context, c registry.Claim, res registry.SyncResult) (won bool, err error)
	// MarkFailed fails a claim with a retry time; won as for MarkSynced.
	MarkFailed(ctx context.Context, c registry.Claim, failure string, missingOnPrimary bool) (won bool, err error)
	// Get returns the row, or an error wrapping registry.ErrNotFound.
	Get(ctx context.Context, dataType, key string) (registry.Row, error)
}

// cleanupTimeout bounds registry writes made after ctx may be cancelled.
const cleanupTimeout = 10 * time.Second

func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
