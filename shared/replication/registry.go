package replication

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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
	// AdmitDelete decides whether a claimed tombstone's delete may reach
	// the secondary now (see registry.Store.AdmitDelete); held and
	// deferred rows are written by it.
	AdmitDelete(ctx context.Context, c registry.Claim, p registry.BrakePolicy) (registry.DeleteDecision, error)
	// TripBrake trips the delete brake of scope with reason.
	TripBrake(ctx context.Context, scope, reason string) error
	// Get returns the row, or an error wrapping registry.ErrNotFound.
	Get(ctx context.Context, dataType, key string) (registry.Row, error)
	// ClaimRequested ends the dispatch lease of a sync request's row and
	// claims the row if it is pending, or failed and due; ok is false
	// when it is in no claimable state.
	ClaimRequested(ctx context.Context, dataType, key string) (claim registry.Claim, ok bool, err error)
	// AcceptClaim takes over a claim handed over by a dispatcher; ok is
	// false when the row is no longer started at that generation.
	AcceptClaim(ctx context.Context, dataType, key string, generation int64) (claim registry.Claim, ok bool, err error)
}

// finishBudget bounds how long the engine keeps trying to record the outcome
// of work it has already done while the registry is unreachable (a database
// restart or failover). Giving up leaves the row started until stuck
// recovery; trying costs nothing when the database answers.
const finishBudget = 20 * time.Second

// finish runs a claim-finishing write (MarkSynced, MarkFailed) and retries
// transient registry errors with growing delays for up to finishBudget, even
// after ctx is cancelled. The writes are compare-and-set, so a retry after a
// commit whose reply was lost answers won=false and the caller re-reads the row.
func finish(ctx context.Context, write func(context.Context) (bool, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishBudget)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		won, err := write(ctx)
		if err == nil || !transientRegistryError(err) {
			return won, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return false, err
		}
		delay = min(2*delay, 3*time.Second)
	}
}

// transientRegistryError reports whether a registry error may go away by
// itself: lost or refused connections, server shutdown, serialization
// failures and deadlocks. Constraint and data errors are permanent.
func transientRegistryError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "40001", "40P01":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	return true // connection-level failures carry no SQLSTATE
}
