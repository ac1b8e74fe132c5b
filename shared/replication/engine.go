// Package replication is the engine shared by geoblob's functions: it turns
// object events into registry transitions and drives every registry row to
// the state the primary bucket asks for: a live row gets a byte-identical,
// checksummed copy on the secondary; a tombstoned row gets the secondary copy
// deleted. Events only update the registry; the engine then syncs whatever
// the row now says, so duplicated or reordered events are harmless.
package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/metrics"
	"github.com/geoblob/geoblob/shared/registry"
)

// Source is the primary bucket as the engine reads it; *blobstore.Store
// satisfies it.
type Source interface {
	blobstore.Source
	// Head returns the object's attributes, or an error wrapping
	// blobstore.ErrNotFound when it does not exist (blobstore.ErrNoSuchBucket
	// when the bucket does not: never a missing object).
	Head(ctx context.Context, key string) (blobstore.Object, error)
	// HeadBucket checks that the bucket exists; a missing bucket gives an
	// error wrapping blobstore.ErrNoSuchBucket.
	HeadBucket(ctx context.Context) error
}

// Target is the secondary bucket as the engine writes it; *blobstore.Store
// satisfies it.
type Target interface {
	blobstore.Sink
	// Delete removes the object; deleting a missing object succeeds.
	Delete(ctx context.Context, key string) error
}

var (
	_ Source = (*blobstore.Store)(nil)
	_ Target = (*blobstore.Store)(nil)
)

// Outcome is what Apply or SyncClaim did with one event or claim.
type Outcome int

// Outcomes. Only OutcomeFailed and OutcomeContended come with an error.
const (
	// OutcomeIgnored: the key belongs to no enabled data type.
	OutcomeIgnored Outcome = iota
	// OutcomeStale: the event is a duplicate or older than what the
	// registry knows and the row needs no work; nothing changed.
	OutcomeStale
	// OutcomeSynced: the object was copied and its row marked synced.
	OutcomeSynced
	// OutcomeDeleted: the secondary copy was deleted and the tombstone marked synced.
	OutcomeDeleted
	// OutcomeInProgress: another worker holds the row's claim; its
	// compare-and-set sees this event's change and copies again.
	OutcomeInProgress
	// OutcomeMissingOnPrimary: the object was gone from the primary; the
	// row is failed with missing_on_primary and a long backoff. Not an error.
	OutcomeMissingOnPrimary
	// OutcomeKept: a removal was not propagated because the primary holds
	// the object again; the row is failed (retried later) and the secondary
	// copy kept. Not an error.
	OutcomeKept
	// OutcomeHeld: the delete brake is tripped (or tripped now); the
	// tombstone is held and the secondary copy kept until an operator
	// releases or discards it. Not an error.
	OutcomeHeld
	// OutcomeDeferred: the tombstone is younger than the grace period; the
	// delete is retried when it ends. Not an error.
	OutcomeDeferred
	// OutcomeFailed: the copy or delete failed; the row is failed with a
	// retry time and the error is returned so the event is redelivered.
	OutcomeFailed
	// OutcomeContended: the row kept changing under every copy for
	// MaxRounds rounds; the row is left for a later attempt and an error
	// wrapping ErrContended is returned.
	OutcomeContended
)

var outcomeNames = [...]string{"ignored", "stale", "synced", "deleted", "in_progress", "missing_on_primary", "kept", "held", "deferred", "failed", "contended"}

