package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/shared/registry"
)

// PrimaryVerification is the primary-side verification state of a row
// (columns of migration 00020).
type PrimaryVerification struct {
	State            registry.VerificationState
	StartedAt        *time.Time
	VerifiedAt       *time.Time
	RetryCount       int
	RetryAt          *time.Time
	Failure          string
	ChecksumMismatch bool   // the primary's bytes differ from the registry's checksum
	MismatchSHA256   string // what the primary's bytes hash to when flagged
	Generation       int64  // row generation when the state was last decided
}

// Item is a registry row with its primary verification state.
type Item struct {
	registry.Row
	Primary PrimaryVerification
}

// Claim is an item this pass owns: its token is the (started at,
// generation) pair the claim read.
type Claim struct {
	Item
	token time.Time
}

// Due says which rows come due and when.
type Due struct {
	Now              time.Time
	StuckBefore      time.Time     // started claims older than this are recovered
	ReverifyInterval time.Duration // maximum age of a verification
	ReverifySpread   time.Duration // rows come due up to this much earlier (stable per row)
}

// Finish is the result of one check written back to the registry.
type Finish struct {
	Now      time.Time
	Check    Check
	Expected string    // the primary checksum the check compared against ("" = none known)
	Failure  string    // failure text for bad outcomes
	RetryAt  time.Time // next attempt for bad outcomes
}

// Summary counts the live rows of one data type.
type Summary struct {
	DataType         string
	Files            int64
	Synced           int64
	Verified         int64 // secondary verification succeeded
	VerifyFailed     int64
	ChecksumMismatch int64
	VerifyPending    int64 // pending or started
	PrimaryChecksum  int64 // rows with a known primary checksum
	PrimaryVerified  int64
	PrimaryMismatch  int64 // quarantined primaries
}

// PGStore runs verification's queries on the registry table. It is safe
// for concurrent use.
type PGStore struct {
	pool *pgxpool.Pool
}

// NewPGStore returns a PGStore on pool (the registry's database, migrated
// with registry.Migrate).
func NewPGStore(pool *pgxpool.Pool) *PGStore { return &PGStore{pool: pool} }

