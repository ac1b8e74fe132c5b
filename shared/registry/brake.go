package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeleteHold says where a tombstone stands with the delete brake. Stored as
// smallint in blob_registry.delete_hold and mirrored by a CHECK constraint.
type DeleteHold int16

// Delete hold states.
const (
	// HoldNone: the row was never held.
	HoldNone DeleteHold = 0
	// HoldHeld: the delete waits for an operator; the secondary keeps its
	// copy. The row is failed with retry_at = 9999-12-31 (never due).
	HoldHeld DeleteHold = 1
	// HoldReleased: an operator allowed the delete; it bypasses the budget.
	HoldReleased DeleteHold = 2
	// HoldDiscarded: an operator kept the secondary copy; the tombstone is
	// synced and never deleted from the secondary.
	HoldDiscarded DeleteHold = 3
)

// String returns the hold's lower-case name.
func (h DeleteHold) String() string {
	return enumName(h, "none", "held", "released", "discarded")
}

// ScopeAll is the brake scope covering every data type.
const ScopeAll = "*"

// BrakePolicy is the budget deletes are propagated through. A delete trips
// the brake when admitting it would make the deletes admitted in the
// sliding Window exceed any of the thresholds; a zero threshold is off.
type BrakePolicy struct {
	// Disabled turns the budget off (grace and guards still apply).
	Disabled bool
	// Window is the sliding window; <= 0 means DefaultBrakeWindow.
	Window time.Duration
	// MaxDeletes caps deletes of all types together.
	MaxDeletes int64
	// TypeMaxDeletes caps deletes of one data type.
	TypeMaxDeletes int64
	// MaxFraction caps deletes as a fraction of the rows (live plus
	// tombstoned within the window), per data type and overall.
	MaxFraction float64
	// MinDeletes is how many deletes the fraction thresholds always allow,
	// so a small type is not stopped by routine deletes.
	MinDeletes int64
	// Grace delays every delete until its tombstone is this old; a create
	// within the grace period cancels it. 0 = no delay.
	Grace time.Duration
}

// Brake defaults (documented in the configuration reference).
const (
	DefaultBrakeWindow         = time.Hour
	DefaultBrakeMaxDeletes     = 1000
	DefaultBrakeTypeMaxDeletes = 1000
	DefaultBrakeMaxFraction    = 0.05
	DefaultBrakeMinDeletes     = 50
)

// populationTTL is how long a count of rows per type serves the fraction
// thresholds before it is recounted.
const populationTTL = time.Minute

// brakeLockID serialises delete admissions (an advisory transaction lock:
// "geoblob-brake" as a number).
const brakeLockID int64 = 0x67656f62726b

// Verdict is what the brake decided about one delete.
type Verdict int

// Verdicts of AdmitDelete.
const (
	// VerdictAdmit: delete the secondary copy now.
	VerdictAdmit Verdict = iota
	// VerdictHold: the brake is (now) tripped; the row was held.
	VerdictHold
	// VerdictDefer: the tombstone is younger than the grace period; the
	// row was failed with retry_at at the end of the grace.
	VerdictDefer
	// VerdictLost: the claim is no longer current; nothing was written.
	VerdictLost
)

// String returns the verdict's lower-case name.
func (v Verdict) String() string {
	return enumName(v, "admit", "hold", "defer", "lost")
}

// DeleteDecision is AdmitDelete's answer.
type DeleteDecision struct {
	Verdict Verdict
	// Reason says why a delete was held or deferred.
	Reason string
	// Until is the end of the grace period of a deferred delete.
	Until time.Time
}

// AdmitDelete decides, under one lock shared by every caller, whether the
// claimed tombstone's delete may reach the secondary now: a released row is
// admitted; a tombstone younger than the grace period is deferred; a tripped
// brake (for all types or the row's type) holds it; otherwise the delete is
// admitted if the budget allows it, and else the brake trips and the row is
// held. Held and deferred rows are written in the same transaction.
func (s *Store) AdmitDelete(ctx context.Context, c Claim, p BrakePolicy) (DeleteDecision, error) {
	var d DeleteDecision
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		d, err = s.admit(ctx, tx, c, p)
		return err
	})
	if err != nil {
		return DeleteDecision{}, fmt.Errorf("registry: admit delete %s/%s: %w", c.DataType, c.ObjectKey, err)
	}
	return d, nil
}

