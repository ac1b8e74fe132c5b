package verify

import (
	"context"
	"time"

	"github.com/geoblob/geoblob/shared/registry"
)

// Store is the registry access a Verifier needs; *registry.Store satisfies
// it. The registry owns the verification state machines (claims, retry
// times, compare-and-set finishes, recovery, selective sync).
type Store interface {
	// RecoverVerification gives back claims started longer ago than olderThan.
	RecoverVerification(ctx context.Context, olderThan time.Duration) (int64, error)
	// ClaimSecondary and ClaimPrimary claim due rows (SKIP LOCKED).
	ClaimSecondary(ctx context.Context, o registry.VerifyClaimOptions) ([]registry.Claim, error)
	ClaimPrimary(ctx context.Context, o registry.VerifyClaimOptions) ([]registry.Claim, error)
	// FinishSecondary and FinishPrimary write a result (compare-and-set on
	// the claim; won is false when the row changed and the claim was released).
	FinishSecondary(ctx context.Context, c registry.Claim, res registry.VerifyResult) (won, resync bool, err error)
	FinishPrimary(ctx context.Context, c registry.Claim, res registry.VerifyResult) (won bool, err error)
	// AcceptSecondaryClaim and AcceptPrimaryClaim take over a claim a
	// dispatcher handed over (ok false: the claim is gone).
	AcceptSecondaryClaim(ctx context.Context, dataType, key string, generation int64, claimedAt time.Time) (registry.Claim, bool, error)
	AcceptPrimaryClaim(ctx context.Context, dataType, key string, generation int64, claimedAt time.Time) (registry.Claim, bool, error)
	// CountVerifying counts the verification claims in flight.
	CountVerifying(ctx context.Context) (int64, error)
	// ReleaseSecondary and ReleasePrimary give a claim back without a result.
	ReleaseSecondary(ctx context.Context, c registry.Claim) error
	ReleasePrimary(ctx context.Context, c registry.Claim) error
}

var _ Store = (*registry.Store)(nil)

// Summary counts the live rows of one data type.
type Summary = registry.VerificationSummary
