package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// machine is one of the registry's three state machines on blob_registry:
// sync (state), secondary verification (verification_state) and primary
// verification (primary_verification_state). All three share one mechanism,
// written once in this file:
//
//   - claim: candidate rows are locked FOR UPDATE SKIP LOCKED and moved to
//     started (1) with the claim time in the machine's started-at column;
//     the claim's token is (generation, that claim time);
//   - finish: a compare-and-set on the token; a finish that lost (the row
//     changed or was claimed again) writes nothing and gives the claim back;
//   - recover: claims started longer ago than a timeout are taken back;
//   - retry times come from the machine's RetryPolicy and the Store's
//     clock, failure texts are cut by TruncateFailure.
type machine struct {
	name      string // for errors and logs
	state     string // state column
	startedAt string // claim time column
	bump      bool   // a claim bumps the generation (sync)
	// release gives a claim back without a result: $1 id, $2 token, $3 now.
	// Empty: the machine has nothing to release (a lost sync claim is the
	// new owner's).
	release string
	// timeout is the failure text recovered claims get.
	timeout func(olderThan time.Duration) string
}

var (
	syncMachine = &machine{name: "sync", state: "state", startedAt: "started_at", bump: true,
		timeout: func(d time.Duration) string { return fmt.Sprintf("sync timed out after %s", d) }}
	secondaryMachine = &machine{name: "secondary verification", state: "verification_state",
		startedAt: "verification_started_at", release: qSecondaryRelease,
		timeout: func(time.Duration) string { return "verification timed out (claim recovered)" }}
	primaryMachine = &machine{name: "primary verification", state: "primary_verification_state",
		startedAt: "primary_verification_started_at", release: qPrimaryRelease,
		timeout: func(time.Duration) string { return "verification timed out (claim recovered)" }}
)

// claimChosen is the tail of every claim statement: the rows of the CTE
// chosen become started at now (a parameter) and are returned.
func (m *machine) claimChosen(now string) string {
	gen := ""
	if m.bump {
		gen = "\n\tgeneration = r.generation + 1,"
	}
	return `UPDATE blob_registry AS r SET
	` + m.state + ` = 1,
	` + m.startedAt + ` = ` + now + `,` + gen + `
	updated_at = ` + now + `
FROM chosen
WHERE r.id = chosen.id
RETURNING ` + RowColumns
}

// token is the compare-and-set condition of every finish statement: $1 id,
// $2 generation, $3 claim time.
func (m *machine) token() string {
	return `r.id = $1 AND r.generation = $2 AND r.` + m.state + ` = 1 AND r.` + m.startedAt + ` = $3`
}

// stuck matches claims started before $1.
func (m *machine) stuck() string {
	return `r.` + m.state + ` = 1 AND r.` + m.startedAt + ` < $1`
}

// claimToken returns the claim time a row's machine state was started at.
func (m *machine) claimToken(r Row) time.Time {
	var t *time.Time
	switch m {
	case syncMachine:
		t = r.StartedAt
	case secondaryMachine:
		t = r.VerificationStartedAt
	case primaryMachine:
		t = r.Primary.StartedAt
	}
	if t == nil {
		return time.Time{}
	}
	return *t
}

// claim runs a claim statement of m and returns its rows as claims.
func (s *Store) claim(ctx context.Context, m *machine, what, sql string, args ...any) ([]Claim, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", what, err)
	}
	claims, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claim, error) {
		row, err := ScanRow(r)
		return Claim{Row: row, token: m.claimToken(row)}, err
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", what, err)
	}
	return claims, nil
}

// finish runs a finish statement of m for claim c with the common
// parameters ($1 id, $2 generation, $3 claim time, $4 now) followed by
// args. With dest, the statement returns one row scanned into dest. It
// returns false, after giving the claim back, when the compare-and-set
// lost.
func (s *Store) finish(ctx context.Context, m *machine, c Claim, op, sql string, now time.Time, args []any, dest ...any) (bool, error) {
	all := append([]any{c.ID, c.Generation, c.token, now}, args...)
	won := true
	if len(dest) == 0 {
		tag, err := s.pool.Exec(ctx, sql, all...)
		if err != nil {
			return false, fmt.Errorf("registry: %s %s/%s: %w", op, c.DataType, c.ObjectKey, err)
		}
		won = tag.RowsAffected() > 0
	} else {
		err := s.pool.QueryRow(ctx, sql, all...).Scan(dest...)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			won = false
		case err != nil:
			return false, fmt.Errorf("registry: %s %s/%s: %w", op, c.DataType, c.ObjectKey, err)
		}
	}
	if won {
		return true, nil
	}
	s.logger.Debug("registry: claim lost", "machine", m.name, "op", op, "data_type", c.DataType,
		"key", c.ObjectKey, "id", c.ID, "generation", c.Generation)
	return false, s.release(ctx, m, c, now)
}

// release gives a claim of m back without a result (nothing for sync).
func (s *Store) release(ctx context.Context, m *machine, c Claim, now time.Time) error {
	if m.release == "" {
		return nil
	}
	if _, err := s.pool.Exec(ctx, m.release, c.ID, c.token, now); err != nil {
		return fmt.Errorf("registry: release %s claim %d: %w", m.name, c.ID, err)
	}
	return nil
}

// recoverStuck runs m's recover statement ($1 started before, $2 now, $3
// failure) for claims started longer ago than olderThan.
func (s *Store) recoverStuck(ctx context.Context, m *machine, sql string, olderThan time.Duration) (int64, error) {
	now := s.now()
	tag, err := s.pool.Exec(ctx, sql, now.Add(-olderThan), now, TruncateFailure(m.timeout(olderThan)))
	if err != nil {
		return 0, fmt.Errorf("registry: recover stuck %s claims: %w", m.name, err)
	}
	if n := tag.RowsAffected(); n > 0 {
		s.logger.Info("registry: recovered stuck claims", "machine", m.name, "rows", n, "older_than", olderThan)
	}
	return tag.RowsAffected(), nil
}

// retryAt is when a claim that failed for the attempt-th time in a row is
// due again under policy.
func (s *Store) retryAt(policy RetryPolicy, now time.Time, attempt int, missingOnPrimary bool) time.Time {
	return now.Add(policy.Backoff(attempt, missingOnPrimary)).Truncate(time.Microsecond)
}
