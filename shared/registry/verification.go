package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// VerifyClaimOptions select rows for ClaimSecondary and ClaimPrimary.
type VerifyClaimOptions struct {
	// Limit is the most rows claimed; <= 0 means DefaultClaimLimit.
	Limit int
	// ReverifyInterval is the maximum age of a verification; ReverifySpread
	// how much earlier (stable per row, in [0, spread)) rows may come due.
	ReverifyInterval time.Duration
	ReverifySpread   time.Duration
}

// VerifyOutcome is what one check of an object's content found.
type VerifyOutcome int

// Verification outcomes.
const (
	// VerifyMatch: the content's SHA-256 equals the expected one.
	VerifyMatch VerifyOutcome = iota + 1
	// VerifyMismatch: the content's SHA-256 differs.
	VerifyMismatch
	// VerifyMissing: the object does not exist.
	VerifyMissing
	// VerifyError: the check could not be completed.
	VerifyError
)

// String returns the outcome's lower-case name.
func (o VerifyOutcome) String() string {
	switch o {
	case VerifyMatch:
		return "match"
	case VerifyMismatch:
		return "mismatch"
	case VerifyMissing:
		return "missing"
	case VerifyError:
		return "error"
	}
	return "unknown"
}

// VerifyResult is the result of one check, written back by FinishSecondary
// or FinishPrimary.
type VerifyResult struct {
	Outcome  VerifyOutcome
	SHA256   string // what the content hashed to ("" when not read)
	Expected string // the primary checksum the check compared against ("" = none known)
	Failure  string // failure text of bad outcomes; cut by TruncateFailure
}

// ClaimSecondary claims up to Limit rows whose secondary is due for
// verification: pending first, then failed ones whose retry time has come,
// then verified ones due for reverification; only keys under the Store's
// KeyPrefixes; SKIP LOCKED, so concurrent callers get disjoint rows.
func (s *Store) ClaimSecondary(ctx context.Context, o VerifyClaimOptions) ([]Claim, error) {
	return s.claimVerify(ctx, secondaryMachine, "claim secondary", qClaimSecondary, o)
}

// ClaimPrimary claims up to Limit rows whose primary needs a checksum, a
// recheck or reverification (same rules as ClaimSecondary).
func (s *Store) ClaimPrimary(ctx context.Context, o VerifyClaimOptions) ([]Claim, error) {
	return s.claimVerify(ctx, primaryMachine, "claim primary", qClaimPrimary, o)
}

func (s *Store) claimVerify(ctx context.Context, m *machine, what, sql string, o VerifyClaimOptions) ([]Claim, error) {
	limit := o.Limit
	if limit <= 0 {
		limit = DefaultClaimLimit
	}
	return s.claim(ctx, m, what, sql, limit, s.now(), o.ReverifyInterval.Microseconds(), o.ReverifySpread.Microseconds(), s.prefixes)
}

// AcceptSecondaryClaim takes over a secondary verification claim another
// process made and handed over (a dispatched events.VerifyRequest): it
// succeeds only while the row's secondary verification is still started
// with generation and claim time claimedAt, and gives the claim a new
// token, so of several deliveries of one request exactly one gets it. ok
// is false (nothing changes) when the row is absent or the claim is gone:
// finished, recovered after the timeout, reset by a sync, or taken by a
// duplicate request.
func (s *Store) AcceptSecondaryClaim(ctx context.Context, dataType, key string, generation int64, claimedAt time.Time) (Claim, bool, error) {
	return s.claimOne(ctx, secondaryMachine, "accept secondary claim "+dataType+"/"+key, qAcceptSecondaryClaim,
		dataType, key, generation, claimedAt, s.now())
}

// AcceptPrimaryClaim is AcceptSecondaryClaim for a primary verification
// claim.
func (s *Store) AcceptPrimaryClaim(ctx context.Context, dataType, key string, generation int64, claimedAt time.Time) (Claim, bool, error) {
	return s.claimOne(ctx, primaryMachine, "accept primary claim "+dataType+"/"+key, qAcceptPrimaryClaim,
		dataType, key, generation, claimedAt, s.now())
}

// CountVerifying returns how many verification claims are in flight
// (secondary and primary machines in state started) across every worker.
// A verification dispatcher keeps it under its window.
func (s *Store) CountVerifying(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, qCountVerifying).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry: count verifying: %w", err)
	}
	return n, nil
}

// RecoverVerification gives back secondary and primary verification claims
// started longer ago than olderThan and returns how many it recovered.
func (s *Store) RecoverVerification(ctx context.Context, olderThan time.Duration) (int64, error) {
	n, err := s.recoverStuck(ctx, secondaryMachine, qRecoverSecondary, olderThan)
	if err != nil {
		return n, err
	}
	m, err := s.recoverStuck(ctx, primaryMachine, qRecoverPrimary, olderThan)
	return n + m, err
}

