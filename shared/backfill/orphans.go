package backfill

import (
	"context"
	"errors"
	"fmt"

	"github.com/geoblob/geoblob/shared/blobstore"
)

// maxReportedOrphans bounds OrphanReport.Keys.
const maxReportedOrphans = 100

// orphans walks the secondary bucket (resumably, with its own cursor) and
// reports or deletes objects that have no live registry row and no primary
// object. Keys outside the selection (disabled types, other prefixes) are
// never touched: turning a type off must not delete its copies.
func (p *pass) orphans(ctx context.Context) error {
	rep := &p.rep.Orphans
	rep.Mode = p.orphanMode
	if p.orphanMode == OrphansOff {
		return nil
	}
	if p.r.o.Secondary == nil {
		return fmt.Errorf("%w: the orphans phase needs Options.Secondary", ErrInvalidConfig)
	}
	c, err := p.r.leaseCursor(ctx, "orphans:secondary:"+p.r.o.PrimaryBucket, p.owner, p.leaseUntil())
	if errors.Is(err, ErrBusy) {
		p.r.log.InfoContext(ctx, "backfill orphans skipped: another invocation holds the cursor", "phase", PhaseOrphans)
		return nil
	}
	if err != nil {
		return err
	}
	defer p.r.releaseCursor(ctx, c)
	err = p.r.o.Secondary.List(ctx, blobstore.ListOptions{StartAfter: c.pos.After, PageSize: p.r.o.ListPageSize}, func(page []blobstore.Object) error {
		rep.Listed += int64(len(page))
		if err := p.orphanPage(ctx, page); err != nil {
			return err
		}
		c.pos.After = page[len(page)-1].Key
		if err := p.r.saveCursor(ctx, p.r.o.Pool, c, int64(len(page)), 0); err != nil {
			return err
		}
		p.progress(PhaseOrphans, rep.Listed, -1)
		if p.expired() {
			return errStop
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
	case err != nil:
		return fmt.Errorf("backfill: orphans: %w", err)
	default:
		if err := p.r.completeCursor(ctx, c, position{}); err != nil {
			return err
		}
	}
	p.r.log.InfoContext(ctx, "backfill orphans", "phase", PhaseOrphans, "mode", rep.Mode,
		"listed", rep.Listed, "found", rep.Found, "deleted", rep.Deleted, "budget_exhausted", p.exhausted.Load())
	return nil
}

func (p *pass) orphanPage(ctx context.Context, page []blobstore.Object) error {
	rep := &p.rep.Orphans
	var keys []string
	for _, o := range page {
		if _, ok := p.r.selectKey(o.Key); ok {
			keys = append(keys, o.Key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	live, err := p.r.o.Registry.LiveKeys(ctx, keys, p.r.typeNames())
	if err != nil {
		return fmt.Errorf("backfill: orphans: live rows: %w", err)
	}
	isLive := make(map[string]bool, len(live))
	for _, k := range live {
		isLive[k] = true
	}
	for _, k := range keys {
		if isLive[k] {
			continue
		}
		_, err := p.r.o.Primary.Head(ctx, k)
		switch {
		case err == nil:
			continue // on the primary: reconcile registers it
		case !errors.Is(err, blobstore.ErrNotFound):
			return fmt.Errorf("backfill: orphans: head primary %s: %w", k, err)
		}
		rep.Found++
		if len(rep.Keys) < maxReportedOrphans {
			rep.Keys = append(rep.Keys, k)
		}
		if p.orphanMode != OrphansDelete {
			p.r.log.InfoContext(ctx, "backfill: secondary object has no primary (dry run)", "key", k)
			continue
		}
		if err := p.r.o.Secondary.Delete(ctx, k); err != nil {
			return fmt.Errorf("backfill: orphans: delete %s: %w", k, err)
		}
		rep.Deleted++
		p.r.log.InfoContext(ctx, "backfill: deleted secondary object without primary", "key", k)
	}
	return nil
}