func (s *Store) admit(ctx context.Context, tx pgx.Tx, c Claim, p BrakePolicy) (DeleteDecision, error) {
	now := s.now()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, brakeLockID); err != nil {
		return DeleteDecision{}, err
	}
	var hold DeleteHold
	var deletedAt *time.Time
	err := tx.QueryRow(ctx, qClaimedTombstone, c.ID, c.Generation).Scan(&hold, &deletedAt)
	if errors.Is(err, pgx.ErrNoRows) || deletedAt == nil {
		return DeleteDecision{Verdict: VerdictLost}, nil
	}
	if err != nil {
		return DeleteDecision{}, err
	}
	if hold == HoldReleased {
		return DeleteDecision{Verdict: VerdictAdmit}, nil
	}
	if p.Grace > 0 && deletedAt.Add(p.Grace).After(now) {
		until := deletedAt.Add(p.Grace).Truncate(time.Microsecond)
		reason := fmt.Sprintf("delete waits for the grace period (%s) until %s", p.Grace, until.UTC().Format(time.RFC3339))
		return s.writeVerdict(ctx, tx, c, DeleteDecision{Verdict: VerdictDefer, Reason: reason, Until: until}, now)
	}
	if p.Disabled {
		return DeleteDecision{Verdict: VerdictAdmit}, nil
	}
	window := p.Window
	if window <= 0 {
		window = DefaultBrakeWindow
	}
	scopes, err := brakeScopes(ctx, tx, c.DataType)
	if err != nil {
		return DeleteDecision{}, err
	}
	for _, sc := range []string{ScopeAll, c.DataType} {
		if b := scopes[sc]; b.TrippedAt != nil {
			return s.writeVerdict(ctx, tx, c, DeleteDecision{Verdict: VerdictHold, Reason: "delete brake tripped: " + b.Reason}, now)
		}
	}
	since := func(sc string) time.Time {
		t := now.Add(-window)
		if r := scopes[sc].ResetAt; r != nil && r.After(t) {
			t = *r
		}
		return t
	}
	var all, typ int64
	if err := tx.QueryRow(ctx, qBrakeCounts, since(ScopeAll), since(c.DataType), c.DataType).Scan(&all, &typ); err != nil {
		return DeleteDecision{}, err
	}
	popAll, popType, err := s.population(ctx, tx, c.DataType, now, window)
	if err != nil {
		return DeleteDecision{}, err
	}
	scope, reason := p.exceeded(c.DataType, all+1, typ+1, popAll, popType, window)
	if scope != "" {
		if _, err := tx.Exec(ctx, qTripBrake, scope, now, reason); err != nil {
			return DeleteDecision{}, err
		}
		s.logger.Warn("registry: delete brake tripped", "scope", scope, "reason", reason)
		return s.writeVerdict(ctx, tx, c, DeleteDecision{Verdict: VerdictHold, Reason: "delete brake tripped: " + reason}, now)
	}
	if _, err := tx.Exec(ctx, qLogDelete, c.DataType, now, now.Add(-window)); err != nil {
		return DeleteDecision{}, err
	}
	return DeleteDecision{Verdict: VerdictAdmit}, nil
}

// exceeded returns the scope whose threshold admitting one more delete
// would break (all and typ include it), and why; "" when none.
func (p BrakePolicy) exceeded(dataType string, all, typ, popAll, popType int64, window time.Duration) (string, string) {
	fracLimit := func(pop int64) int64 {
		return max(p.MinDeletes, int64(math.Floor(p.MaxFraction*float64(pop))))
	}
	switch {
	case p.MaxDeletes > 0 && all > p.MaxDeletes:
		return ScopeAll, fmt.Sprintf("more than %d deletes of all types within %s", p.MaxDeletes, window)
	case p.MaxFraction > 0 && all > fracLimit(popAll):
		return ScopeAll, fmt.Sprintf("more than %d deletes of all types within %s (%.1f%% of %d rows)", fracLimit(popAll), window, 100*p.MaxFraction, popAll)
	case p.TypeMaxDeletes > 0 && typ > p.TypeMaxDeletes:
		return dataType, fmt.Sprintf("more than %d deletes of %s within %s", p.TypeMaxDeletes, dataType, window)
	case p.MaxFraction > 0 && typ > fracLimit(popType):
		return dataType, fmt.Sprintf("more than %d deletes of %s within %s (%.1f%% of %d rows)", fracLimit(popType), dataType, window, 100*p.MaxFraction, popType)
	}
	return "", ""
}