// String returns the outcome's snake_case name.
func (o Outcome) String() string {
	if int(o) >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Sentinel errors; callers test with errors.Is.
var (
	// ErrContended: the row changed during every one of MaxRounds copies.
	// Retryable.
	ErrContended = errors.New("replication: row kept changing during sync")
	// ErrRegistry wraps every registry failure (database down, ...). Retryable.
	ErrRegistry = errors.New("replication: registry")
	// ErrCopy wraps every failure to copy to or delete from the secondary.
	ErrCopy = errors.New("replication: copy")
	// ErrInvalidEvent: the event has no kind, bucket key or data type the
	// engine can act on. Permanent.
	ErrInvalidEvent = errors.New("replication: invalid event")
)

// Defaults applied by New.
const (
	DefaultConcurrency = 10
	DefaultMaxRounds   = 5
)

// Options configure an Engine.
type Options struct {
	Registry  Registry
	Primary   Source
	Secondary Target
	Catalog   *datatype.Catalog
	// Concurrency caps the copies and deletes in flight at once across
	// everything using this Engine (events and backfill). Default 10.
	Concurrency int
	// MaxRounds bounds how often one Apply or SyncClaim copies again after
	// losing the compare-and-set to a concurrent event. Default 5.
	MaxRounds int
	// Brake is the budget deletes reach the secondary through (see
	// registry.BrakePolicy); the zero value applies no threshold.
	Brake registry.BrakePolicy
	// SentinelKey, when set, names an object that must exist on the primary
	// before any delete is propagated; its absence trips the brake.
	SentinelKey string
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Copies, when set, is told about every copy marked synced (latency
	// and bytes metrics).
	Copies CopyObserver
}

// CopyObserver is told about finished copies; prom.Copies (Prometheus) and
// metrics.EMFCopies (CloudWatch) satisfy it.
type CopyObserver interface {
	// Copied is called once per copy marked synced; it must not block.
	Copied(metrics.Copy)
}

// Engine replicates objects. It is safe for concurrent use; it holds no
// state besides its dependencies and the copy semaphore.
type Engine struct {
	reg       Registry
	primary   Source
	secondary Target
	catalog   *datatype.Catalog
	sem       chan struct{}
	maxRounds int
	brake     registry.BrakePolicy
	sentinel  string
	log       *slog.Logger
	copies    CopyObserver

	inFlight, peak, transfers atomic.Int64
}

// New checks the options and returns an Engine.
func New(opts Options) (*Engine, error) {
	var missing []string
	if opts.Registry == nil {
		missing = append(missing, "Registry")
	}
	if opts.Primary == nil {
		missing = append(missing, "Primary")
	}
	if opts.Secondary == nil {
		missing = append(missing, "Secondary")
	}
	if opts.Catalog == nil {
		missing = append(missing, "Catalog")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("replication: options missing %s", strings.Join(missing, ", "))
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxRounds <= 0 {
		opts.MaxRounds = DefaultMaxRounds
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Engine{
		reg:       opts.Registry,
		primary:   opts.Primary,
		secondary: opts.Secondary,
		catalog:   opts.Catalog,
		sem:       make(chan struct{}, opts.Concurrency),
		maxRounds: opts.MaxRounds,
		brake:     opts.Brake,
		sentinel:  opts.SentinelKey,
		log:       opts.Logger,
		copies:    opts.Copies,
	}, nil
}

// Concurrency returns the cap on copies in flight; callers that fan out
// work over the Engine use it as their own limit.
func (e *Engine) Concurrency() int { return cap(e.sem) }

// Catalog returns the engine's data-type catalog.
func (e *Engine) Catalog() *datatype.Catalog { return e.catalog }

// IsRetryable reports whether an error returned by Apply or SyncClaim may
// succeed when the same event is delivered again: registry failures,
// contention and transient copy failures are; invalid events are not.
func IsRetryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrInvalidEvent), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrRegistry), errors.Is(err, ErrContended):
		return true
	case errors.Is(err, ErrCopy):
		var be *blobstore.Error
		if errors.As(err, &be) {
			return blobstore.IsRetryable(err)
		}
		return true
	}
	return true
}

