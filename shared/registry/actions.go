package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
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

// bulkBatch returns the UPDATE of one bulk batch and its builder, whose
// args are $1 now (nil here), the filter's, then the id span (lo, hi] to
// append. Per state the action needs, the span is an id range of
// (data_type, state, id) (00700), or of the filter's own index.
func bulkBatch(a Action, f Filter) (string, sqlBuilder, error) {
	b := sqlBuilder{args: []any{nil}}
	set, where, err := bulkWhere(a, f, &b, "$1")
	if err != nil {
		return "", b, err
	}
	k := len(b.args)
	lo, hi := "$"+strconv.Itoa(k+1), "$"+strconv.Itoa(k+2)
	return `UPDATE blob_registry r SET ` + set + ` WHERE ` + where + ` AND r.id > ` + lo + ` AND r.id <= ` + hi, b, nil
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

// updateBulk runs an UPDATE ... RETURNING bulkColumns of one operation and
// returns it (pgx.ErrNoRows when the update matched none).
func (s *Store) updateBulk(ctx context.Context, sql string, args ...any) (BulkOperation, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return BulkOperation{}, err
	}
	return pgx.CollectExactlyOneRow(rows, scanBulk)
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
	// Workers is how many batches run at a time, each in its own
	// transaction on disjoint id spans. 0 = 2: while one batch waits for
	// I/O or its commit, the other computes (a batch's cost is writing
	// index entries, which one backend does on one core).
	Workers int
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
	if o.Workers <= 0 {
		o.Workers = 2
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

// errLeaseLost ends a batch whose operation another runner took over.
var errLeaseLost = errors.New("registry: bulk lease taken over")

// bulkSpans hands out the id spans of one RunBulk to its workers and keeps
// the low-water mark: every id at or below it is in a committed batch.
type bulkSpans struct {
	mu      sync.Mutex
	next    int64              // start of the next span to hand out
	max     int64              // end of the operation's range
	running map[int64]struct{} // starts of spans handed out, not committed
}

// take returns the next span (lo, hi] of at most n ids, or ok = false
// when the range is all handed out.
func (b *bulkSpans) take(n int64) (lo, hi int64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next >= b.max {
		return 0, 0, false
	}
	lo, hi = b.next, min(b.next+n, b.max)
	b.next = hi
	b.running[lo] = struct{}{}
	return lo, hi, true
}

// done marks the span starting at lo committed.
func (b *bulkSpans) done(lo int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, lo)
}

// lowWater returns the cursor the operation may record once the span
// starting at committing (-1: none) has committed: below the first other
// span still running, else where hand-out stands.
func (b *bulkSpans) lowWater(committing int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	lw := b.next
	for lo := range b.running {
		if lo != committing {
			lw = min(lw, lo)
		}
	}
	return lw
}

// RunBulk runs the bulk operation id to its end in batches: each batch is
// one short transaction that changes the matching rows in an id span past
// the cursor and records its progress, so a crash loses no committed work,
// and event processing only ever waits for one batch. A batch is bounded by
// its id span, not by how many rows match, so a filter that matches few
// rows never walks far in one transaction; the span adapts so a batch takes
// about TargetBatch. Workers batches run at a time on disjoint spans; the
// recorded cursor is the low-water mark (every row at or below it was
// handled). When ctx ends, the batches under way finish (each is short),
// the cursor records everything committed and the lease is released, so
// the next runner resumes exactly where this one stopped. Only a crash
// (the process killed mid-batch) leaves up to Workers-1 committed spans
// above the cursor: the resume walks them again, which changes (and
// counts) again only their rows that were synced or verified again in
// between. The lease belongs to this call (Owner plus a random suffix),
// so two runners with the same Owner never run one operation at once.
// It returns the operation as it ended, or as it stood when ctx ended
// (still running, resumable), or ErrNotFound. Another runner's live lease
// makes it return the operation untouched.
func (s *Store) RunBulk(ctx context.Context, id int64, o BulkOptions) (BulkOperation, error) {
	o = o.withDefaults()
	owner := o.Owner + "/" + randomSuffix()
	op, err := s.BulkOperation(ctx, id)
	if err != nil {
		return op, err
	}
	batchSQL, b, err := bulkBatch(op.Action, op.Filter)
	if err != nil {
		return op, err
	}
	// the lease ($2 owner, $4 now): ours, free or expired
	const leaseOK = `state = 'running' AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < $4)`
	now := s.now()
	leased, err := s.updateBulk(ctx, `UPDATE registry_bulk_operation SET lease_owner = $2, lease_until = $3
		WHERE id = $1 AND `+leaseOK+` RETURNING `+bulkColumns, id, owner, now.Add(o.Lease), now)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.BulkOperation(ctx, id)
	}
	if err != nil {
		if ctx.Err() != nil {
			return op, nil
		}
		return op, fmt.Errorf("registry: bulk %d: %w", id, err)
	}
	op = leased
	spans := &bulkSpans{next: op.CursorID, max: op.MaxID, running: map[int64]struct{}{}}
	// batch runs one batch over (from, to]; the progress update comes last
	// so the operation row is locked only while the batch commits
	batch := func(ctx context.Context, from, to int64) (time.Duration, error) {
		start := time.Now()
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			now := s.now()
			args := append([]any{now}, b.args[1:]...)
			args = append(args, from, to)
			tag, err := tx.Exec(ctx, batchSQL, args...)
			if err != nil {
				return err
			}
			ms := float64(time.Since(start).Microseconds()) / 1000
			tag2, err := tx.Exec(ctx, `UPDATE registry_bulk_operation SET lease_owner = $2, lease_until = $3,
				cursor_id = greatest(cursor_id, $5), changed = changed + $6, batches = batches + 1,
				longest_batch_ms = greatest(longest_batch_ms, $7), updated_at = $4
				WHERE id = $1 AND `+leaseOK, id, owner, now.Add(o.Lease), now, spans.lowWater(from), tag.RowsAffected(), ms)
			if err == nil && tag2.RowsAffected() == 0 {
				err = errLeaseLost
			}
			return err
		})
		if err == nil {
			spans.done(from)
		}
		return time.Since(start), err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var longest time.Duration // whole batch transactions, commit included
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			span := int64(o.FirstBatch)
			for wctx.Err() == nil {
				from, to, ok := spans.take(span)
				if !ok {
					return
				}
				// a batch under way finishes when ctx ends (it is short),
				// so a stop leaves no committed span above the cursor
				bctx, cancel := context.WithTimeout(context.WithoutCancel(wctx), bulkBatchTimeout)
				took, err := batch(bctx, from, to)
				cancel()
				mu.Lock()
				longest = max(longest, took)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil {
					stop()
					return
				}
				// aim the next batch at TargetBatch: scale the span by the
				// measured rate, at most doubling, within the span bounds
				if took > 0 && to-from == span {
					aimed := int64(float64(span) * float64(o.TargetBatch) / float64(took))
					span = max(minBulkSpan, min(aimed, 2*span, maxBulkSpan))
				}
			}
		}()
	}
	wg.Wait()
	switch {
	case ctx.Err() != nil && firstErr == nil:
		return s.stopBulk(id, owner, spans.lowWater(-1), op)
	case ctx.Err() != nil:
		return s.bulkAsStood(id, op)
	case errors.Is(firstErr, errLeaseLost):
		return s.BulkOperation(ctx, id)
	case firstErr != nil:
		return op, fmt.Errorf("registry: bulk %d: %w", id, firstErr)
	}
	now = s.now()
	// the longest batch as measured here includes its commit
	done, err := s.updateBulk(ctx, `UPDATE registry_bulk_operation SET cursor_id = max_id, state = 'done',
		longest_batch_ms = greatest(longest_batch_ms, $3), finished_at = $4, lease_owner = NULL,
		lease_until = NULL, updated_at = $4
		WHERE id = $1 AND `+leaseOK+` RETURNING `+bulkColumns, id, owner,
		float64(longest.Microseconds())/1000, now)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.BulkOperation(ctx, id)
	}
	if err != nil {
		if ctx.Err() != nil {
			return s.bulkAsStood(id, op)
		}
		return op, fmt.Errorf("registry: bulk %d: %w", id, err)
	}
	op = done
	s.logger.Info("registry: bulk operation finished", "id", op.ID, "action", op.Action, "actor", op.Actor,
		"state", op.State, "planned", op.Planned, "changed", op.Changed, "batches", op.Batches,
		"longest_batch_ms", op.LongestBatchMS, "workers", o.Workers)
	return op, nil
}

// bulkBatchTimeout bounds one bulk batch that goes on after its runner's
// ctx ended (a batch aims at TargetBatch; this only guards a hung one).
const bulkBatchTimeout = 30 * time.Second

// stopBulk records cursor (every span below it committed) on operation id
// and releases owner's lease, so the next runner resumes right there, and
// returns the operation as it stands.
func (s *Store) stopBulk(id int64, owner string, cursor int64, op BulkOperation) (BulkOperation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopped, err := s.updateBulk(ctx, `UPDATE registry_bulk_operation SET cursor_id = greatest(cursor_id, $3),
		lease_owner = NULL, lease_until = NULL, updated_at = $4
		WHERE id = $1 AND state = 'running' AND lease_owner = $2 RETURNING `+bulkColumns, id, owner, cursor, s.now())
	if err != nil {
		return s.bulkAsStood(id, op)
	}
	return stopped, nil
}

// randomSuffix makes a lease owner unique to one runner.
func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// bulkAsStood returns the operation as its last committed batch left it
// (RunBulk's ctx ended), or op when it can not be read.
func (s *Store) bulkAsStood(id int64, op BulkOperation) (BulkOperation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cur, err := s.BulkOperation(ctx, id); err == nil {
		return cur, nil
	}
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