// FinishSecondary writes the result of a secondary check. A match records
// verified_at; a mismatch or a missing object counts a consecutive failure
// (reset only by a match, never by the sync in between) and sends the row
// back to sync with a retry time from the verification RetryPolicy
// (resync = true) unless the primary is flagged; an error only schedules a
// retry. won is false when the row changed since the claim: nothing is
// written and the claim is released.
func (s *Store) FinishSecondary(ctx context.Context, c Claim, res VerifyResult) (won, resync bool, err error) {
	now := s.now()
	m := secondaryMachine
	failure := TruncateFailure(res.Failure)
	switch res.Outcome {
	case VerifyMatch:
		won, err = s.finish(ctx, m, c, "finish secondary", qSecondaryMatch, now, []any{res.SHA256, res.Expected})
	case VerifyMismatch, VerifyMissing:
		retryAt := s.retryAt(s.verifyRetry, now, c.VerificationRetryCount+1, false)
		won, err = s.finish(ctx, m, c, "finish secondary", qSecondaryBad, now,
			[]any{res.SHA256, res.Outcome == VerifyMismatch, failure, retryAt}, &resync)
	default:
		retryAt := s.retryAt(s.verifyRetry, now, c.VerificationRetryCount+1, false)
		won, err = s.finish(ctx, m, c, "finish secondary", qSecondaryError, now, []any{failure, retryAt})
	}
	return won, won && resync, err
}

// FinishPrimary writes the result of a primary check; won as for
// FinishSecondary. A match with Expected == "" records the computed
// checksum; a mismatch flags the primary for an operator (no retry time);
// other outcomes schedule a retry.
func (s *Store) FinishPrimary(ctx context.Context, c Claim, res VerifyResult) (won bool, err error) {
	now := s.now()
	m := primaryMachine
	failure := TruncateFailure(res.Failure)
	switch res.Outcome {
	case VerifyMatch:
		return s.finish(ctx, m, c, "finish primary", qPrimaryMatch, now, []any{res.SHA256, res.Expected})
	case VerifyMismatch:
		return s.finish(ctx, m, c, "finish primary", qPrimaryMismatch, now, []any{res.SHA256, failure})
	default:
		retryAt := s.retryAt(s.verifyRetry, now, c.Primary.RetryCount+1, false)
		return s.finish(ctx, m, c, "finish primary", qPrimaryError, now, []any{failure, retryAt})
	}
}

// ReleaseSecondary gives a secondary claim back without a result.
func (s *Store) ReleaseSecondary(ctx context.Context, c Claim) error {
	return s.release(ctx, secondaryMachine, c, s.now())
}

// ReleasePrimary gives a primary claim back without a result.
func (s *Store) ReleasePrimary(ctx context.Context, c Claim) error {
	return s.release(ctx, primaryMachine, c, s.now())
}

// AcceptPrimary is the operator's decision that the flagged primary of row
// id holds the right content: the flag is cleared and the row is sent to
// sync, which overwrites the secondary. It returns an error wrapping
// ErrNotFound when no live flagged row has that id.
func (s *Store) AcceptPrimary(ctx context.Context, id int64) error {
	var got int64
	err := s.pool.QueryRow(ctx, qAcceptPrimary, id, s.now()).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("registry: accept primary %d: %w (no live row with a flagged primary)", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("registry: accept primary %d: %w", id, err)
	}
	return nil
}

// VerificationSummary counts the live rows of one data type.
type VerificationSummary struct {
	DataType         string
	Files            int64
	Synced           int64
	Verified         int64 // secondary verification succeeded
	VerifyFailed     int64
	ChecksumMismatch int64
	VerifyPending    int64 // pending or started
	PrimaryChecksum  int64 // rows with a known primary checksum
	PrimaryVerified  int64
	PrimaryMismatch  int64 // flagged primaries
}

// VerificationSummaries counts live rows per data type, ordered by type.
func (s *Store) VerificationSummaries(ctx context.Context) ([]VerificationSummary, error) {
	return collect(ctx, s.pool, "verification summary", func(r pgx.CollectableRow) (VerificationSummary, error) {
		var v VerificationSummary
		err := r.Scan(&v.DataType, &v.Files, &v.Synced, &v.Verified, &v.VerifyFailed, &v.ChecksumMismatch,
			&v.VerifyPending, &v.PrimaryChecksum, &v.PrimaryVerified, &v.PrimaryMismatch)
		return v, err
	}, qVerificationSummary)
}