// Apply records one object event in the registry and then brings the row to
// the state the registry now holds: a live pending or failed row is copied,
// a tombstone deleted from the secondary. A duplicate or older event changes
// nothing (OutcomeStale) unless its row still needs work, in which case that
// work is retried (a redelivered event retries a failed row).
//
// Apply returns an error only when redelivering the event can help: the
// registry failed, the copy failed (the row is then failed with a retry
// time), or the row kept changing. A key that matches no data type is
// OutcomeIgnored; a vanished source object is OutcomeMissingOnPrimary.
func (e *Engine) Apply(ctx context.Context, ev events.ObjectEvent) (Outcome, error) {
	t, ok := e.catalog.Match(ev.Key)
	if !ok {
		e.log.DebugContext(ctx, "key matches no data type", "key", ev.Key, "event", ev.EventName)
		return OutcomeIgnored, nil
	}
	log := e.log.With("data_type", t.Name, "key", ev.Key, "event", ev.EventName, "sequencer", ev.Sequencer)
	rev := registry.ObjectEvent{
		DataType:  t.Name,
		Key:       ev.Key,
		Size:      ev.Size,
		ETag:      normalizeETag(ev.ETag),
		VersionID: ev.VersionID,
		Sequencer: ev.Sequencer,
		EventTime: ev.EventTime,
	}
	var (
		applied registry.Applied
		err     error
	)
	switch ev.Kind {
	case events.KindCreated:
		applied, err = e.reg.RecordCreated(ctx, rev)
	case events.KindRemoved:
		applied, err = e.reg.RecordRemoved(ctx, rev)
	default:
		return OutcomeFailed, fmt.Errorf("%w: kind %s of %s", ErrInvalidEvent, ev.Kind, ev.EventName)
	}
	if err != nil {
		return OutcomeFailed, fmt.Errorf("%w: record %s %s: %w", ErrRegistry, ev.Kind, ev.Key, err)
	}
	// Whether or not the event changed the row, a row that waits for a
	// sync (pending, or failed: a redelivered event retries it) is claimed
	// and synced now, driven by what the row says, not by the event.
	claim, ok, err := e.reg.ClaimKey(ctx, t.Name, ev.Key)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("%w: claim %s: %w", ErrRegistry, ev.Key, err)
	}
	if !ok {
		if !applied {
			log.InfoContext(ctx, "event is a duplicate or older than the registry state; nothing to do")
			return OutcomeStale, nil
		}
		// Claimed by another worker between our write and our claim; its
		// compare-and-set sees our change and syncs again.
		log.DebugContext(ctx, "row claimed by another worker")
		return OutcomeInProgress, nil
	}
	if !applied {
		log.InfoContext(ctx, "stale event; retrying the row's unfinished sync", "retry_count", claim.RetryCount, "tombstoned", claim.Tombstoned())
	}
	return e.SyncClaim(ctx, claim)
}

// needsWork reports whether a row is waiting for a sync.
func needsWork(r registry.Row) bool {
	return r.State == registry.StatePending || r.State == registry.StateFailed
}

// SyncClaim performs the work a claimed row asks for (copy for a live row,
// delete for a tombstone) and finishes the claim. When the compare-and-set
// is lost because an event arrived during the work, it re-reads the row and
// claims it again, at most MaxRounds times in all. Backfill calls it with
// claims it took itself. Errors and outcomes are those of Apply.
func (e *Engine) SyncClaim(ctx context.Context, claim registry.Claim) (Outcome, error) {
	log := e.log.With("data_type", claim.DataType, "key", claim.ObjectKey)
	for round := 1; ; round++ {
		outcome, finished, err := e.syncOnce(ctx, claim, log)
		if err != nil || finished {
			return outcome, err
		}
		// Lost the compare-and-set: the row changed while we worked.
		row, err := e.reg.Get(ctx, claim.DataType, claim.ObjectKey)
		if err != nil {
			return OutcomeFailed, fmt.Errorf("%w: re-read %s: %w", ErrRegistry, claim.ObjectKey, err)
		}
		if !needsWork(row) {
			log.InfoContext(ctx, "row finished by another worker", "state", row.State.String(), "round", round)
			if row.State == registry.StateStarted {
				return OutcomeInProgress, nil
			}
			return OutcomeStale, nil
		}
		if round >= e.maxRounds {
			log.WarnContext(ctx, "row kept changing; leaving it for a later attempt", "rounds", round)
			return OutcomeContended, fmt.Errorf("%w: %s after %d rounds", ErrContended, claim.ObjectKey, round)
		}
		c, ok, err := e.reg.ClaimKey(ctx, claim.DataType, claim.ObjectKey)
		if err != nil {
			return OutcomeFailed, fmt.Errorf("%w: claim %s: %w", ErrRegistry, claim.ObjectKey, err)
		}
		if !ok {
			return OutcomeInProgress, nil
		}
		log.InfoContext(ctx, "row changed during sync; syncing again", "round", round+1, "tombstoned", c.Tombstoned())
		claim = c
	}
}

