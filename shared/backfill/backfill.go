// Package backfill is geoblob's safety net: it makes lost, duplicated or
// reordered events harmless by driving the registry and the secondary bucket
// to the state of the primary bucket.
//
// One pass (Runner.Run) runs up to four phases within a time budget:
//
//   - recover: rows stuck in started longer than the sync timeout become
//     failed with a due retry;
//   - reconcile: every primary object of an enabled data type (and selected
//     prefix) without a row is registered as pending, in bulk (COPY into a
//     staging table + INSERT ... ON CONFLICT DO NOTHING); every live row
//     whose primary object is gone gets the delete propagated through the
//     engine, exactly like onDelete. The primary is read by a paginated
//     listing, or from an S3 Inventory manifest when one is configured.
//     Progress is saved in backfill_cursor after every batch, so the next
//     invocation continues where the budget stopped this one;
//   - sync: due rows (pending first, then failed rows whose retry_at has
//     passed, fair across data types, FOR UPDATE SKIP LOCKED) are copied with
//     the engine's SyncClaim, the same code path as onCreate, under the
//     engine's one concurrency cap. Rows that used up their attempts are
//     quarantined: counted and kept, resynced only on request;
//   - orphans (off by default): secondary objects with no primary
//     counterpart are reported, or deleted.
package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// Registry is the part of the registry backfill uses; *registry.Store
// satisfies it. Selective sync (key prefixes) is applied by the registry.
type Registry interface {
	// ClaimDue claims due rows, pending first, fair across types, SKIP LOCKED.
	ClaimDue(ctx context.Context, opts registry.ClaimOptions) ([]registry.Claim, error)
	// RecoverStuck fails rows started longer ago than olderThan.
	RecoverStuck(ctx context.Context, olderThan time.Duration) (int64, error)
	// NewDueScan reads and leases due rows for a dispatcher, fair across
	// types, without claiming them.
	NewDueScan(dataTypes []string, lease time.Duration, maxAttempts int) *registry.DueScan
	// CountDispatched counts the sync work in flight: started rows plus
	// live dispatch leases.
	CountDispatched(ctx context.Context, lease time.Duration) (int64, error)
	// ReleaseLeases ends the leases of requests that were not sent.
	ReleaseLeases(ctx context.Context, ids []int64) error
	// ExpireLeases deletes the leases of requests considered lost.
	ExpireLeases(ctx context.Context, lease time.Duration) (int64, error)
	// CountDue counts the rows ClaimDue would claim now.
	CountDue(ctx context.Context, dataTypes []string) (int64, error)
	// StageListed registers a batch of listed objects in tx.
	StageListed(ctx context.Context, tx pgx.Tx, objs []registry.ListedObject, now, unchangedSince time.Time) (int64, []registry.KeyRef, error)
	// ListingOrphans returns live rows in a key range not in tx's batch.
	ListingOrphans(ctx context.Context, tx pgx.Tx, dataTypes []string, after string, upTo *string, createdBefore time.Time) ([]registry.KeyRef, error)
	// RememberStaged records tx's batch as seen by an inventory pass.
	RememberStaged(ctx context.Context, tx pgx.Tx, cursor string) error
	// InventoryOrphans returns live rows an inventory pass did not see.
	InventoryOrphans(ctx context.Context, cursor string, dataTypes []string, createdBefore time.Time, afterID int64, limit int) ([]registry.KeyRef, int64, error)
	// Quarantine parks failed rows that used up their attempts.
	Quarantine(ctx context.Context, maxAttempts int, dataTypes []string) (int64, error)
	// ResyncQuarantined ends the quarantine of rows.
	ResyncQuarantined(ctx context.Context, dataTypes []string, key string) (int64, error)
	// QuarantineStatus counts quarantined, pending and failed rows per type.
	QuarantineStatus(ctx context.Context, dataTypes []string) ([]registry.QuarantineStats, error)
	// LiveKeys returns the keys that have a live row.
	LiveKeys(ctx context.Context, keys, dataTypes []string) ([]string, error)
	// Health reads the replication health of data types.
	Health(ctx context.Context, dataTypes []string) (registry.Health, error)
	// BrakeStatus reports the delete brake (published with the health metrics).
	BrakeStatus(ctx context.Context) (registry.BrakeStatus, error)
}

