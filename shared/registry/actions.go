package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Action is an operator action on registry rows.
type Action string

// Operator actions (Geo's resync and reverify).
const (
	// ActionResync puts synced, failed or started rows back to pending with
	// a generation bump, so a copy in flight can not mark them synced.
	ActionResync Action = "resync"
	// ActionReverify puts the verification of synced rows with a known
	// primary checksum back to pending.
	ActionReverify Action = "reverify"
)

// ErrActionInvalid is returned (wrapped) for an unknown action.
var ErrActionInvalid = errors.New("registry: invalid action")

// setClause is what the action writes ($now is the placeholder of now);
// needs is true for rows the action changes (others are left alone, so
// repeating an action changes nothing). It names the states it needs (IN,
// not <>), so an id span of a bulk batch is a range of each of those
// states in (data_type, state, id), not a walk of the whole type.
func (a Action) sql(now string) (set, needs string, err error) {
	switch a {
	case ActionResync:
		return `state = 0, generation = r.generation + 1, retry_count = 0, retry_at = NULL,
			verification_state = 4, verification_started_at = NULL, updated_at = ` + now,
			`r.state IN (1, 2, 3)`, nil
	case ActionReverify:
		return `verification_state = 0, verification_started_at = NULL, verification_retry_count = 0,
			verification_retry_at = NULL, updated_at = ` + now,
			`(r.deleted_at IS NULL AND r.state = 2 AND r.primary_sha256 <> '' AND r.verification_state <> 0)`, nil
	}
	return "", "", fmt.Errorf("%w: %q (want resync or reverify)", ErrActionInvalid, a)
}

// ActOnRow applies an action to the row with id and records it in the
// audit table in the same transaction. It returns the row after the action
// and whether the action changed it (false: nothing to do, e.g. a resync of
// a pending row), or ErrNotFound.
func (s *Store) ActOnRow(ctx context.Context, a Action, id int64, actor string) (Entry, bool, error) {
	var b sqlBuilder
	now := s.now()
	set, needs, err := a.sql(b.arg(now))
	if err != nil {
		return Entry{}, false, err
	}
	idArg := b.arg(id)
	var changed bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var key, dataType string
		err := tx.QueryRow(ctx, `WITH upd AS (UPDATE blob_registry r SET `+set+` WHERE r.id = `+idArg+` AND `+needs+` RETURNING r.id)
			SELECT r.data_type, r.object_key, EXISTS (SELECT 1 FROM upd) FROM blob_registry r WHERE r.id = `+idArg,
			b.args...).Scan(&dataType, &key, &changed)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO registry_audit (at, actor, action, data_type, row_id, object_key, rows)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, now, actor, string(a), dataType, id, key, boolInt(changed))
		return err
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("registry: %s id %d: %w", a, id, err)
	}
	s.logger.Info("registry: operator action", "action", a, "id", id, "actor", actor, "changed", changed)
	e, err := s.GetEntry(ctx, id)
	return e, changed, err
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// bulkWhere is the condition of the rows a bulk action changes: the filter,
// rows that need the action, ids up to maxID.
func bulkWhere(a Action, f Filter, b *sqlBuilder, nowArg string) (set, where string, err error) {
	if err := f.apply(b); err != nil {
		return "", "", err
	}
	set, needs, err := a.sql(nowArg)
	if err != nil {
		return "", "", err
	}
	return set, b.where() + " AND " + needs, nil
}

// CountAction returns how many rows a bulk action with filter f would
// change now: the dry-run count. Run at the same snapshot, StartBulk plans
// the same number and RunBulk changes exactly those rows.
func (s *Store) CountAction(ctx context.Context, a Action, f Filter) (int64, error) {
	var b sqlBuilder
	_, where, err := bulkWhere(a, f, &b, "NULL")
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM blob_registry r WHERE "+where, b.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry: count %s: %w", a, err)
	}
	return n, nil
}

