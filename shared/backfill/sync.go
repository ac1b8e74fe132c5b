package backfill

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// sync claims due rows and copies them through the engine until nothing is
// due or the budget is used up. Claims already taken are always finished
// (the engine records a failure if ctx ends first).
func (p *pass) sync(ctx context.Context) error {
	rep := &p.rep.Sync
	defer func() {
		p.r.log.InfoContext(ctx, "backfill sync", "phase", PhaseSync, "rounds", rep.Rounds,
			"claimed", rep.Claimed, "synced", rep.Synced, "deleted", rep.Deleted,
			"missing_on_primary", rep.Missing, "failed", rep.Failed, "other", rep.Other,
			"quarantined", rep.Quarantined, "budget_exhausted", p.exhausted.Load())
	}()
	if p.r.o.Dispatcher != nil {
		return p.dispatch(ctx)
	}
	if err := p.quarantine(ctx); err != nil {
		return err
	}
	total := p.syncTotal(ctx)
	var (
		mu   sync.Mutex
		done int64
		wg   sync.WaitGroup
	)
	// A fixed pool of workers, as many as the engine's cap (its own
	// semaphore bounds copies across all callers). The next batch is
	// claimed as soon as the previous one is handed out, so workers never
	// wait for a round's slowest copy.
	work := make(chan registry.Claim)
	for range max(p.r.o.Engine.Concurrency(), 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				out, err := p.r.o.Engine.SyncClaim(ctx, c)
				mu.Lock()
				p.count(out, err, c)
				done++
				if total >= 0 && done > total {
					total = done
				}
				p.progress(PhaseSync, done, total)
				mu.Unlock()
			}
		}()
	}
	attempted := map[int64]bool{}
	finish := func() {
		close(work)
		wg.Wait()
	}
	for !p.expired() {
		if err := ctx.Err(); err != nil {
			finish()
			return fmt.Errorf("backfill: sync: %w", err)
		}
		// Read before the claim: a reconcile that registers its last rows
		// and ends between an empty claim and this check must not end sync.
		registering := p.reconciling.Load()
		claims, err := p.r.claimDue(ctx, p.r.o.Config.ClaimSize)
		if err != nil {
			finish()
			return err
		}
		if len(claims) == 0 {
			if registering && p.wait(ctx) {
				continue // reconcile is still registering rows
			}
			break
		}
		mu.Lock()
		rep.Rounds++
		rep.Claimed += int64(len(claims))
		mu.Unlock()
		fresh := 0
		for _, c := range claims {
			if !attempted[c.ID] {
				attempted[c.ID] = true
				fresh++
			}
			work <- c
		}
		// Rows that failed in this pass and are due again at once (short
		// backoff) are tried once more, not in a loop until the budget ends.
		if fresh == 0 {
			break
		}
		if err := p.quarantine(ctx); err != nil {
			finish()
			return err
		}
	}
	finish()
	return p.quarantine(ctx)
}

// syncTotal returns how many rows are due (for progress; -1 when unknown
// or not asked for).
func (p *pass) syncTotal(ctx context.Context) int64 {
	total := int64(-1)
	if p.r.o.Progress != nil {
		if n, err := p.r.CountDue(ctx); err == nil {
			total = n
		}
	}
	return total
}

func (p *pass) count(out replication.Outcome, err error, c registry.Claim) {
	rep := &p.rep.Sync
	switch out {
	case replication.OutcomeSynced:
		rep.Synced++
	case replication.OutcomeDeleted:
		rep.Deleted++
	case replication.OutcomeMissingOnPrimary:
		rep.Missing++
	case replication.OutcomeHeld:
		rep.Held++
	case replication.OutcomeFailed:
		rep.Failed++
	default:
		rep.Other++
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		p.r.log.Debug("backfill: sync attempt failed", "data_type", c.DataType, "key", c.ObjectKey,
			"attempt", c.RetryCount+1, "outcome", out.String(), "error", err)
	}
}

// claimDue claims up to limit due rows of the enabled types and selected
// prefixes through the registry's ClaimDue (pending first, then due failed
// rows, round-robin across types, SKIP LOCKED).
func (r *Runner) claimDue(ctx context.Context, limit int) ([]registry.Claim, error) {
	claims, err := r.o.Registry.ClaimDue(ctx, registry.ClaimOptions{
		Limit: limit, DataTypes: r.typeNames(),
	})
	if err != nil {
		return nil, fmt.Errorf("backfill: claim: %w", err)
	}
	return claims, nil
}

// CountDue returns how many rows of the enabled types and prefixes a sync
// would claim now.
func (r *Runner) CountDue(ctx context.Context) (int64, error) {
	n, err := r.o.Registry.CountDue(ctx, r.typeNames())
	if err != nil {
		return 0, fmt.Errorf("backfill: %w", err)
	}
	return n, nil
}

// quarantine parks failed rows that used up their attempts.
func (p *pass) quarantine(ctx context.Context) error {
	n, err := p.r.o.Registry.Quarantine(ctx, p.r.o.Config.MaxAttempts, p.r.typeNames())
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if n > 0 {
		p.rep.Sync.Quarantined += n
		p.r.log.WarnContext(ctx, "backfill: rows quarantined after too many failed attempts",
			"rows", n, "max_attempts", p.r.o.Config.MaxAttempts)
	}
	return nil
}

// ResyncQuarantined ends the quarantine of rows and makes them pending:
// every quarantined row of dataTypes (nil = the enabled types), or only
// the row of key when key is not empty. It returns how many rows it
// changed; asking for one key that is not quarantined gives
// ErrNotQuarantined.
func (r *Runner) ResyncQuarantined(ctx context.Context, dataTypes []string, key string) (int64, error) {
	if len(dataTypes) == 0 {
		dataTypes = r.typeNames()
	}
	n, err := r.o.Registry.ResyncQuarantined(ctx, dataTypes, key)
	if err != nil {
		return 0, fmt.Errorf("backfill: %w", err)
	}
	if key != "" && n == 0 {
		return 0, fmt.Errorf("%w: %s", ErrNotQuarantined, key)
	}
	r.log.InfoContext(ctx, "backfill: quarantined rows sent back to sync", "rows", n)
	return n, nil
}

// TypeStatus is the backfill view of one data type.
type TypeStatus = registry.QuarantineStats

// Status returns per enabled type the quarantined, pending and retried
// failed rows.
func (r *Runner) Status(ctx context.Context) ([]TypeStatus, error) {
	out, err := r.o.Registry.QuarantineStatus(ctx, r.typeNames())
	if err != nil {
		return nil, fmt.Errorf("backfill: status: %w", err)
	}
	return out, nil
}
