package backfill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
)

// Dispatcher sends sync requests to the queue the copy workers (onCreate)
// consume; *dispatch.SQS satisfies it, and the local stack plugs its SQS
// stand-in in.
type Dispatcher interface {
	// SendSync enqueues the requests. On error some may have been sent
	// (a duplicate request is harmless: workers take a claim over with a
	// compare-and-set on its generation).
	SendSync(ctx context.Context, reqs []events.SyncRequest) error
}

// WithDispatcher returns a Runner like r whose sync phase dispatches to d
// with at most window claims in flight (the local stack plugs its queue in
// this way; in AWS, Build does it from GEOBLOB_SYNC_QUEUE_URL).
func (r *Runner) WithDispatcher(d Dispatcher, window int) *Runner {
	o := r.o
	o.Dispatcher = d
	if window > 0 {
		o.Config.Window = window
	}
	return &Runner{o: o, log: r.log}
}

// quarantineEvery is how often a long dispatch pass parks rows that used
// up their attempts.
const quarantineEvery = 10 * time.Second

// dispatch is the sync phase when a Dispatcher is configured: it claims
// due rows (pending first, due failed rows next, fair across types, SKIP
// LOCKED, exactly as an in-process sync) and sends one sync request per
// claim to the workers, never letting the claims in flight (rows in state
// started: event copies, dispatched requests, in-process copies) exceed
// Config.Window, which is the workers' shared copy cap. When the window is
// full it waits; live events are then at most one window behind. It ends
// when nothing is due (and reconcile, running alongside, is done) or at
// the budget. A claim whose request is lost is recovered by the recover
// phase after the sync timeout. Options.DispatchParallel claim loops share
// the window (a claim-and-send round trip is mostly waiting on the
// database and on SQS).
func (p *pass) dispatch(ctx context.Context) error {
	rep := &p.rep.Sync
	d := &dispatcher{p: p, window: int64(max(p.r.o.Config.Window, 1)), lastQuarantine: p.r.o.Clock()}
	defer func() {
		p.r.log.InfoContext(ctx, "backfill sync dispatch", "phase", PhaseSync, "rounds", rep.Rounds,
			"claimed", rep.Claimed, "dispatched", rep.Dispatched, "window", p.r.o.Config.Window,
			"window_waits", rep.WindowWaits, "quarantined", rep.Quarantined, "budget_exhausted", p.exhausted.Load())
	}()
	var err error
	if d.total, err = p.startSync(ctx); err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, max(p.r.o.DispatchParallel, 1))
	)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.loop(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return p.quarantine(ctx)
}

// dispatcher is the state the claim loops of one dispatch phase share.
type dispatcher struct {
	p      *pass
	window int64

	mu             sync.Mutex // guards the fields below and p.rep.Sync
	reserved       int64      // rows being claimed right now (not yet counted as started)
	total          int64
	lastQuarantine time.Time
}

// loop claims and sends until nothing is due, the budget ends or an
// error occurs.
func (d *dispatcher) loop(ctx context.Context) error {
	p := d.p
	rep := &p.rep.Sync
	for !p.expired() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("backfill: dispatch: %w", err)
		}
		take, err := d.reserve(ctx)
		if err != nil {
			return err
		}
		if take == 0 {
			if !p.wait(ctx) {
				break
			}
			continue
		}
		// Read before the claim: a reconcile that registers its last rows
		// and ends between an empty claim and this check must not end sync.
		registering := p.reconciling.Load()
		claims, err := p.r.claimDue(ctx, int(take))
		d.release(take)
		if err != nil {
			return err
		}
		if len(claims) == 0 {
			if registering && p.wait(ctx) {
				continue // reconcile is still registering rows
			}
			break
		}
		if err := p.send(ctx, claims); err != nil {
			return err
		}
		d.mu.Lock()
		rep.Rounds++
		rep.Claimed += int64(len(claims))
		rep.Dispatched += int64(len(claims))
		d.total = max(d.total, rep.Dispatched)
		if d.total >= 0 {
			p.progress(PhaseSync, rep.Dispatched, d.total)
		}
		d.mu.Unlock()
	}
	return nil
}

// reserve returns how many rows this loop may claim now (0: the window is
// full), counting the claims in flight and what other loops are claiming;
// it also parks exhausted rows every quarantineEvery.
func (d *dispatcher) reserve(ctx context.Context) (int64, error) {
	p := d.p
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.r.o.Clock().Sub(d.lastQuarantine) >= quarantineEvery {
		if err := p.quarantine(ctx); err != nil {
			return 0, err
		}
		d.lastQuarantine = p.r.o.Clock()
	}
	inFlight, err := p.r.o.Registry.CountStarted(ctx)
	if err != nil {
		return 0, fmt.Errorf("backfill: dispatch: %w", err)
	}
	room := d.window - inFlight - d.reserved
	if room <= 0 {
		p.rep.Sync.WindowWaits++
		return 0, nil
	}
	take := min(room, int64(p.r.o.Config.ClaimSize))
	d.reserved += take
	return take, nil
}

// release ends a reservation once its rows are claimed (and so counted as
// started) or the claim failed.
func (d *dispatcher) release(n int64) {
	d.mu.Lock()
	d.reserved -= n
	d.mu.Unlock()
}

// send dispatches claims as sync requests. If sending fails, the claims
// are finished as failed (compare-and-set: a request that did get through
// and was taken over is left alone) so they come due again after the
// backoff instead of waiting for the stuck-claim timeout.
func (p *pass) send(ctx context.Context, claims []registry.Claim) error {
	reqs := make([]events.SyncRequest, len(claims))
	for i, c := range claims {
		reqs[i] = events.SyncRequest{DataType: c.DataType, Key: c.ObjectKey, Generation: c.Generation}
	}
	err := p.r.o.Dispatcher.SendSync(ctx, reqs)
	if err == nil {
		return nil
	}
	release := context.WithoutCancel(ctx)
	for _, c := range claims {
		if _, ferr := p.r.o.Registry.MarkFailed(release, c, "dispatch failed: "+err.Error(), false); ferr != nil {
			p.r.log.WarnContext(ctx, "backfill: release undispatched claim", "key", c.ObjectKey, "error", ferr)
		}
	}
	return fmt.Errorf("backfill: dispatch %d sync requests: %w", len(claims), err)
}

// wait sleeps for the poll interval; false when the budget or ctx ended.
func (p *pass) wait(ctx context.Context) bool {
	t := time.NewTimer(p.r.o.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	return !p.expired()
}