// syncOnce does one round of work for claim. finished is false when the
// compare-and-set was lost and the caller must look at the row again.
func (e *Engine) syncOnce(ctx context.Context, claim registry.Claim, log *slog.Logger) (Outcome, bool, error) {
	if claim.Tombstoned() {
		return e.propagateDelete(ctx, claim, log)
	}
	return e.copy(ctx, claim, log)
}

func (e *Engine) acquire(ctx context.Context) (func(), error) {
	select {
	case e.sem <- struct{}{}:
		n := e.inFlight.Add(1)
		for p := e.peak.Load(); n > p && !e.peak.CompareAndSwap(p, n); p = e.peak.Load() {
		}
		e.transfers.Add(1)
		return func() {
			e.inFlight.Add(-1)
			<-e.sem
		}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Stats are an engine's own counters of the copies and deletes it ran.
type Stats struct {
	InFlight  int64 // copies and deletes running now
	Peak      int64 // most ever running at once (never above Concurrency)
	Transfers int64 // copies and deletes started in all
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{InFlight: e.inFlight.Load(), Peak: e.peak.Load(), Transfers: e.transfers.Load()}
}

// Perform does the work of a sync request a dispatcher sent (see
// events.SyncRequest). It claims the row with a compare-and-set on its
// state, ending the request's dispatch lease in the same statement
// (registry.Store.ClaimRequested), and syncs it exactly like SyncClaim:
// whatever generation the request carried, the claim is of the row as it
// is now, so a request for a row that changed since does the row's current
// work. A request of a dispatcher that claimed the row itself (an older
// release; such requests may still be queued) is taken over with a
// compare-and-set on its generation. Otherwise a row another worker holds
// is OutcomeInProgress (a duplicate request copies nothing), and a
// finished, not yet due or absent row is OutcomeStale.
func (e *Engine) Perform(ctx context.Context, req events.SyncRequest) (Outcome, error) {
	claim, ok, err := e.reg.ClaimRequested(ctx, req.DataType, req.Key)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("%w: claim requested %s: %w", ErrRegistry, req.Key, err)
	}
	if ok {
		if claim.Generation > req.Generation+1 {
			e.log.InfoContext(ctx, "sync request for a row that changed since dispatch; doing its current work",
				"data_type", req.DataType, "key", req.Key, "requested_generation", req.Generation, "generation", claim.Generation)
		}
		return e.SyncClaim(ctx, claim)
	}
	claim, ok, err = e.reg.AcceptClaim(ctx, req.DataType, req.Key, req.Generation)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("%w: accept claim %s: %w", ErrRegistry, req.Key, err)
	}
	if ok {
		return e.SyncClaim(ctx, claim)
	}
	row, err := e.reg.Get(ctx, req.DataType, req.Key)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return OutcomeStale, nil
	case err != nil:
		return OutcomeFailed, fmt.Errorf("%w: read %s: %w", ErrRegistry, req.Key, err)
	case row.State == registry.StateStarted, needsWork(row) && row.State != registry.StateFailed:
		// Held by another worker (or being claimed by one right now).
		return OutcomeInProgress, nil
	}
	return OutcomeStale, nil
}

func (e *Engine) copy(ctx context.Context, claim registry.Claim, log *slog.Logger) (Outcome, bool, error) {
	release, err := e.acquire(ctx)
	if err != nil {
		return e.fail(ctx, claim, log, fmt.Errorf("%w: waiting for a copy slot: %w", ErrCopy, err), false)
	}
	res, err := blobstore.Copy(ctx, e.primary, e.secondary, claim.ObjectKey)
	release()
	if err != nil {
		if sourceMissing(err) {
			return e.fail(ctx, claim, log, err, true)
		}
		return e.fail(ctx, claim, log, fmt.Errorf("%w: %w", ErrCopy, err), false)
	}
	won, err := finish(ctx, func(ctx context.Context) (bool, error) {
		return e.reg.MarkSynced(ctx, claim, registry.SyncResult{
			Size:      res.Size,
			SHA256:    res.SHA256,
			ETag:      normalizeETag(res.Source.ETag),
			VersionID: res.Source.VersionID,
		})
	})
	if err != nil {
		return OutcomeFailed, true, fmt.Errorf("%w: mark synced %s: %w", ErrRegistry, claim.ObjectKey, err)
	}
	if !won {
		return OutcomeFailed, false, nil
	}
	log.InfoContext(ctx, "replicated", "size", res.Size, "sha256", res.SHA256, "version_id", res.Source.VersionID)
	if e.copies != nil {
		var latency time.Duration
		if !res.Source.LastModified.IsZero() {
			latency = time.Since(res.Source.LastModified)
		}
		e.copies.Copied(metrics.Copy{DataType: claim.DataType, Bytes: res.Size, Latency: latency})
	}
	return OutcomeSynced, true, nil
}