// Engine syncs claims and applies events; *replication.Engine satisfies it.
type Engine interface {
	// SyncClaim copies (or, for a tombstone, deletes) a claimed row.
	SyncClaim(ctx context.Context, claim registry.Claim) (replication.Outcome, error)
	// Apply records an event and syncs its row (used to propagate deletes).
	Apply(ctx context.Context, ev events.ObjectEvent) (replication.Outcome, error)
	// Concurrency is the cap on copies in flight shared by all callers.
	Concurrency() int
}

// Primary is the primary bucket as backfill reads it; *blobstore.Store
// satisfies it.
type Primary interface {
	ObjectLister
	// Head returns the object's attributes or an error wrapping
	// blobstore.ErrNotFound.
	Head(ctx context.Context, key string) (blobstore.Object, error)
}

// Secondary is the secondary bucket as the orphans phase reads and prunes
// it; *blobstore.Store satisfies it.
type Secondary interface {
	ObjectLister
	// Delete removes the object; deleting a missing object succeeds.
	Delete(ctx context.Context, key string) error
}

// PassLog records the outcome of every pass; *registry.Store satisfies it.
type PassLog interface {
	// RecordPass stores the pass as the job's last pass.
	RecordPass(ctx context.Context, p registry.PassResult) error
}

// InventoryStore is the bucket holding S3 Inventory reports; *blobstore.Store
// satisfies it.
type InventoryStore interface {
	ObjectReader
	ObjectLister
}

var (
	_ Registry       = (*registry.Store)(nil)
	_ Engine         = (*replication.Engine)(nil)
	_ Primary        = (*blobstore.Store)(nil)
	_ Secondary      = (*blobstore.Store)(nil)
	_ InventoryStore = (*blobstore.Store)(nil)
	_ PassLog        = (*registry.Store)(nil)
)

// Options are a Runner's dependencies.
type Options struct {
	Config   Config
	Pool     *pgxpool.Pool // the registry's database (cursors, and the transactions of a batch)
	Registry Registry
	Engine   Engine
	Catalog  *datatype.Catalog // enabled data types and selected key prefixes
	Primary  Primary
	// PrimaryBucket names the primary in cursor names; default "primary".
	PrimaryBucket string
	// Secondary is required only for the orphans phase.
	Secondary Secondary
	// Inventory is required when Config.Inventory is set: the store of
	// Config.Inventory.Bucket.
	Inventory InventoryStore
	// ListPageSize is the page size of bucket listings (1..1000); default 1000.
	ListPageSize int32
	// SyncTimeout: rows started longer ago are recovered. Default 8h.
	SyncTimeout time.Duration
	// Clock drives budgets and written timestamps; default time.Now.
	Clock func() time.Time
	// Logger receives the per-phase summaries; default slog.Default().
	Logger *slog.Logger
	// PassLog, when set, records every Run's outcome (registry.JobBackfill)
	// for the health check and the console.
	PassLog PassLog
	// Dispatcher, when set, makes the sync phase send sync requests to the
	// copy workers instead of copying in process (see Config.Window).
	Dispatcher Dispatcher
	// DispatchParallel is how many claim-and-send loops a dispatching
	// sync phase runs (sharing one window); default 4.
	DispatchParallel int
	// PollInterval is how long sync waits when the window is full or
	// reconcile is still registering; default 50 ms.
	PollInterval time.Duration
	// Progress, when set, is called (from the goroutine running the pass
	// or from sync workers, never concurrently) after each unit of work.
	Progress func(Progress)
}

// Progress reports the running totals of a phase.
type Progress struct {
	Phase Phase
	Done  int64 // objects listed (reconcile, orphans) or claims finished (sync)
	Total int64 // expected total when known (sync), else -1
}

// Runner runs backfill passes. It is safe for concurrent use, and several
// Runners (Lambda instances) may run against one registry at once.
type Runner struct {
	o   Options
	log *slog.Logger
}