// population returns the rows the fraction thresholds compare with, overall
// and for dataType, recounting all types when the count is older than
// populationTTL or lacks the type.
func (s *Store) population(ctx context.Context, tx pgx.Tx, dataType string, now time.Time, window time.Duration) (int64, int64, error) {
	var all, typ int64
	var oldest *time.Time
	var hasType bool
	if err := tx.QueryRow(ctx, qPopulation, dataType).Scan(&all, &typ, &oldest, &hasType); err != nil {
		return 0, 0, err
	}
	if oldest != nil && hasType && now.Sub(*oldest) < populationTTL {
		return all, typ, nil
	}
	if _, err := tx.Exec(ctx, qRecountPopulation, now.Add(-window), now); err != nil {
		return 0, 0, err
	}
	if err := tx.QueryRow(ctx, qPopulation, dataType).Scan(&all, &typ, &oldest, &hasType); err != nil {
		return 0, 0, err
	}
	return all, typ, nil
}

// Finish statements of a sync claim the brake ends without a delete (the
// sync machine's finish, compare-and-set on the claim token; $1 id, $2
// generation, $3 claim time, $4 now): held ($5 reason) is never due again
// on its own, only an operator moves it; deferred ($5 until, $6 reason) is
// due when the grace period ends.
var (
	qHoldDelete = syncMachine.finishing(syncMachine.ended("3") + `
	retry_at = '9999-12-31T00:00:00Z',
	last_sync_failure = $5,
	delete_hold = 1,`)
	qDeferDelete = syncMachine.finishing(syncMachine.ended("3") + `
	retry_at = $5,
	last_sync_failure = $6,`)
)

// writeVerdict records a hold or a deferral on the claimed row through the
// sync machine's finish (in tx, the brake's transaction).
func (s *Store) writeVerdict(ctx context.Context, tx pgx.Tx, c Claim, d DeleteDecision, now time.Time) (DeleteDecision, error) {
	sql, args := qDeferDelete, []any{d.Until, TruncateFailure(d.Reason)}
	if d.Verdict == VerdictHold {
		sql, args = qHoldDelete, []any{TruncateFailure(d.Reason)}
	}
	won, err := s.finishOn(ctx, tx, syncMachine, c, "brake "+d.Verdict.String(), sql, now, args)
	if err != nil {
		return DeleteDecision{}, err
	}
	if !won {
		return DeleteDecision{Verdict: VerdictLost}, nil
	}
	return d, nil
}

// BrakeScope is the state of one brake scope.
type BrakeScope struct {
	Scope     string     `json:"scope"` // ScopeAll or a data type
	TrippedAt *time.Time `json:"tripped_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	ResetAt   *time.Time `json:"reset_at,omitempty"`
}

func brakeScopes(ctx context.Context, q pgx.Tx, dataType string) (map[string]BrakeScope, error) {
	rows, err := q.Query(ctx, qBrakeScopes, []string{ScopeAll, dataType})
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, scanBrakeScope)
	if err != nil {
		return nil, err
	}
	return indexBy(list, func(b BrakeScope) string { return b.Scope }), nil
}

func scanBrakeScope(r pgx.CollectableRow) (BrakeScope, error) {
	var b BrakeScope
	err := r.Scan(&b.Scope, &b.TrippedAt, &b.Reason, &b.ResetAt)
	return b, err
}

// TripBrake trips the brake of scope (ScopeAll or a data type) with reason,
// e.g. when the primary bucket is missing. Tripping a tripped scope keeps
// its first time and reason.
func (s *Store) TripBrake(ctx context.Context, scope, reason string) error {
	if _, err := s.pool.Exec(ctx, qTripBrake, scope, s.now(), reason); err != nil {
		return fmt.Errorf("registry: trip brake %s: %w", scope, err)
	}
	s.logger.Warn("registry: delete brake tripped", "scope", scope, "reason", reason)
	return nil
}

// BrakeStatus is the delete brake as an operator sees it.
type BrakeStatus struct {
	// Tripped lists the tripped scopes (empty when deletes flow).
	Tripped []BrakeScope `json:"tripped"`
	// Held counts held deletes per data type.
	Held map[string]int64 `json:"held"`
	// HeldTotal is the sum of Held.
	HeldTotal int64 `json:"held_total"`
	// HeldBytes is the size of the held objects together.
	HeldBytes int64 `json:"held_bytes"`
}

// BrakeStatus reports the tripped scopes and the held deletes.
func (s *Store) BrakeStatus(ctx context.Context) (BrakeStatus, error) {
	st := BrakeStatus{Tripped: []BrakeScope{}, Held: map[string]int64{}}
	rows, err := s.pool.Query(ctx, qTrippedScopes)
	if err != nil {
		return st, fmt.Errorf("registry: brake status: %w", err)
	}
	if st.Tripped, err = pgx.CollectRows(rows, scanBrakeScope); err != nil {
		return st, fmt.Errorf("registry: brake status: %w", err)
	}
	rows, err = s.pool.Query(ctx, qHeldCounts)
	if err != nil {
		return st, fmt.Errorf("registry: brake status: %w", err)
	}
	var typ string
	var n, bytes int64
	_, err = pgx.ForEachRow(rows, []any{&typ, &n, &bytes}, func() error {
		st.Held[typ] = n
		st.HeldTotal += n
		st.HeldBytes += bytes
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("registry: brake status: %w", err)
	}
	return st, nil
}

// HoldFilter selects held deletes; the zero value selects all of them.
type HoldFilter struct {
	DataType string `json:"data_type,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
}

