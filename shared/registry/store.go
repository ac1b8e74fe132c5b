package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a Store. Zero values pick the defaults.
type Options struct {
	// Clock supplies every timestamp the store writes; nil = time.Now.
	Clock func() time.Time
	// Retry computes retry_at after a failure; nil = GeoBackoff{}.
	Retry RetryPolicy
	// VerificationRetry computes the retry time of failed verifications
	// (secondary and primary) from their count of consecutive failures;
	// nil = GeoBackoff capped at DefaultVerificationBackoffCap.
	VerificationRetry RetryPolicy
	// KeyPrefixes is selective sync (GEOBLOB_KEY_PREFIXES): every claim and
	// every backfill query on rows is limited to keys starting with one of
	// them; empty means all keys.
	KeyPrefixes []string
	// Logger receives debug messages about lost compare-and-sets and
	// recoveries; nil discards them.
	Logger *slog.Logger
}

// DefaultVerificationBackoffCap caps the default verification retry policy.
const DefaultVerificationBackoffCap = 24 * time.Hour

// Store is the PostgreSQL registry. It is safe for concurrent use; the
// schema must have been created with Migrate.
type Store struct {
	pool        *pgxpool.Pool
	clock       func() time.Time
	retry       RetryPolicy
	verifyRetry RetryPolicy
	prefixes    []string // nil = all keys (SQL NULL)
	logger      *slog.Logger
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool, opts Options) *Store {
	s := &Store{pool: pool, clock: opts.Clock, retry: opts.Retry, verifyRetry: opts.VerificationRetry, logger: opts.Logger}
	s = s.WithKeyPrefixes(opts.KeyPrefixes...)
	if s.verifyRetry == nil {
		s.verifyRetry = GeoBackoff{Cap: DefaultVerificationBackoffCap, MissingCap: DefaultVerificationBackoffCap}
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.retry == nil {
		s.retry = GeoBackoff{}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// WithKeyPrefixes returns a Store on the same database limited to keys
// starting with one of prefixes (selective sync); none means all keys.
func (s *Store) WithKeyPrefixes(prefixes ...string) *Store {
	out := *s
	out.prefixes = slices.DeleteFunc(slices.Clone(prefixes), func(p string) bool { return p == "" })
	if len(out.prefixes) == 0 {
		out.prefixes = nil // SQL NULL: all keys
	}
	return &out
}

// now is the clock's time at PostgreSQL's precision, so values written
// and read back compare equal.
func (s *Store) now() time.Time { return s.clock().Truncate(time.Microsecond) }

// RecordCreated registers an ObjectCreated event: the row (inserted if
// absent) describes the event's object, is pending sync, and its generation
// is bumped so a copy in flight can not mark it synced. A stale event (its
// normalized sequencer is not newer than the stored one) changes nothing and
// returns false. A late create never resurrects a row tombstoned by a newer
// delete.
func (s *Store) RecordCreated(ctx context.Context, ev ObjectEvent) (Applied, error) {
	if err := checkEvent(ev); err != nil {
		return false, err
	}
	return s.applied(s.pool.QueryRow(ctx, qRecordCreated, createdArgs(ev, s.now())...), "record created", ev)
}

// RecordRemoved registers an ObjectRemoved event: the row becomes a
// tombstone pending sync (the delete must reach the secondary). Without a
// row, a tombstone row is inserted so that a late create with an older
// sequencer is recognised as stale. Stale events change nothing and return
// false.
func (s *Store) RecordRemoved(ctx context.Context, ev ObjectEvent) (Applied, error) {
	if err := checkEvent(ev); err != nil {
		return false, err
	}
	return s.applied(s.pool.QueryRow(ctx, qRecordRemoved, removedArgs(ev, s.now())...), "record removed", ev)
}

// Register inserts a pending row for an object found on the primary (e.g.
// by backfill) unless a row for the key already exists, in which case it
// changes nothing and returns false.
func (s *Store) Register(ctx context.Context, ev ObjectEvent) (Applied, error) {
	if err := checkEvent(ev); err != nil {
		return false, err
	}
	now := s.now()
	return s.applied(s.pool.QueryRow(ctx, qRegister, ev.DataType, ev.Key, ev.Size, ev.ETag, ev.VersionID, now), "register", ev)
}

// EventKind says which Record method a batched event goes through.
type EventKind int

// Event kinds for RecordBatch.
const (
	EventCreated EventKind = iota
	EventRemoved
)

// BatchEvent is one event of a RecordBatch.
type BatchEvent struct {
	Kind EventKind
	ObjectEvent
}

// RecordBatch applies events like RecordCreated/RecordRemoved in one round
// trip and one transaction; result i says whether event i was applied. Events
// of one key apply in the given order; rows are locked in key order, so
// concurrent batches do not deadlock. On error nothing is applied. A batch
// of one kind with distinct keys runs as a single statement (fastest).
func (s *Store) RecordBatch(ctx context.Context, events []BatchEvent) ([]Applied, error) {
	if len(events) == 0 {
		return nil, nil
	}
	seen := make(map[string]struct{}, len(events))
	uniform := true
	for _, ev := range events {
		if err := checkEvent(ev.ObjectEvent); err != nil {
			return nil, err
		}
		if ev.Kind != EventCreated && ev.Kind != EventRemoved {
			return nil, fmt.Errorf("registry: record batch: unknown event kind %d", ev.Kind)
		}
		k := batchKey(ev.DataType, ev.Key)
		if _, dup := seen[k]; dup || ev.Kind != events[0].Kind {
			uniform = false
		}
		seen[k] = struct{}{}
	}
	if uniform {
		return s.recordMany(ctx, events)
	}
	return s.recordEach(ctx, events)
}

func batchKey(dataType, key string) string { return dataType + "\x00" + key }

// recordMany applies events of one kind with distinct keys in one statement.
func (s *Store) recordMany(ctx context.Context, events []BatchEvent) ([]Applied, error) {
	n := len(events)
	types, keys, seqs := make([]string, n), make([]string, n), make([]string, n)
	for i, ev := range events {
		types[i], keys[i], seqs[i] = ev.DataType, ev.Key, NormalizeSequencer(ev.Sequencer)
	}
	var rows pgx.Rows
	var err error
	if events[0].Kind == EventCreated {
		sizes, etags, versions := make([]int64, n), make([]string, n), make([]string, n)
		for i, ev := range events {
			sizes[i], etags[i], versions[i] = ev.Size, ev.ETag, ev.VersionID
		}
		rows, err = s.pool.Query(ctx, qRecordCreatedMany, types, keys, sizes, etags, versions, seqs, s.now())
	} else {
		rows, err = s.pool.Query(ctx, qRecordRemovedMany, types, keys, seqs, s.now())
	}
	if err != nil {
		return nil, fmt.Errorf("registry: record batch: %w", err)
	}
	applied := make(map[string]struct{}, n)
	var dataType, key string
	_, err = pgx.ForEachRow(rows, []any{&dataType, &key}, func() error {
		applied[batchKey(dataType, key)] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: record batch: %w", err)
	}
	out := make([]Applied, n)
	for i, ev := range events {
		_, ok := applied[batchKey(ev.DataType, ev.Key)]
		out[i] = Applied(ok)
	}
	return out, nil
}

// recordEach applies events one statement each, pipelined in one
// transaction, in key order (stable, so one key's events keep their order).
func (s *Store) recordEach(ctx context.Context, events []BatchEvent) ([]Applied, error) {
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ea, eb := events[order[a]], events[order[b]]
		if ea.DataType != eb.DataType {
			return ea.DataType < eb.DataType
		}
		return ea.Key < eb.Key
	})
	now := s.now()
	b := &pgx.Batch{}
	for _, i := range order {
		ev := events[i]
		if ev.Kind == EventCreated {
			b.Queue(qRecordCreated, createdArgs(ev.ObjectEvent, now)...)
		} else {
			b.Queue(qRecordRemoved, removedArgs(ev.ObjectEvent, now)...)
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: record batch: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	br := tx.SendBatch(ctx, b)
	out := make([]Applied, len(events))
	for _, i := range order {
		if out[i], err = s.applied(br.QueryRow(), "record batch", events[i].ObjectEvent); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("registry: record batch: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("registry: record batch: commit: %w", err)
	}
	return out, nil
}

// RecordCreatedBatch is RecordBatch for ObjectCreated events only.
func (s *Store) RecordCreatedBatch(ctx context.Context, events []ObjectEvent) ([]Applied, error) {
	batch := make([]BatchEvent, len(events))
	for i, ev := range events {
		batch[i] = BatchEvent{Kind: EventCreated, ObjectEvent: ev}
	}
	return s.RecordBatch(ctx, batch)
}

func createdArgs(ev ObjectEvent, now time.Time) []any {
	return []any{ev.DataType, ev.Key, ev.Size, ev.ETag, ev.VersionID, NormalizeSequencer(ev.Sequencer), now}
}

func removedArgs(ev ObjectEvent, now time.Time) []any {
	return []any{ev.DataType, ev.Key, NormalizeSequencer(ev.Sequencer), now}
}

func checkEvent(ev ObjectEvent) error {
	if ev.DataType == "" || ev.Key == "" {
		return fmt.Errorf("registry: event needs a data type and a key (got %q, %q)", ev.DataType, ev.Key)
	}
	if ev.Size < 0 {
		return fmt.Errorf("registry: event for %s/%s: negative size %d", ev.DataType, ev.Key, ev.Size)
	}
	return nil
}

// applied turns an "INSERT ... RETURNING id" result into Applied: no row
// means the statement's WHERE (stale event, existing row) rejected it.
func (s *Store) applied(row pgx.Row, op string, ev ObjectEvent) (Applied, error) {
	var id int64
	switch err := row.Scan(&id); {
	case errors.Is(err, pgx.ErrNoRows):
		s.logger.Debug("registry: event not applied", "op", op, "data_type", ev.DataType, "key", ev.Key, "sequencer", ev.Sequencer)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("registry: %s %s/%s: %w", op, ev.DataType, ev.Key, err)
	}
	return true, nil
}

// ClaimKey claims the row of one key for syncing if it is pending or failed
// (retry_at is ignored: an event is a fresh reason to try). It returns false
// when the row is absent, locked by another claimer, started or synced.
func (s *Store) ClaimKey(ctx context.Context, dataType, key string) (Claim, bool, error) {
	return s.claimOne(ctx, syncMachine, "claim "+dataType+"/"+key, qClaimKey, dataType, key, s.now())
}

// claimOne runs a claim statement of m that claims at most one row.
func (s *Store) claimOne(ctx context.Context, m *machine, what, sql string, args ...any) (Claim, bool, error) {
	claims, err := s.claim(ctx, m, what, sql, args...)
	if err != nil || len(claims) == 0 {
		return Claim{}, false, err
	}
	return claims[0], true, nil
}

// AcceptClaim takes over the claim of a row that another process claimed
// and handed over (a dispatched sync request): it succeeds only while the
// row is still started with generation, and bumps the generation, so of
// several deliveries of one request exactly one gets the claim. ok is false
// (and nothing changes) when the row is absent or has moved on: finished,
// recovered, changed by an event, or taken by a duplicate request.
func (s *Store) AcceptClaim(ctx context.Context, dataType, key string, generation int64) (Claim, bool, error) {
	return s.claimOne(ctx, syncMachine, "accept claim "+dataType+"/"+key, qAcceptClaim, dataType, key, generation, s.now())
}

// CountStarted returns how many rows are in state started: the claims in
// flight across every worker (events, dispatched requests, in-process
// backfill). A dispatcher keeps it under its window.
func (s *Store) CountStarted(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, qCountStarted).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry: count started: %w", err)
	}
	return n, nil
}

// ClaimOptions select rows for ClaimDue.
type ClaimOptions struct {
	// Limit is the most rows claimed; <= 0 means 100.
	Limit int
	// DataTypes restricts the claim to these types; empty means all.
	DataTypes []string
}

// DefaultClaimLimit is the ClaimDue limit when none is given.
const DefaultClaimLimit = 100

// ClaimDue claims up to Limit rows in one statement: pending rows first,
// then failed rows whose retry_at has passed, round-robin across data types
// so no type starves another, only keys under the Store's KeyPrefixes. Rows
// locked by concurrent claimers are skipped, so concurrent callers never get
// the same row. The order of the result is unspecified.
func (s *Store) ClaimDue(ctx context.Context, opts ClaimOptions) ([]Claim, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultClaimLimit
	}
	var types []string // nil = all
	if len(opts.DataTypes) > 0 {
		types = opts.DataTypes
	}
	return s.claim(ctx, syncMachine, "claim due", qClaimDue, limit, types, s.now(), s.prefixes)
}

// MarkSynced finishes a claim successfully: the row becomes synced with the
// copy's metadata, and verification pending when a SHA-256 is known (else
// disabled). For a tombstone it records that the delete was propagated. It
// returns false, and changes nothing, when the row is no longer in the
// claimed state and generation (an event or another claim came in): the row
// must then be synced again.
func (s *Store) MarkSynced(ctx context.Context, c Claim, res SyncResult) (bool, error) {
	return s.finish(ctx, syncMachine, c, "mark synced", qMarkSynced, s.now(),
		[]any{res.Size, strings.ToLower(res.SHA256), res.ETag, res.VersionID})
}

// MarkFailed finishes a claim unsuccessfully: retry_count+1, retry_at after
// the RetryPolicy's backoff, the failure cut to MaxFailureLen characters
// (never rejected for length). Same compare-and-set as MarkSynced.
func (s *Store) MarkFailed(ctx context.Context, c Claim, failure string, missingOnPrimary bool) (bool, error) {
	now := s.now()
	attempt := c.RetryCount + 1
	return s.finish(ctx, syncMachine, c, "mark failed", qMarkFailed, now,
		[]any{attempt, s.retryAt(s.retry, now, attempt, missingOnPrimary), TruncateFailure(failure), missingOnPrimary})
}

// RecoverStuck moves rows that have been started for longer than olderThan
// to failed (due now, retry_count+1, generation bumped so the stuck worker
// can not finish them) and returns how many it moved.
func (s *Store) RecoverStuck(ctx context.Context, olderThan time.Duration) (int64, error) {
	return s.recoverStuck(ctx, syncMachine, qRecoverStuck, olderThan)
}

// Resync puts a row back to pending (retries reset, generation bumped, so
// a copy in flight can not mark it synced). A pending row is left as it is.
// It returns ErrNotFound when there is no row for the key.
func (s *Store) Resync(ctx context.Context, dataType, key string) error {
	var id int64
	err := s.pool.QueryRow(ctx, qResync, dataType, key, s.now()).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("registry: resync %s/%s: %w", dataType, key, ErrNotFound)
	case err != nil:
		return fmt.Errorf("registry: resync %s/%s: %w", dataType, key, err)
	}
	return nil
}

// Get returns the row of a key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, dataType, key string) (Row, error) {
	return s.getOne(ctx, qGet, fmt.Sprintf("%s/%s", dataType, key), dataType, key)
}

