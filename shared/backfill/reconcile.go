package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// select returns the data type of a listed key, or false when the key is
// outside the selection (no enabled type, or outside the prefixes).
func (r *Runner) selectKey(key string) (string, bool) {
	t, ok := r.o.Catalog.Match(key)
	return t.Name, ok
}

// leaseFor is how long a reconcile lease lasts: past this run's deadline,
// so a crashed run's lease expires soon after.
func (p *pass) leaseUntil() time.Time {
	return p.deadline.Add(2 * time.Minute)
}

func (p *pass) reconcile(ctx context.Context) error {
	var err error
	if p.r.o.Config.Inventory != nil {
		p.rep.Reconcile.Source = "inventory"
		err = p.reconcileInventory(ctx)
	} else {
		p.rep.Reconcile.Source = "list"
		err = p.reconcileListing(ctx)
	}
	if errors.Is(err, ErrBusy) {
		p.rep.Reconcile.Skipped = "busy"
		p.r.log.InfoContext(ctx, "backfill reconcile skipped: another invocation holds the cursor", "phase", PhaseReconcile)
		return nil
	}
	rc := p.rep.Reconcile
	p.r.log.InfoContext(ctx, "backfill reconcile", "phase", PhaseReconcile, "source", rc.Source,
		"resumed", rc.Resumed, "listed", rc.Listed, "selected", rc.Selected, "registered", rc.Registered,
		"orphan_rows", rc.OrphanRows, "deletes_queued", rc.DeletesQueued, "pass_complete", rc.PassComplete,
		"skipped", rc.Skipped, "budget_exhausted", p.exhausted.Load())
	return err
}

// stage registers a batch of listed objects in tx (see
// registry.StageListed) and returns the objects whose row, not changed
// since unchangedSince, disagrees with the listing.
func (p *pass) stage(ctx context.Context, tx pgx.Tx, batch []registry.ListedObject, unchangedSince time.Time) ([]registry.KeyRef, error) {
	n, changed, err := p.r.o.Registry.StageListed(ctx, tx, batch, p.r.now(), unchangedSince)
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	p.rep.Reconcile.Registered += n
	return changed, nil
}

// recreate handles listed objects whose row is a tombstone or names
// another ETag: when a HEAD shows the object on the primary, it goes through
// the engine like an ObjectCreated event (no sequencer: never stale, keeps
// the stored one), which copies it.
func (p *pass) recreate(ctx context.Context, keys []registry.KeyRef) error {
	for _, k := range keys {
		obj, err := p.r.o.Primary.Head(ctx, k.Key)
		switch {
		case errors.Is(err, blobstore.ErrNotFound):
			continue // deleted since it was listed
		case err != nil:
			return fmt.Errorf("backfill: head %s: %w", k.Key, err)
		}
		p.rep.Reconcile.Changed++
		_, _, err = p.apply(ctx, k, events.ObjectEvent{
			Kind: events.KindCreated, EventName: "ObjectCreated:Backfill", Source: EventSource, Key: k.Key,
			Size: obj.Size, ETag: obj.ETag, VersionID: obj.VersionID, EventTime: obj.LastModified,
		}, "re-register", "changed object not copied yet")
		if err != nil {
			return err
		}
	}
	return nil
}

// apply runs ev, an event the pass made up for row k, through the engine.
// An engine failure fails the pass only when ctx is done (as op, in the
// error); otherwise it is logged as notYet (sync retries the row) and
// applied is false.
func (p *pass) apply(ctx context.Context, k registry.KeyRef, ev events.ObjectEvent, op, notYet string) (out replication.Outcome, applied bool, err error) {
	out, err = p.r.o.Engine.Apply(ctx, ev)
	if err == nil {
		return out, true, nil
	}
	if ctx.Err() != nil {
		return out, false, fmt.Errorf("backfill: %s %s: %w", op, k.Key, err)
	}
	p.r.log.WarnContext(ctx, "backfill: "+notYet+"; sync retries it",
		"data_type", k.DataType, "key", k.Key, "outcome", out.String(), "error", err)
	return out, false, nil
}