// RecoverStuck gives back secondary and primary claims started before
// d.StuckBefore and returns how many rows it recovered.
func (s *PGStore) RecoverStuck(ctx context.Context, d Due) (int64, error) {
	var n int64
	for _, q := range []string{qRecoverSecondary, qRecoverPrimary} {
		tag, err := s.pool.Exec(ctx, q, d.StuckBefore, d.Now)
		if err != nil {
			return n, fmt.Errorf("verify: recover stuck: %w", err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

// ClaimSecondary claims up to limit rows whose secondary is due for
// verification.
func (s *PGStore) ClaimSecondary(ctx context.Context, limit int, d Due) ([]Claim, error) {
	return s.claim(ctx, "claim secondary", qClaimSecondary, limit, d, func(it Item) time.Time {
		return deref(it.VerificationStartedAt)
	})
}

// ClaimPrimary claims up to limit rows whose primary needs a checksum or is
// due for reverification.
func (s *PGStore) ClaimPrimary(ctx context.Context, limit int, d Due) ([]Claim, error) {
	return s.claim(ctx, "claim primary", qClaimPrimary, limit, d, func(it Item) time.Time {
		return deref(it.Primary.StartedAt)
	})
}

func (s *PGStore) claim(ctx context.Context, what, q string, limit int, d Due, token func(Item) time.Time) ([]Claim, error) {
	rows, err := s.pool.Query(ctx, q, limit, d.Now, d.ReverifyInterval.Microseconds(), d.ReverifySpread.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", what, err)
	}
	items, err := pgx.CollectRows(rows, scanItem)
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", what, err)
	}
	claims := make([]Claim, len(items))
	for i, it := range items {
		claims[i] = Claim{Item: it, token: token(it)}
	}
	return claims, nil
}

// FinishSecondary writes the result of a secondary check. It returns
// resync = true when the row was sent back to sync, and won = false when
// the row changed since the claim (nothing written, the claim released).
func (s *PGStore) FinishSecondary(ctx context.Context, c Claim, f Finish) (won, resync bool, err error) {
	var tag pgconn.CommandTag
	switch f.Check.Outcome {
	case OutcomeMatch:
		tag, err = s.pool.Exec(ctx, qSecondaryMatch, c.ID, c.token, c.Generation, f.Now, f.Check.SHA256, f.Expected)
	case OutcomeMismatch, OutcomeMissing:
		err = s.pool.QueryRow(ctx, qSecondaryBad, c.ID, c.token, c.Generation, f.Now, f.Check.SHA256,
			f.Check.Outcome == OutcomeMismatch, cut(f.Failure), f.RetryAt).Scan(&resync)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, false, s.release(ctx, qSecondaryRelease, c, f.Now)
		}
		if err != nil {
			return false, false, fmt.Errorf("verify: finish secondary %d: %w", c.ID, err)
		}
		return true, resync, nil
	default:
		tag, err = s.pool.Exec(ctx, qSecondaryError, c.ID, c.token, c.Generation, f.Now, cut(f.Failure), f.RetryAt)
	}
	if err != nil {
		return false, false, fmt.Errorf("verify: finish secondary %d: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, false, s.release(ctx, qSecondaryRelease, c, f.Now)
	}
	return true, false, nil
}

// FinishPrimary writes the result of a primary check; won as for
// FinishSecondary. A match with f.Expected == "" records the computed
// checksum.
func (s *PGStore) FinishPrimary(ctx context.Context, c Claim, f Finish) (won bool, err error) {
	var tag pgconn.CommandTag
	switch f.Check.Outcome {
	case OutcomeMatch:
		tag, err = s.pool.Exec(ctx, qPrimaryMatch, c.ID, c.token, c.Generation, f.Now, f.Check.SHA256, f.Expected)
	case OutcomeMismatch:
		tag, err = s.pool.Exec(ctx, qPrimaryMismatch, c.ID, c.token, c.Generation, f.Now, f.Check.SHA256, cut(f.Failure))
	default:
		tag, err = s.pool.Exec(ctx, qPrimaryError, c.ID, c.token, c.Generation, f.Now, cut(f.Failure), f.RetryAt)
	}
	if err != nil {
		return false, fmt.Errorf("verify: finish primary %d: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, s.release(ctx, qPrimaryRelease, c, f.Now)
	}
	return true, nil
}

// ReleaseSecondary gives a secondary claim back without a result.
func (s *PGStore) ReleaseSecondary(ctx context.Context, c Claim, now time.Time) error {
	return s.release(ctx, qSecondaryRelease, c, now)
}

// ReleasePrimary gives a primary claim back without a result.
func (s *PGStore) ReleasePrimary(ctx context.Context, c Claim, now time.Time) error {
	return s.release(ctx, qPrimaryRelease, c, now)
}

func (s *PGStore) release(ctx context.Context, q string, c Claim, now time.Time) error {
	if _, err := s.pool.Exec(ctx, q, c.ID, c.token, now); err != nil {
		return fmt.Errorf("verify: release %d: %w", c.ID, err)
	}
	return nil
}

// AcceptPrimary is the operator's decision that the quarantined primary of
// row id holds the right content: the flag is cleared and the row is sent to
// sync, which overwrites the secondary. It returns an error wrapping
// ErrNotFound when no live quarantined row has that id.
func (s *PGStore) AcceptPrimary(ctx context.Context, id int64, now time.Time) error {
	var got int64
	err := s.pool.QueryRow(ctx, qAcceptPrimary, id, now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("verify: accept primary %d: %w (no live row with a flagged primary)", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("verify: accept primary %d: %w", id, err)
	}
	return nil
}

// Item returns the row id with its primary verification state, or an error
// wrapping ErrNotFound.
func (s *PGStore) Item(ctx context.Context, id int64) (Item, error) {
	rows, err := s.pool.Query(ctx, qGetItem, id)
	if err != nil {
		return Item{}, fmt.Errorf("verify: item %d: %w", id, err)
	}
	it, err := pgx.CollectExactlyOneRow(rows, scanItem)
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, fmt.Errorf("verify: item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, fmt.Errorf("verify: item %d: %w", id, err)
	}
	return it, nil
}

// Summary counts live rows per data type.
func (s *PGStore) Summary(ctx context.Context) ([]Summary, error) {
	rows, err := s.pool.Query(ctx, qSummary)
	if err != nil {
		return nil, fmt.Errorf("verify: summary: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Summary, error) {
		var s Summary
		err := r.Scan(&s.DataType, &s.Files, &s.Synced, &s.Verified, &s.VerifyFailed, &s.ChecksumMismatch,
			&s.VerifyPending, &s.PrimaryChecksum, &s.PrimaryVerified, &s.PrimaryMismatch)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("verify: summary: %w", err)
	}
	return out, nil
}

func scanItem(row pgx.CollectableRow) (Item, error) {
	var it Item
	r := &it.Row
	p := &it.Primary
	err := row.Scan(&r.ID, &r.DataType, &r.ObjectKey,
		&r.State, &r.Generation, &r.RetryCount, &r.RetryAt, &r.LastSyncFailure,
		&r.LastSyncedAt, &r.StartedAt, &r.Size, &r.ETag, &r.VersionID, &r.PrimarySHA256,
		&r.MissingOnPrimary, &r.DeletedAt,
		&r.VerificationState, &r.VerificationStartedAt, &r.VerifiedAt, &r.VerificationRetryCount,
		&r.VerificationRetryAt, &r.VerificationFailure, &r.SecondarySHA256,
		&r.ChecksumMismatch,
		&p.State, &p.StartedAt, &p.VerifiedAt,
		&p.RetryCount, &p.RetryAt,
		&p.Failure, &p.ChecksumMismatch,
		&p.MismatchSHA256, &p.Generation)
	return it, err
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// cut keeps a failure text within the column's limit (in characters).
func cut(s string) string {
	r := []rune(s)
	if len(r) <= registry.MaxFailureLen {
		return s
	}
	return string(r[:registry.MaxFailureLen])
}