// GetByID returns the row with id, or ErrNotFound.
func (s *Store) GetByID(ctx context.Context, id int64) (Row, error) {
	return s.getOne(ctx, qGetByID, fmt.Sprintf("id %d", id), id)
}

func (s *Store) getOne(ctx context.Context, sql, what string, args ...any) (Row, error) {
	row, err := collectOne(ctx, s.pool, "get "+what, ScanRow, sql, args...)
	if err != nil {
		return Row{}, err
	}
	return row, nil
}

// ListOptions page through the registry in id order.
type ListOptions struct {
	DataType          string // "" = all types
	AfterID           int64  // return rows with id > AfterID
	Limit             int    // <= 0 means 1000
	IncludeTombstones bool
}

// List returns up to Limit rows with id > AfterID in id order; pass the last
// id as the next AfterID to page.
func (s *Store) List(ctx context.Context, opts ListOptions) ([]Row, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	return collect(ctx, s.pool, "list", ScanRow, qList, opts.DataType, opts.AfterID, limit, opts.IncludeTombstones)
}

// Stats returns one entry per data type present, ordered by type.
func (s *Store) Stats(ctx context.Context) ([]TypeStats, error) {
	return collect(ctx, s.pool, "stats", func(r pgx.CollectableRow) (TypeStats, error) {
		var t TypeStats
		err := r.Scan(&t.DataType, &t.Files, &t.Pending, &t.Started, &t.Synced, &t.Failed,
			&t.Tombstones, &t.TombstonesPending, &t.Bytes, &t.Verified, &t.VerificationFailed,
			&t.ChecksumMismatch, &t.Missing)
		return t, err
	}, qStats)
}