func (f HoldFilter) all() bool { return f.DataType == "" && f.Prefix == "" }

// Held lists held deletes matching f in key order, after afterKey, at most
// limit (<= 0: 1000).
func (s *Store) Held(ctx context.Context, f HoldFilter, afterKey string, limit int) ([]Row, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, qListHeld, f.DataType, f.Prefix, afterKey, limit)
	if err != nil {
		return nil, fmt.Errorf("registry: list held: %w", err)
	}
	out, err := pgx.CollectRows(rows, ScanRow)
	if err != nil {
		return nil, fmt.Errorf("registry: list held: %w", err)
	}
	return out, nil
}

// HoldAction is what an operator does with held deletes.
type HoldAction string

// Hold actions.
const (
	// ActionRelease lets the held deletes reach the secondary (they become
	// pending and bypass the budget).
	ActionRelease HoldAction = "release"
	// ActionDiscard drops the held deletes: the secondary keeps the
	// objects and the tombstones become synced.
	ActionDiscard HoldAction = "discard"
)

// ResolveHeld applies action to the held deletes matching f and audits it
// under actor; dryRun only counts. Resolving with an empty filter, or with a
// data type only, also re-arms the brake of that scope (all scopes for an
// empty filter): its window restarts now.
func (s *Store) ResolveHeld(ctx context.Context, action HoldAction, f HoldFilter, actor string, dryRun bool) (int64, error) {
	var q string
	switch action {
	case ActionRelease:
		q = qReleaseHeld
	case ActionDiscard:
		q = qDiscardHeld
	default:
		return 0, fmt.Errorf("registry: resolve held: unknown action %q", action)
	}
	if dryRun {
		var n int64
		if err := s.pool.QueryRow(ctx, qCountHeld, f.DataType, f.Prefix).Scan(&n); err != nil {
			return 0, fmt.Errorf("registry: %s held: %w", action, err)
		}
		return n, nil
	}
	now := s.now()
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, brakeLockID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, q, f.DataType, f.Prefix, now)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		switch {
		case f.all():
			_, err = tx.Exec(ctx, qResetBrake, nil, now)
		case f.Prefix == "":
			_, err = tx.Exec(ctx, qResetBrake, []string{f.DataType}, now)
		}
		if err != nil {
			return err
		}
		return auditDR(ctx, tx, now, actor, "delete_brake_"+string(action), f.DataType, f, n)
	})
	if err != nil {
		return 0, fmt.Errorf("registry: %s held: %w", action, err)
	}
	return n, nil
}

// ResetBrake re-arms the brake of every scope without touching held rows
// (they stay held): the window restarts now. Audited under actor.
func (s *Store) ResetBrake(ctx context.Context, actor string) error {
	now := s.now()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qResetBrake, nil, now); err != nil {
			return err
		}
		return auditDR(ctx, tx, now, actor, "delete_brake_reset", "", HoldFilter{}, 0)
	})
	if err != nil {
		return fmt.Errorf("registry: reset brake: %w", err)
	}
	return nil
}

// auditDR records an operator action on disaster-recovery state in
// registry_audit, in the caller's transaction.
func auditDR(ctx context.Context, tx pgx.Tx, at time.Time, actor, action, dataType string, filter any, rows int64) error {
	b, err := json.Marshal(filter)
	if err != nil {
		return fmt.Errorf("registry: audit: %w", err)
	}
	if actor == "" {
		actor = "unknown"
	}
	if _, err := tx.Exec(ctx, qAuditDR, at, actor, action, dataType, b, rows); err != nil {
		return fmt.Errorf("registry: audit: %w", err)
	}
	return nil
}