// propagateDelete deletes the secondary copy of a tombstoned row, unless the
// primary holds the object again (see OutcomeKept).
func (e *Engine) propagateDelete(ctx context.Context, claim registry.Claim, log *slog.Logger) (Outcome, bool, error) {
	release, err := e.acquire(ctx)
	if err != nil {
		return e.fail(ctx, claim, log, fmt.Errorf("%w: waiting for a copy slot: %w", ErrCopy, err), false)
	}
	obj, headErr := e.primary.Head(ctx, claim.ObjectKey)
	switch {
	case headErr == nil:
		release()
		return e.resurrect(ctx, claim, obj, log)
	case errors.Is(headErr, blobstore.ErrNoSuchBucket):
		// The bucket is gone, not the object: the guard in admitDelete
		// trips the delete brake and holds the delete.
	case !errors.Is(headErr, blobstore.ErrNotFound):
		release()
		return e.fail(ctx, claim, log, fmt.Errorf("%w: head primary before delete: %w", ErrCopy, headErr), false)
	}
	if stop, outcome, finished, err := e.admitDelete(ctx, claim, log); stop {
		release()
		return outcome, finished, err
	}
	err = e.secondary.Delete(ctx, claim.ObjectKey)
	release()
	if err != nil {
		return e.fail(ctx, claim, log, fmt.Errorf("%w: %w", ErrCopy, err), false)
	}
	won, err := finish(ctx, func(ctx context.Context) (bool, error) {
		return e.reg.MarkSynced(ctx, claim, registry.SyncResult{})
	})
	if err != nil {
		return OutcomeFailed, true, fmt.Errorf("%w: mark deleted %s: %w", ErrRegistry, claim.ObjectKey, err)
	}
	if !won {
		return OutcomeFailed, false, nil
	}
	log.InfoContext(ctx, "deleted secondary copy")
	return OutcomeDeleted, true, nil
}

// admitDelete guards a delete about to reach the secondary: the primary
// bucket must exist and the sentinel object (if configured) be there, else
// the brake trips; then the registry's budget decides (admit, hold, defer).
// stop is true when the delete must not happen; the other results are then
// syncOnce's.
func (e *Engine) admitDelete(ctx context.Context, claim registry.Claim, log *slog.Logger) (bool, Outcome, bool, error) {
	if reason, err := e.guard(ctx); err != nil {
		o, f, err := e.fail(ctx, claim, log, fmt.Errorf("%w: guard before delete: %w", ErrCopy, err), false)
		return true, o, f, err
	} else if reason != "" {
		if err := e.reg.TripBrake(ctx, registry.ScopeAll, reason); err != nil {
			return true, OutcomeFailed, true, fmt.Errorf("%w: trip brake: %w", ErrRegistry, err)
		}
	}
	d, err := e.reg.AdmitDelete(ctx, claim, e.brake)
	if err != nil {
		return true, OutcomeFailed, true, fmt.Errorf("%w: %w", ErrRegistry, err)
	}
	switch d.Verdict {
	case registry.VerdictAdmit:
		return false, 0, false, nil
	case registry.VerdictHold:
		log.WarnContext(ctx, "delete held by the brake; secondary copy kept", "reason", d.Reason)
		return true, OutcomeHeld, true, nil
	case registry.VerdictDefer:
		log.InfoContext(ctx, "delete deferred by the grace period", "until", d.Until)
		return true, OutcomeDeferred, true, nil
	}
	return true, OutcomeFailed, false, nil // lost the claim: re-read
}