// ScanRow reads one row selected with RowColumns; use it with
// pgx.CollectRows.
func ScanRow(r pgx.CollectableRow) (Row, error) {
	var x Row
	err := r.Scan(rowDest(&x)...)
	return x, err
}

// rowDest lists the scan destinations of RowColumns in x.
func rowDest(x *Row) []any {
	return []any{&x.ID, &x.DataType, &x.ObjectKey,
		&x.State, &x.Generation, &x.RetryCount, &x.RetryAt, &x.LastSyncFailure,
		&x.LastSyncedAt, &x.StartedAt, &x.Size, &x.ETag, &x.VersionID, &x.PrimarySHA256,
		&x.LastSequencer, &x.MissingOnPrimary, &x.DeletedAt,
		&x.VerificationState, &x.VerificationStartedAt, &x.VerifiedAt, &x.VerificationRetryCount,
		&x.VerificationRetryAt, &x.VerificationFailure, &x.SecondarySHA256,
		&x.ChecksumMismatch,
		&x.Primary.State, &x.Primary.StartedAt, &x.Primary.VerifiedAt,
		&x.Primary.RetryCount, &x.Primary.RetryAt,
		&x.Primary.Failure, &x.Primary.ChecksumMismatch,
		&x.Primary.MismatchSHA256, &x.Primary.Generation,
		&x.CreatedAt, &x.UpdatedAt}
}