// BulkState is the state of a bulk operation.
type BulkState string

// Bulk operation states.
const (
	BulkRunning BulkState = "running"
	BulkDone    BulkState = "done"
	BulkFailed  BulkState = "failed"
)

// BulkOperation is a batched resync or reverify over the rows of a filter
// that existed when it started (ids up to MaxID). Its cursor makes it
// resumable: every row with id <= CursorID has been handled.
type BulkOperation struct {
	ID             int64      `json:"id"`
	Action         Action     `json:"action"`
	Filter         Filter     `json:"filter"`
	Actor          string     `json:"actor"`
	State          BulkState  `json:"state"`
	Planned        int64      `json:"planned"` // dry-run count at start
	Changed        int64      `json:"changed"` // rows changed so far
	CursorID       int64      `json:"cursor_id"`
	MaxID          int64      `json:"max_id"`
	Batches        int64      `json:"batches"`
	LongestBatchMS float64    `json:"longest_batch_ms"` // longest batch transaction
	Error          string     `json:"error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

const bulkColumns = `id, action, filter, actor, state, planned, changed, cursor_id, max_id, batches,
	longest_batch_ms, error, created_at, updated_at, finished_at`

func scanBulk(r pgx.CollectableRow) (BulkOperation, error) {
	var o BulkOperation
	var filter []byte
	err := r.Scan(&o.ID, &o.Action, &filter, &o.Actor, &o.State, &o.Planned, &o.Changed, &o.CursorID,
		&o.MaxID, &o.Batches, &o.LongestBatchMS, &o.Error, &o.CreatedAt, &o.UpdatedAt, &o.FinishedAt)
	if err == nil {
		err = json.Unmarshal(filter, &o.Filter)
	}
	return o, err
}

// StartBulk records a bulk operation (and its audit row) and returns it; it
// changes no registry row: RunBulk does, in batches. The planned count and
// the id range are taken in one snapshot.
func (s *Store) StartBulk(ctx context.Context, a Action, f Filter, actor string) (BulkOperation, error) {
	var b sqlBuilder
	_, where, err := bulkWhere(a, f, &b, "NULL")
	if err != nil {
		return BulkOperation{}, err
	}
	filter, err := json.Marshal(f)
	if err != nil {
		return BulkOperation{}, fmt.Errorf("registry: start bulk: %w", err)
	}
	now := s.now()
	n := len(b.args)
	args := append(b.args, string(a), filter, actor, now)
	var op BulkOperation
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// REPEATABLE READ is not needed: one statement is one snapshot.
		rows, err := tx.Query(ctx, `
WITH m AS (SELECT coalesce(max(id), 0) AS max_id FROM blob_registry),
c AS (SELECT count(*) AS planned FROM blob_registry r WHERE `+where+`)
INSERT INTO registry_bulk_operation (action, filter, actor, planned, max_id, created_at, updated_at)
SELECT $`+strconv.Itoa(n+1)+`, $`+strconv.Itoa(n+2)+`, $`+strconv.Itoa(n+3)+`, c.planned, m.max_id, $`+strconv.Itoa(n+4)+`, $`+strconv.Itoa(n+4)+`
FROM m, c
RETURNING `+bulkColumns, args...)
		if err != nil {
			return err
		}
		if op, err = pgx.CollectExactlyOneRow(rows, scanBulk); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO registry_audit (at, actor, action, data_type, filter, rows, bulk_operation_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, now, actor, "bulk_"+string(a), f.DataType, filter, op.Planned, op.ID)
		return err
	})
	if err != nil {
		return BulkOperation{}, fmt.Errorf("registry: start bulk %s: %w", a, err)
	}
	s.logger.Info("registry: bulk operation started", "id", op.ID, "action", a, "actor", actor,
		"filter", string(filter), "planned", op.Planned)
	return op, nil
}

// BulkOptions tune RunBulk.
type BulkOptions struct {
	// Owner names the runner holding the lease (e.g. host:pid).
	Owner string
	// Lease is how long the runner's claim lasts without progress; another
	// runner may resume the operation after it. 0 = 30 s.
	Lease time.Duration
	// TargetBatch is the batch transaction time aimed at; batch sizes
	// adapt to it. 0 = 250 ms.
	TargetBatch time.Duration
	// FirstBatch is the id span of the first batch; 0 = 2,000.
	FirstBatch int
}

func (o BulkOptions) withDefaults() BulkOptions {
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.TargetBatch <= 0 {
		o.TargetBatch = 250 * time.Millisecond
	}
	if o.FirstBatch <= 0 {
		o.FirstBatch = 2_000
	}
	return o
}

// Bounds of a bulk batch's id span: at least minBulkSpan ids (so a batch
// is never all overhead), at most maxBulkSpan (so one batch of a filter
// that matches every row stays near a second even when the adaptation
// overshoots), and never more than twice the previous span.
const (
	minBulkSpan = 100
	maxBulkSpan = 200_000
)

// RunBulk runs the bulk operation id to its end in batches: each batch is
// one short transaction that changes the matching rows in the next id span
// past the cursor and moves the cursor to the span's end, so a crash loses
// no work and repeats none, and event processing only ever waits for one
// batch. A batch is bounded by its id span, not by how many rows match, so
// a filter that matches few rows never walks far in one transaction. The
// span adapts so a batch takes about TargetBatch. It returns the operation
// as it ended, or as it stood when ctx ended (still running, resumable), or
// ErrNotFound. Another runner's live lease makes it return the operation
// untouched.
func (s *Store) RunBulk(ctx context.Context, id int64, o BulkOptions) (BulkOperation, error) {
	o = o.withDefaults()
	op, err := s.BulkOperation(ctx, id)
	if err != nil {
		return op, err
	}
	b := sqlBuilder{args: []any{nil}} // $1 is now, then the filter's args
	set, where, err := bulkWhere(op.Action, op.Filter, &b, "$1")
	if err != nil {
		return op, err
	}
	k := len(b.args)
	lo, hi := "$"+strconv.Itoa(k+1), "$"+strconv.Itoa(k+2)
	// one UPDATE over the id span (lo, hi]: per state the action needs, an
	// id range of (data_type, state, id) (00700), or the filter's own index
	batchSQL := `UPDATE blob_registry r SET ` + set + ` WHERE ` + where + ` AND r.id > ` + lo + ` AND r.id <= ` + hi
	span := int64(o.FirstBatch)
	for op.State == BulkRunning {
		if ctx.Err() != nil {
			return op, nil
		}
		start := time.Now()
		var leased bool
		var covered int64
		var next BulkOperation
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			now := s.now()
			// lease: ours, free or expired; holds the op row for the batch
			var cursor int64
			err := tx.QueryRow(ctx, `UPDATE registry_bulk_operation SET lease_owner = $2, lease_until = $3
				WHERE id = $1 AND state = 'running' AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < $4)
				RETURNING cursor_id`, id, o.Owner, now.Add(o.Lease), now).Scan(&cursor)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			leased = true
			end := min(cursor+span, op.MaxID)
			covered = end - cursor
			args := append([]any{now}, b.args[1:]...)
			args = append(args, cursor, end)
			tag, err := tx.Exec(ctx, batchSQL, args...)
			if err != nil {
				return err
			}
			state := BulkRunning
			if end >= op.MaxID {
				state = BulkDone
			}
			ms := float64(time.Since(start).Microseconds()) / 1000
			rows, err := tx.Query(ctx, `UPDATE registry_bulk_operation SET cursor_id = $2, changed = changed + $3,
				batches = batches + 1, longest_batch_ms = greatest(longest_batch_ms, $4), state = $5,
				finished_at = CASE WHEN $5 = 'running' THEN NULL ELSE $6::timestamptz END,
				lease_owner = CASE WHEN $5 = 'running' THEN lease_owner END,
				lease_until = CASE WHEN $5 = 'running' THEN lease_until END, updated_at = $6
				WHERE id = $1 RETURNING `+bulkColumns, id, end, tag.RowsAffected(), ms, string(state), now)
			if err != nil {
				return err
			}
			// op changes only when the batch commits: a batch cut short
			// (ctx ended) leaves the operation as it stood
			next, err = pgx.CollectExactlyOneRow(rows, scanBulk)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return op, nil
			}
			return op, fmt.Errorf("registry: bulk %d: %w", id, err)
		}
		if !leased {
			return s.BulkOperation(ctx, id)
		}
		op = next
		// aim the next batch at TargetBatch: scale the span by the
		// measured rate, at most doubling, within the span bounds
		if took := time.Since(start); took > 0 && covered == span {
			aimed := int64(float64(span) * float64(o.TargetBatch) / float64(took))
			span = max(minBulkSpan, min(aimed, 2*span, maxBulkSpan))
		}
	}
	s.logger.Info("registry: bulk operation finished", "id", op.ID, "action", op.Action, "actor", op.Actor,
		"state", op.State, "planned", op.Planned, "changed", op.Changed, "batches", op.Batches,
		"longest_batch_ms", op.LongestBatchMS)
	return op, nil
}

// ResumeBulk runs every running bulk operation whose lease is free or has
// expired (its runner crashed) to its end, and returns how many it ran.
func (s *Store) ResumeBulk(ctx context.Context, o BulkOptions) (int, error) {
	ids, err := collect(ctx, s.pool, "resume bulk", pgx.RowTo[int64], `SELECT id FROM registry_bulk_operation
		WHERE state = 'running' AND (lease_until IS NULL OR lease_until < $1) ORDER BY id`, s.now())
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := s.RunBulk(ctx, id, o); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// BulkOperation returns the bulk operation id, or ErrNotFound.
func (s *Store) BulkOperation(ctx context.Context, id int64) (BulkOperation, error) {
	return collectOne(ctx, s.pool, fmt.Sprintf("bulk %d", id), scanBulk,
		`SELECT `+bulkColumns+` FROM registry_bulk_operation WHERE id = $1`, id)
}

// BulkOperations returns the newest bulk operations, newest first.
func (s *Store) BulkOperations(ctx context.Context, limit int) ([]BulkOperation, error) {
	return collect(ctx, s.pool, "bulk operations", scanBulk,
		`SELECT `+bulkColumns+` FROM registry_bulk_operation ORDER BY id DESC LIMIT $1`, limit)
}

// AuditEntry is one recorded operator action.
type AuditEntry struct {
	ID              int64           `json:"id"`
	At              time.Time       `json:"at"`
	Actor           string          `json:"actor"`
	Action          string          `json:"action"`
	DataType        string          `json:"data_type,omitempty"`
	RowID           *int64          `json:"row_id,omitempty"`
	ObjectKey       *string         `json:"object_key,omitempty"`
	Filter          json.RawMessage `json:"filter,omitempty"`
	Rows            int64           `json:"rows"`
	BulkOperationID *int64          `json:"bulk_operation_id,omitempty"`
}

// Audit returns the newest audit entries, newest first.
func (s *Store) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	return collect(ctx, s.pool, "audit", func(r pgx.CollectableRow) (AuditEntry, error) {
		var a AuditEntry
		var filter []byte
		err := r.Scan(&a.ID, &a.At, &a.Actor, &a.Action, &a.DataType, &a.RowID, &a.ObjectKey, &filter, &a.Rows, &a.BulkOperationID)
		if filter != nil {
			a.Filter = filter
		}
		return a, err
	}, `SELECT id, at, actor, action, data_type, row_id, object_key, filter, rows,
		bulk_operation_id FROM registry_audit ORDER BY at DESC, id DESC LIMIT $1`, limit)
}
