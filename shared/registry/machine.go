package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
	name       string // for errors and logs
	state      string // state column
	startedAt  string // claim time column
	doneAt     string // when the last successful finish happened
	retryCount string // failures in a row
	retryAt    string // when a failed row is due again
	failure    string // last failure text
	bump       bool   // a claim bumps the generation (sync)
	// keepStart: a finish keeps the claim time (sync: started_at says
	// when the last copy began); verification machines clear it.
	keepStart bool
	// resetTo is the state a claim given back without a result returns to
	// (see giveBack). Empty: the machine has nothing to release (a lost
	// sync claim is the new owner's).
	resetTo string
	// timeout is the failure text recovered claims get.
	timeout func(olderThan time.Duration) string
}

var (
	syncMachine = &machine{name: "sync", state: "state", startedAt: "started_at",
		doneAt: "last_synced_at", retryCount: "retry_count", retryAt: "retry_at",
		failure: "last_sync_failure", bump: true, keepStart: true,
		timeout: func(d time.Duration) string { return fmt.Sprintf("sync timed out after %s", d) }}
	secondaryMachine = &machine{name: "secondary verification", state: "verification_state",
		startedAt: "verification_started_at", doneAt: "verified_at",
		retryCount: "verification_retry_count", retryAt: "verification_retry_at",
		failure: "verification_failure", resetTo: secondaryReset,
		timeout: func(time.Duration) string { return "verification timed out (claim recovered)" }}
	primaryMachine = &machine{name: "primary verification", state: "primary_verification_state",
		startedAt: "primary_verification_started_at", doneAt: "primary_verified_at",
		retryCount: "primary_verification_retry_count", retryAt: "primary_verification_retry_at",
		failure: "primary_verification_failure", resetTo: "0",
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

// claimRanked is the tail of a claim statement whose candidate CTEs sets
// (columns id, prio, ord) precede it: the first $1 candidates by (prio,
// ord, id) become started at now.
func (m *machine) claimRanked(now string, sets ...string) string {
	return `, cand AS (
	SELECT * FROM ` + strings.Join(sets, " UNION ALL SELECT * FROM ") + `
), chosen AS (
	SELECT id FROM cand ORDER BY prio, ord, id LIMIT $1
)
` + m.claimChosen(now)
}

// token is the compare-and-set condition of every finish statement: $1 id,
// $2 generation, $3 claim time.
func (m *machine) token() string {
	return `r.id = $1 AND r.generation = $2 AND r.` + m.state + ` = 1 AND r.` + m.startedAt + ` = $3`
}

// finishing is a finish statement of m: the SET items set (each ending in
// a comma), the row's updated_at = $4 (now), guarded by the claim token.
// Callers may append further conditions or a RETURNING clause.
func (m *machine) finishing(set string) string {
	return `
UPDATE blob_registry AS r SET` + set + `
	updated_at = $4
WHERE ` + m.token()
}

// ended is the SET items that end m's claim in state (the claim time is
// cleared unless the machine keeps it).
func (m *machine) ended(state string) string {
	set := `
	` + m.state + ` = ` + state + `,`
	if !m.keepStart {
		set += `
	` + m.startedAt + ` = NULL,`
	}
	return set
}

// reset is the SET items that forget m's failed attempts: no failures in a
// row, no retry time, no failure text.
func (m *machine) reset() string {
	return `
	` + m.retryCount + ` = 0,
	` + m.retryAt + ` = NULL,
	` + m.failure + ` = NULL,`
}

// passed is the SET items of a successful finish at now: state 2 (synced,
// verified), done at now, failed attempts forgotten.
func (m *machine) passed(now string) string {
	return m.ended("2") + `
	` + m.doneAt + ` = ` + now + `,` + m.reset()
}

// failed is the SET items of a failed attempt: state 3, failures in a row
// set to count (an expression; see oneMore), due again at retryAt, with
// the failure text failure.
func (m *machine) failed(count, retryAt, failure string) string {
	return m.ended("3") + `
	` + m.retryCount + ` = ` + count + `,
	` + m.retryAt + ` = ` + retryAt + `,
	` + m.failure + ` = ` + failure + `,`
}

// oneMore is the failures-in-a-row count of a row after one more failure.
func (m *machine) oneMore() string {
	return `r.` + m.retryCount + ` + 1`
}

// giveBack is the statement that returns claims of m to resetTo without a
// result. Recover (stuck claims, recording failure $3): $1 started
// before, $2 now. Release (one claim, whatever happened to its
// generation): $1 id, $2 claim time, $3 now.
func (m *machine) giveBack(resetTo string, recover bool) string {
	if recover {
		return `
UPDATE blob_registry AS r SET ` + m.state + ` = ` + resetTo + `, ` + m.startedAt + ` = NULL,
	` + m.failure + ` = $3, updated_at = $2
WHERE ` + m.stuck()
	}
	return `
UPDATE blob_registry AS r SET ` + m.state + ` = ` + resetTo + `, ` + m.startedAt + ` = NULL, updated_at = $3
WHERE r.id = $1 AND r.` + m.state + ` = 1 AND r.` + m.startedAt + ` = $2`
}

// accept is the statement that takes over a claim of m another process
// made and handed over (a dispatched request): $1 data type, $2 key, $3
// generation, $4 claim time, $5 now. It moves the claim time on (at least
// by a microsecond, so a frozen clock still changes it), which is the new
// token: of several deliveries of one request exactly one matches, and the
// stuck-claim clock restarts.
func (m *machine) accept() string {
	return `
UPDATE blob_registry AS r SET
	` + m.startedAt + ` = greatest($5, r.` + m.startedAt + ` + interval '1 microsecond'),
	updated_at = $5
WHERE r.data_type = $1 AND r.object_key = $2 AND r.generation = $3
  AND r.` + m.state + ` = 1 AND r.` + m.startedAt + ` = $4
RETURNING ` + RowColumns
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
	return collect(ctx, s.pool, what, func(r pgx.CollectableRow) (Claim, error) {
		row, err := ScanRow(r)
		return Claim{Row: row, token: m.claimToken(row)}, err
	}, sql, args...)
}

// finish runs a finish statement of m for claim c with the common
// parameters ($1 id, $2 generation, $3 claim time, $4 now) followed by
// args. With dest, the statement returns one row scanned into dest. It
// returns false, after giving the claim back, when the compare-and-set
// lost.
func (s *Store) finish(ctx context.Context, m *machine, c Claim, op, sql string, now time.Time, args []any, dest ...any) (bool, error) {
	return s.finishOn(ctx, s.pool, m, c, op, sql, now, args, dest...)
}

// finishRunner runs finish and release statements: the pool or a
// transaction.
type finishRunner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ finishRunner = (pgx.Tx)(nil)
	_ finishRunner = (*pgxpool.Pool)(nil)
)

// finishOn is finish on q (a transaction, for finishes that are part of a
// larger decision such as the delete brake's).
func (s *Store) finishOn(ctx context.Context, q finishRunner, m *machine, c Claim, op, sql string, now time.Time, args []any, dest ...any) (bool, error) {
	all := append([]any{c.ID, c.Generation, c.token, now}, args...)
	won := true
	if len(dest) == 0 {
		tag, err := q.Exec(ctx, sql, all...)
		if err != nil {
			return false, fmt.Errorf("registry: %s %s/%s: %w", op, c.DataType, c.ObjectKey, err)
		}
		won = tag.RowsAffected() > 0
	} else {
		err := q.QueryRow(ctx, sql, all...).Scan(dest...)
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
	return false, s.releaseOn(ctx, q, m, c, now)
}

// release gives a claim of m back without a result (nothing for sync).
func (s *Store) release(ctx context.Context, m *machine, c Claim, now time.Time) error {
	return s.releaseOn(ctx, s.pool, m, c, now)
}

// releaseOn is release on q.
func (s *Store) releaseOn(ctx context.Context, q finishRunner, m *machine, c Claim, now time.Time) error {
	if m.resetTo == "" {
		return nil
	}
	if _, err := q.Exec(ctx, m.giveBack(m.resetTo, false), c.ID, c.token, now); err != nil {
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
