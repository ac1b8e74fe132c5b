package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// position is a cursor's place in its source, stored as JSON.
type position struct {
	// After is the last listed key (listing sources; "" = from the start).
	After string `json:"after,omitempty"`
	// Manifest is the inventory manifest key of the pass.
	Manifest string `json:"manifest,omitempty"`
	// Inventory is the next row of the manifest's files.
	Inventory InventoryPosition `json:"inventory"`
	// Scanned: every inventory row was read; the orphan sweep runs.
	Scanned bool `json:"scanned,omitempty"`
	// OrphansAfterID is the orphan sweep's progress (registry ids).
	OrphansAfterID int64 `json:"orphans_after_id,omitempty"`
	// Done: the manifest was fully reconciled; wait for a newer one.
	Done bool `json:"done,omitempty"`
}

// cursor is a leased backfill_cursor row.
type cursor struct {
	name          string
	owner         string
	pos           position
	passStartedAt *time.Time
	passes        int64
	lastCompleted *time.Time
	listed        int64
	registered    int64
}

// leaseCursor takes the cursor's lease until until. It returns ErrBusy
// when another run holds it.
func (r *Runner) leaseCursor(ctx context.Context, name, owner string, until time.Time) (*cursor, error) {
	c := &cursor{name: name, owner: owner}
	var raw []byte
	err := r.o.Pool.QueryRow(ctx, qCursorLease, name, owner, r.now(), until).
		Scan(&raw, &c.passStartedAt, &c.passes, &c.lastCompleted, &c.listed, &c.registered)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("%w: %s", ErrBusy, name)
	case err != nil:
		return nil, fmt.Errorf("backfill: lease cursor %s: %w", name, err)
	}
	if err := json.Unmarshal(raw, &c.pos); err != nil {
		return nil, fmt.Errorf("backfill: cursor %s: position %s: %w", name, raw, err)
	}
	return c, nil
}

func (r *Runner) releaseCursor(ctx context.Context, c *cursor) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.o.Pool.Exec(ctx, qCursorRelease, c.name, c.owner, r.now()); err != nil {
		r.log.WarnContext(ctx, "backfill: release cursor", "cursor", c.name, "error", err)
	}
}

// execCursor runs one of the cursor update statements ($1 name, $2 owner,
// $3 now, $4 position pos, then args) through q (the pool or a
// transaction) and fails when the lease was lost.
func (r *Runner) execCursor(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, c *cursor, sql string, pos position, args ...any) error {
	raw, err := json.Marshal(pos)
	if err != nil {
		return fmt.Errorf("backfill: cursor %s: %w", c.name, err)
	}
	var one int
	err = q.QueryRow(ctx, sql, append([]any{c.name, c.owner, r.now(), raw}, args...)...).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s (lease lost)", ErrBusy, c.name)
	case err != nil:
		return fmt.Errorf("backfill: save cursor %s: %w", c.name, err)
	}
	return nil
}

func (r *Runner) saveCursor(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, c *cursor, listed, registered int64) error {
	return r.execCursor(ctx, q, c, qCursorSave, c.pos, c.passStartedAt, listed, registered)
}

func (r *Runner) restartCursor(ctx context.Context, c *cursor, pos position) error {
	if err := r.execCursor(ctx, r.o.Pool, c, qCursorRestart, pos); err != nil {
		return err
	}
	now := r.now()
	c.pos, c.passStartedAt, c.listed, c.registered = pos, &now, 0, 0
	return nil
}

func (r *Runner) completeCursor(ctx context.Context, c *cursor, next position) error {
	if err := r.execCursor(ctx, r.o.Pool, c, qCursorComplete, next); err != nil {
		return err
	}
	c.pos, c.passStartedAt = next, nil
	return nil
}

// CursorStatus is the visible state of one backfill cursor.
type CursorStatus struct {
	Name            string
	Position        string // JSON
	PassStartedAt   *time.Time
	PassesCompleted int64
	LastCompletedAt *time.Time
	Listed          int64 // in the current pass
	Registered      int64 // in the current pass
	LeaseOwner      string
	LeaseUntil      *time.Time
}

// Cursors returns every backfill cursor, ordered by name.
func (r *Runner) Cursors(ctx context.Context) ([]CursorStatus, error) {
	rows, err := r.o.Pool.Query(ctx, `SELECT name, position::text, pass_started_at, passes_completed,
		last_completed_at, listed, registered, coalesce(lease_owner, ''), lease_until
		FROM backfill_cursor ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("backfill: cursors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CursorStatus, error) {
		var c CursorStatus
		err := row.Scan(&c.Name, &c.Position, &c.PassStartedAt, &c.PassesCompleted, &c.LastCompletedAt,
			&c.Listed, &c.Registered, &c.LeaseOwner, &c.LeaseUntil)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("backfill: cursors: %w", err)
	}
	return out, nil
}