// guard checks the primary before a delete. It returns a reason to trip
// the brake when the primary bucket or the sentinel object is missing, and
// an error when the check itself failed (nothing is deleted then either).
func (e *Engine) guard(ctx context.Context) (string, error) {
	err := e.primary.HeadBucket(ctx)
	switch {
	case errors.Is(err, blobstore.ErrNoSuchBucket):
		return fmt.Sprintf("primary bucket missing (HeadBucket: %v); deletes are held instead of propagated", err), nil
	case err != nil:
		return "", err
	}
	if e.sentinel == "" {
		return "", nil
	}
	_, err = e.primary.Head(ctx, e.sentinel)
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		return fmt.Sprintf("sentinel object %q missing on the primary; deletes are held instead of propagated", e.sentinel), nil
	case err != nil:
		return "", err
	}
	return "", nil
}

// resurrect handles a tombstone whose object exists on the primary again:
// the removal event is older than the object there now (its create event is
// late or lost). The secondary copy is kept and the primary's current state
// is recorded as a created event derived from HEAD (empty sequencer: the
// registry keeps the stored one). If the registry accepts it, the row is live
// and pending again and the next round copies it; otherwise the claim is
// failed with a retry time and the copy kept.
func (e *Engine) resurrect(ctx context.Context, claim registry.Claim, obj blobstore.Object, log *slog.Logger) (Outcome, bool, error) {
	log.WarnContext(ctx, "primary holds the object again; not deleting the secondary copy", "version_id", obj.VersionID)
	applied, err := e.reg.RecordCreated(ctx, registry.ObjectEvent{
		DataType:  claim.DataType,
		Key:       claim.ObjectKey,
		Size:      obj.Size,
		ETag:      normalizeETag(obj.ETag),
		VersionID: obj.VersionID,
		EventTime: obj.LastModified,
	})
	if err != nil {
		return OutcomeFailed, true, fmt.Errorf("%w: record primary object %s: %w", ErrRegistry, claim.ObjectKey, err)
	}
	if applied {
		return OutcomeFailed, false, nil // the row changed: SyncClaim re-reads and copies
	}
	won, err := finish(ctx, func(ctx context.Context) (bool, error) {
		return e.reg.MarkFailed(ctx, claim, "object exists on primary again; secondary copy kept", false)
	})
	if err != nil {
		return OutcomeFailed, true, fmt.Errorf("%w: mark failed %s: %w", ErrRegistry, claim.ObjectKey, err)
	}
	if !won {
		return OutcomeFailed, false, nil
	}
	return OutcomeKept, true, nil
}

// fail records a failed sync. A missing source is recorded and not returned
// as an error (backfill retries it with the long backoff); any other cause
// is returned so the event is redelivered.
func (e *Engine) fail(ctx context.Context, claim registry.Claim, log *slog.Logger, cause error, missing bool) (Outcome, bool, error) {
	// Record the failure even when ctx was cancelled (Lambda deadline).
	won, err := finish(ctx, func(ctx context.Context) (bool, error) {
		return e.reg.MarkFailed(ctx, claim, cause.Error(), missing)
	})
	if err != nil {
		return OutcomeFailed, true, errors.Join(cause, fmt.Errorf("%w: mark failed %s: %w", ErrRegistry, claim.ObjectKey, err))
	}
	if !won {
		// The row changed during the attempt: whatever failed may not
		// matter for the new state.
		return OutcomeFailed, false, nil
	}
	if missing {
		log.WarnContext(ctx, "object missing on primary", "error", cause)
		return OutcomeMissingOnPrimary, true, nil
	}
	log.ErrorContext(ctx, "sync failed", "error", cause, "retryable", IsRetryable(cause))
	return OutcomeFailed, true, cause
}

// sourceMissing reports whether a Copy error means the primary object does
// not exist (as opposed to the secondary bucket missing).
func sourceMissing(err error) bool {
	var be *blobstore.Error
	if errors.As(err, &be) {
		return (be.Op == "open" || be.Op == "head") && errors.Is(be.Kind, blobstore.ErrNotFound)
	}
	return false
}

// normalizeETag strips the quotes S3 puts around ETags in HTTP headers, so
// ETags from events and from HEAD compare equal.
func normalizeETag(s string) string { return strings.Trim(s, `"`) }