func (p *pass) reconcileListing(ctx context.Context) error {
	c, err := p.r.leaseCursor(ctx, "reconcile:list:"+p.r.o.PrimaryBucket, p.owner, p.leaseUntil())
	if err != nil {
		return err
	}
	defer p.r.releaseCursor(ctx, c)
	if c.pos.After != "" || c.passStartedAt != nil {
		p.rep.Reconcile.Resumed = true
	} else if next := p.r.nextListing(c); !p.relist && p.r.now().Before(next) {
		p.rep.Reconcile.Skipped = "listing completed " + c.lastCompleted.UTC().Format(time.RFC3339) +
			"; next pass after " + next.UTC().Format(time.RFC3339)
		return nil
	} else if err := p.r.restartCursor(ctx, c, position{}); err != nil {
		return err
	}
	var (
		batch      []registry.ListedObject
		listed     int64
		batchStart = p.r.now() // when the listing of the batch's first page began
		fetchStart = batchStart
	)
	flush := func(last string, toEnd bool) error {
		upTo := &last
		if toEnd {
			upTo = nil
		}
		if err := p.flushListing(ctx, c, batch, listed, upTo, batchStart); err != nil {
			return err
		}
		if !toEnd {
			c.pos.After = last
		}
		batch, listed, batchStart = batch[:0], 0, fetchStart
		return nil
	}
	last := c.pos.After
	pageSize := int(p.r.o.ListPageSize)
	if pageSize <= 0 || pageSize > int(blobstore.DefaultListPageSize) {
		pageSize = int(blobstore.DefaultListPageSize)
	}
	err = p.r.o.Primary.List(ctx, blobstore.ListOptions{StartAfter: c.pos.After, PageSize: p.r.o.ListPageSize}, func(page []blobstore.Object) error {
		for _, o := range page {
			listed++
			if t, ok := p.r.selectKey(o.Key); ok {
				batch = append(batch, registry.ListedObject{DataType: t, Key: o.Key, Size: o.Size, ETag: trimETag(o.ETag)})
			}
		}
		p.rep.Reconcile.Listed += int64(len(page))
		last = page[len(page)-1].Key
		p.progress(PhaseReconcile, p.rep.Reconcile.Listed, -1)
		// A short page is (almost always) the last one: finish the pass
		// rather than leave one empty request for the next invocation.
		expired := len(page) >= pageSize && p.expired()
		if len(batch) >= p.r.o.Config.BatchSize || expired {
			if err := flush(last, false); err != nil {
				return err
			}
		}
		fetchStart = p.r.now()
		if len(batch) == 0 && listed == 0 {
			batchStart = fetchStart
		}
		if expired {
			return errStop
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		return nil
	case err != nil:
		return fmt.Errorf("backfill: reconcile listing: %w", err)
	}
	// End of the listing: the last batch, and every row after its last key.
	if err := flush(last, false); err != nil {
		return err
	}
	c.pos.After = last
	if err := p.flushListing(ctx, c, nil, 0, nil, batchStart); err != nil {
		return err
	}
	p.rep.Reconcile.PassComplete = true
	return p.r.completeCursor(ctx, c, position{})
}

// nextListing is when a new listing pass may start after the cursor's
// last completed one (GEOBLOB_BACKFILL_RELIST_INTERVAL).
func (r *Runner) nextListing(c *cursor) time.Time {
	if c.lastCompleted == nil {
		return time.Time{}
	}
	return c.lastCompleted.Add(r.o.Config.RelistInterval)
}

// flushListing registers a batch of listed objects and propagates the
// deletes of live rows in the batch's key range (c.pos.After, upTo] (upTo
// nil = to the end) that the listing did not contain. Then the cursor moves
// to upTo.
func (p *pass) flushListing(ctx context.Context, c *cursor, batch []registry.ListedObject, listed int64, upTo *string, listedSince time.Time) error {
	var orphans []registry.KeyRef
	changed, before, err := p.stageInTx(ctx, batch, listedSince, func(tx pgx.Tx, _ int64) error {
		var err error
		orphans, err = p.r.o.Registry.ListingOrphans(ctx, tx, p.r.typeNames(), c.pos.After, upTo, listedSince)
		if err != nil {
			return fmt.Errorf("backfill: orphan rows: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := p.recreate(ctx, changed); err != nil {
		return err
	}
	if err := p.propagateDeletes(ctx, orphans); err != nil {
		return err
	}
	if upTo == nil {
		return nil
	}
	c.pos.After = *upTo
	return p.r.saveCursor(ctx, p.r.o.Pool, c, listed, p.rep.Reconcile.Registered-before)
}

// stageInTx registers batch (see stage) and runs then in one transaction,
// and commits it; then gets the transaction and the pass's Registered count
// before the batch. On any failure the Registered count is restored (the
// batch registered nothing). It returns the changed rows (see stage) and
// the Registered count before the batch.
func (p *pass) stageInTx(ctx context.Context, batch []registry.ListedObject, unchangedSince time.Time,
	then func(tx pgx.Tx, before int64) error) (changed []registry.KeyRef, before int64, err error) {
	p.rep.Reconcile.Selected += int64(len(batch))
	tx, err := p.r.o.Pool.Begin(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("backfill: reconcile: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	before = p.rep.Reconcile.Registered
	defer func() {
		if err != nil {
			p.rep.Reconcile.Registered = before
		}
	}()
	if changed, err = p.stage(ctx, tx, batch, unchangedSince); err != nil {
		return nil, before, err
	}
	if err = then(tx, before); err != nil {
		return nil, before, err
	}
	if err = tx.Commit(ctx); err != nil {
		return nil, before, fmt.Errorf("backfill: reconcile commit: %w", err)
	}
	return changed, before, nil
}

// propagateDeletes handles live rows whose object the primary's listing
// did not show: after a HEAD confirms the object is gone, the removal goes
// through the engine exactly like an ObjectRemoved event (tombstone, delete
// the secondary copy). A failed delete stays a pending tombstone that sync
// retries, so it does not fail the phase.
func (p *pass) propagateDeletes(ctx context.Context, orphans []registry.KeyRef) error {
	for _, o := range orphans {
		p.rep.Reconcile.OrphanRows++
		_, err := p.r.o.Primary.Head(ctx, o.Key)
		switch {
		case err == nil:
			continue // created after the listing page was read
		case !errors.Is(err, blobstore.ErrNotFound):
			return fmt.Errorf("backfill: head %s before propagating its delete: %w", o.Key, err)
		}
		p.rep.Reconcile.DeletesQueued++
		out, applied, err := p.apply(ctx, o, events.ObjectEvent{
			Kind: events.KindRemoved, EventName: "ObjectRemoved:Backfill", Source: EventSource, Key: o.Key,
			EventTime: p.r.now(),
		}, "propagate delete of", "delete not propagated yet")
		if err != nil {
			return err
		}
		if applied && out == replication.OutcomeIgnored {
			p.r.log.WarnContext(ctx, "backfill: orphan row of a type the engine ignores", "data_type", o.DataType, "key", o.Key)
		}
	}
	return nil
}

// EventSource is the Source of the removal events backfill synthesizes.
const EventSource = "geoblob:backfill"

func (p *pass) reconcileInventory(ctx context.Context) error {
	loc := p.r.o.Config.Inventory
	m, err := ReadManifest(ctx, p.r.o.Inventory, loc.Key)
	if err != nil {
		return err
	}
	if err := m.CheckSource(p.r.o.PrimaryBucket); err != nil {
		return err
	}
	c, err := p.r.leaseCursor(ctx, "reconcile:inventory:"+p.r.o.PrimaryBucket, p.owner, p.leaseUntil())
	if err != nil {
		return err
	}
	defer p.r.releaseCursor(ctx, c)
	switch {
	case c.pos.Manifest == m.Key && c.pos.Done:
		p.rep.Reconcile.Skipped = "inventory already reconciled"
		return nil
	case c.pos.Manifest != "" && c.pos.Manifest > m.Key:
		p.rep.Reconcile.Skipped = "inventory older than the last reconciled one"
		return nil
	case c.pos.Manifest == m.Key:
		p.rep.Reconcile.Resumed = true
	default:
		if _, err := p.r.o.Pool.Exec(ctx, qSeenClear, c.name); err != nil {
			return fmt.Errorf("backfill: clear seen keys: %w", err)
		}
		if err := p.r.restartCursor(ctx, c, position{Manifest: m.Key}); err != nil {
			return err
		}
	}
	createdBefore := m.Created()
	if createdBefore.IsZero() && c.passStartedAt != nil {
		createdBefore = *c.passStartedAt
	}
	p.inventoryTime = createdBefore
	if !c.pos.Scanned {
		stopped, err := p.scanInventory(ctx, c, m)
		if err != nil || stopped {
			return err
		}
	}
	if _, err := p.r.o.Pool.Exec(ctx, qSeenAnalyze); err != nil {
		return fmt.Errorf("backfill: analyze seen keys: %w", err)
	}
	for {
		if p.expired() {
			return nil
		}
		orphans, lastID, err := p.inventoryOrphans(ctx, c, createdBefore)
		if err != nil {
			return err
		}
		if len(orphans) == 0 {
			break
		}
		if err := p.propagateDeletes(ctx, orphans); err != nil {
			return err
		}
		c.pos.OrphansAfterID = lastID
		if err := p.r.saveCursor(ctx, p.r.o.Pool, c, 0, 0); err != nil {
			return err
		}
	}
	if _, err := p.r.o.Pool.Exec(ctx, qSeenClear, c.name); err != nil {
		return fmt.Errorf("backfill: clear seen keys: %w", err)
	}
	p.rep.Reconcile.PassComplete = true
	return p.r.completeCursor(ctx, c, position{Manifest: m.Key, Done: true})
}

// orphanBatch bounds the rows read from one orphan anti-join.
const orphanBatch = 10_000

// inventoryOrphans returns up to orphanBatch live rows after the cursor's
// orphan id that the inventory did not list, and the last id.
func (p *pass) inventoryOrphans(ctx context.Context, c *cursor, createdBefore time.Time) ([]registry.KeyRef, int64, error) {
	out, lastID, err := p.r.o.Registry.InventoryOrphans(ctx, c.name, p.r.typeNames(), createdBefore, c.pos.OrphansAfterID, orphanBatch)
	if err != nil {
		return nil, 0, fmt.Errorf("backfill: %w", err)
	}
	return out, lastID, nil
}

// scanInventory registers the manifest's objects from the cursor on; stopped
// is true when the budget ran out first.
func (p *pass) scanInventory(ctx context.Context, c *cursor, m Manifest) (stopped bool, err error) {
	batch := make([]registry.ListedObject, 0, p.r.o.Config.BatchSize)
	err = ScanInventory(ctx, p.r.o.Inventory, m, c.pos.Inventory, p.r.o.Config.BatchSize,
		func(entries []InventoryEntry, next InventoryPosition) error {
			batch = batch[:0]
			for _, e := range entries {
				if t, ok := p.r.selectKey(e.Key); ok {
					batch = append(batch, registry.ListedObject{DataType: t, Key: e.Key, Size: e.Size, ETag: trimETag(e.ETag)})
				}
			}
			// Rows that are not live (old versions) advance the position
			// without being counted; listed counts what fn was given.
			if err := p.flushInventory(ctx, c, batch, int64(len(entries)), next); err != nil {
				return err
			}
			p.progress(PhaseReconcile, p.rep.Reconcile.Listed, -1)
			if p.expired() {
				return errStop
			}
			return nil
		},
		func(r InventoryRejection) {
			p.rep.Reconcile.Rejected++
			p.r.log.WarnContext(ctx, "backfill: inventory row rejected; skipped", "phase", PhaseReconcile,
				"manifest", m.Key, "file", r.File, "line", r.Line, "error", r.Err)
		})
	switch {
	case errors.Is(err, errStop):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("backfill: reconcile inventory %s: %w", m.Key, err)
	}
	c.pos.Scanned = true
	return false, p.r.saveCursor(ctx, p.r.o.Pool, c, 0, 0)
}

// flushInventory registers one batch, remembers its keys for the orphan
// sweep and moves the cursor, all in one transaction.
func (p *pass) flushInventory(ctx context.Context, c *cursor, batch []registry.ListedObject, listed int64, next InventoryPosition) error {
	p.rep.Reconcile.Listed += listed
	prev := c.pos.Inventory
	t0 := time.Now()
	var t1 time.Time
	changed, _, err := p.stageInTx(ctx, batch, p.inventoryTime, func(tx pgx.Tx, before int64) error {
		t1 = time.Now()
		if len(batch) > 0 {
			if err := p.r.o.Registry.RememberStaged(ctx, tx, c.name); err != nil {
				return fmt.Errorf("backfill: %w", err)
			}
		}
		c.pos.Inventory = next
		return p.r.saveCursor(ctx, tx, c, listed, p.rep.Reconcile.Registered-before)
	})
	if err != nil {
		c.pos.Inventory = prev
		return err
	}
	p.r.log.DebugContext(ctx, "backfill: inventory batch", "rows", len(batch),
		"stage", t1.Sub(t0), "seen_and_commit", time.Since(t1))
	return p.recreate(ctx, changed)
}

// trimETag strips the quotes S3 puts around ETags.
func trimETag(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