// New checks the options and returns a Runner.
func New(o Options) (*Runner, error) {
	var missing []string
	if o.Pool == nil {
		missing = append(missing, "Pool")
	}
	if o.Registry == nil {
		missing = append(missing, "Registry")
	}
	if o.Engine == nil {
		missing = append(missing, "Engine")
	}
	if o.Catalog == nil {
		missing = append(missing, "Catalog")
	}
	if o.Primary == nil {
		missing = append(missing, "Primary")
	}
	if o.Config.Inventory != nil && o.Inventory == nil {
		missing = append(missing, "Inventory (Config.Inventory is set)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: options missing %v", ErrInvalidConfig, missing)
	}
	def := DefaultConfig()
	if o.Config.Budget <= 0 {
		o.Config.Budget = def.Budget
	}
	if len(o.Config.Phases) == 0 {
		o.Config.Phases = def.Phases
	}
	if o.Config.BatchSize <= 0 {
		o.Config.BatchSize = def.BatchSize
	}
	if o.Config.ClaimSize <= 0 {
		o.Config.ClaimSize = def.ClaimSize
	}
	if o.Config.MaxAttempts <= 0 {
		o.Config.MaxAttempts = def.MaxAttempts
	}
	if o.Config.DispatchLease <= 0 {
		o.Config.DispatchLease = def.DispatchLease
	}
	if o.Config.Orphans == "" {
		o.Config.Orphans = OrphansOff
	}
	if o.PrimaryBucket == "" {
		o.PrimaryBucket = "primary"
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 8 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.DispatchParallel <= 0 {
		o.DispatchParallel = 4
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.Config.Window <= 0 {
		o.Config.Window = def.Window
	}
	if o.Config.RelistInterval <= 0 {
		o.Config.RelistInterval = def.RelistInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Runner{o: o, log: o.Logger.With("function", "backfill")}, nil
}

// Request selects what one Run does; zero fields take the configuration.
type Request struct {
	// Phases to run, in canonical order; empty = Config.Phases.
	Phases []Phase `json:"phases,omitempty"`
	// Budget is a Go duration ("10m"); empty = Config.Budget.
	Budget string `json:"budget,omitempty"`
	// Orphans overrides Config.Orphans for this run (off, report, delete).
	Orphans OrphanMode `json:"orphans,omitempty"`
	// ResyncQuarantined ends the quarantine of every quarantined row of
	// the enabled types before the phases run.
	ResyncQuarantined bool `json:"resync_quarantined,omitempty"`
	// Relist starts a new listing pass even when the last one completed
	// less than Config.RelistInterval ago (on-demand runs: an operator who
	// asks for a pass wants objects uploaded since then found now).
	Relist bool `json:"relist,omitempty"`
}

// Report counts what one Run did.
type Report struct {
	Recovered int64 `json:"recovered"`

	Reconcile ReconcileReport `json:"reconcile"`
	Sync      SyncReport      `json:"sync"`
	Orphans   OrphanReport    `json:"orphans"`

	Resynced        int64         `json:"resynced"`         // quarantined rows sent back to pending on request
	BudgetExhausted bool          `json:"budget_exhausted"` // some phase stopped early; the next run resumes
	Elapsed         time.Duration `json:"elapsed_ns"`
}

// ReconcileReport counts the reconcile phase.
type ReconcileReport struct {
	Source        string `json:"source"`         // "list" or "inventory"
	Skipped       string `json:"skipped"`        // why the phase did nothing ("busy", "inventory already reconciled")
	Resumed       bool   `json:"resumed"`        // continued a pass an earlier run started
	Listed        int64  `json:"listed"`         // primary objects read (listing entries or inventory rows)
	Rejected      int64  `json:"rejected"`       // inventory rows that can never be registered (ErrInvalidRow): skipped and logged
	Selected      int64  `json:"selected"`       // of those, in an enabled type and prefix
	Registered    int64  `json:"registered"`     // new pending rows
	Changed       int64  `json:"changed"`        // listed objects whose row was a tombstone or had another ETag: re-registered
	OrphanRows    int64  `json:"orphan_rows"`    // live rows not in the listing
	DeletesQueued int64  `json:"deletes_queued"` // of those, gone from the primary: delete propagated
	PassComplete  bool   `json:"pass_complete"`  // the listing reached its end in this run
}

// SyncReport counts the sync phase by engine outcome.
type SyncReport struct {
	Claimed     int64 `json:"claimed"`
	Synced      int64 `json:"synced"`
	Deleted     int64 `json:"deleted"`
	Missing     int64 `json:"missing_on_primary"`
	Held        int64 `json:"held"` // deletes held by the delete brake
	Failed      int64 `json:"failed"`
	Other       int64 `json:"other"` // stale, in progress, kept, contended
	Quarantined int64 `json:"quarantined"`
	Rounds      int   `json:"rounds"`
	// Dispatched counts sync requests sent to the workers (dispatch mode;
	// the copy outcomes are then the workers' to count).
	Dispatched int64 `json:"dispatched"`
	// WindowWaits counts polls that found the window full.
	WindowWaits int64 `json:"window_waits"`
}

// OrphanReport counts the orphans phase.
type OrphanReport struct {
	Mode    OrphanMode `json:"mode"`
	Listed  int64      `json:"listed"`
	Found   int64      `json:"found"`
	Deleted int64      `json:"deleted"`
	Keys    []string   `json:"keys,omitempty"` // the first orphans found (at most 100)
}

// safetyMargin is kept free before a Lambda deadline.
const safetyMargin = 30 * time.Second

// Run runs one pass: the phases of req within its budget (and before ctx's
// deadline minus 30 s). It returns the report of what was done even when a
// phase fails; phases after a failed one still run, and the errors are
// joined.
func (r *Runner) Run(ctx context.Context, req Request) (Report, error) {
	start := r.o.Clock()
	phases := r.o.Config.Phases
	if len(req.Phases) > 0 {
		ps, err := ParsePhases(phaseStrings(req.Phases))
		if err != nil {
			return Report{}, err
		}
		phases = ps
	}
	budget := r.o.Config.Budget
	if req.Budget != "" {
		d, err := time.ParseDuration(req.Budget)
		if err != nil || d <= 0 {
			return Report{}, fmt.Errorf("%w: budget %q", ErrInvalidConfig, req.Budget)
		}
		budget = d
	}
	orphans := r.o.Config.Orphans
	if req.Orphans != "" {
		orphans = req.Orphans
	}
	deadline := start.Add(budget)
	if dl, ok := ctx.Deadline(); ok {
		// The Lambda deadline is wall time; translate it onto our clock.
		if d := start.Add(time.Until(dl) - safetyMargin); d.Before(deadline) {
			deadline = d
		}
	}
	p := &pass{r: r, deadline: deadline, owner: newOwner(), orphanMode: orphans, relist: req.Relist}
	var errs []error
	if req.ResyncQuarantined {
		n, err := r.ResyncQuarantined(ctx, nil, "")
		p.rep.Resynced = n
		errs = append(errs, err)
	}
	errs = append(errs, p.runPhases(ctx, phases)...)
	p.rep.BudgetExhausted = p.exhausted.Load()
	p.rep.Elapsed = r.o.Clock().Sub(start)
	r.log.InfoContext(ctx, "backfill pass",
		"elapsed", p.rep.Elapsed, "budget_exhausted", p.rep.BudgetExhausted,
		"recovered", p.rep.Recovered, "listed", p.rep.Reconcile.Listed,
		"registered", p.rep.Reconcile.Registered, "deletes_queued", p.rep.Reconcile.DeletesQueued,
		"claimed", p.rep.Sync.Claimed, "synced", p.rep.Sync.Synced, "deleted", p.rep.Sync.Deleted,
		"failed", p.rep.Sync.Failed, "quarantined", p.rep.Sync.Quarantined,
		"orphans_found", p.rep.Orphans.Found, "orphans_deleted", p.rep.Orphans.Deleted)
	err := errors.Join(errs...)
	r.recordPass(ctx, start, p.rep, err)
	return p.rep, err
}

// recordPass writes the pass to the pass log (when configured); a failure
// to record is logged, never returned: it must not fail the pass.
func (r *Runner) recordPass(ctx context.Context, start time.Time, rep Report, err error) {
	if r.o.PassLog == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res := registry.PassResult{Job: registry.JobBackfill, Started: start, Finished: r.o.Clock(), Err: err, Summary: rep}
	if rerr := r.o.PassLog.RecordPass(ctx, res); rerr != nil {
		r.log.WarnContext(ctx, "backfill: record pass", "error", rerr)
	}
}

func phaseStrings(ps []Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// pass is the state of one Run. Reconcile and sync run concurrently and
// write only their own part of rep.
type pass struct {
	r          *Runner
	deadline   time.Time
	owner      string
	orphanMode OrphanMode
	// relist: Request.Relist (ignore the relist interval).
	relist bool
	rep    Report
	// inventoryTime is when the inventory being reconciled was taken.
	inventoryTime time.Time
	// exhausted: some phase stopped at the budget (Report.BudgetExhausted).
	exhausted atomic.Bool
	// reconciling is true while reconcile runs; sync keeps waiting for
	// the rows it registers instead of stopping when nothing is due.
	reconciling atomic.Bool
	progressMu  sync.Mutex
}

// runPhases runs the phases in order, except that reconcile and sync run
// side by side: registration never holds up copies (the first pass over a
// huge bucket registers batch after batch while sync already works on
// them) and a long sync never holds up registration. Phases after a
// failed one still run.
func (p *pass) runPhases(ctx context.Context, phases []Phase) []error {
	var errs []error
	concurrent := slices.Contains(phases, PhaseReconcile) && slices.Contains(phases, PhaseSync)
	var reconcileDone chan error
	for _, ph := range phases {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("backfill: %s: %w", ph, ctx.Err()))
			break
		}
		var err error
		switch ph {
		case PhaseRecover:
			err = p.recover(ctx)
		case PhaseReconcile:
			if concurrent {
				p.reconciling.Store(true)
				reconcileDone = make(chan error, 1)
				go func() {
					defer p.reconciling.Store(false)
					reconcileDone <- p.reconcile(ctx)
				}()
				continue
			}
			err = p.reconcile(ctx)
		case PhaseSync:
			err = p.sync(ctx)
			if reconcileDone != nil {
				if rerr := <-reconcileDone; rerr != nil {
					p.r.log.ErrorContext(ctx, "backfill phase failed", "phase", PhaseReconcile, "error", rerr)
					errs = append(errs, rerr)
				}
				reconcileDone = nil
			}
		case PhaseOrphans:
			err = p.orphans(ctx)
		}
		if err != nil {
			p.r.log.ErrorContext(ctx, "backfill phase failed", "phase", ph, "error", err)
			errs = append(errs, err)
		}
	}
	if reconcileDone != nil {
		errs = append(errs, <-reconcileDone)
	}
	return errs
}

// expired reports (and records) that the budget is used up.
func (p *pass) expired() bool {
	if p.r.o.Clock().Before(p.deadline) {
		return false
	}
	p.exhausted.Store(true)
	return true
}

func (p *pass) progress(ph Phase, done, total int64) {
	if p.r.o.Progress != nil {
		p.progressMu.Lock()
		defer p.progressMu.Unlock()
		p.r.o.Progress(Progress{Phase: ph, Done: done, Total: total})
	}
}

func (p *pass) recover(ctx context.Context) error {
	n, err := p.r.o.Registry.RecoverStuck(ctx, p.r.o.SyncTimeout)
	if err != nil {
		return fmt.Errorf("backfill: recover: %w", err)
	}
	p.rep.Recovered = n
	p.r.log.InfoContext(ctx, "backfill recover", "phase", PhaseRecover, "recovered", n, "older_than", p.r.o.SyncTimeout)
	return nil
}

// now is the clock at PostgreSQL's precision.
func (r *Runner) now() time.Time { return r.o.Clock().Truncate(time.Microsecond) }

func (r *Runner) typeNames() []string { return r.o.Catalog.Names() }

// newOwner returns a random lease owner id for one Run.
func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
