package backfill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/geoblob/geoblob/shared/dispatch"
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
	defer func() {
		p.r.log.InfoContext(ctx, "backfill sync dispatch", "phase", PhaseSync, "rounds", rep.Rounds,
			"claimed", rep.Claimed, "dispatched", rep.Dispatched, "window", p.r.o.Config.Window,
			"window_waits", rep.WindowWaits, "quarantined", rep.Quarantined, "budget_exhausted", p.exhausted.Load())
	}()
	total, err := p.startSync(ctx)
	if err != nil {
		return err
	}
	var mu sync.Mutex // guards rep and total (Send runs in every loop)
	lastQuarantine := p.r.o.Clock()
	w := dispatch.Window[registry.Claim]{
		Size:  int64(p.r.o.Config.Window),
		Batch: p.r.o.Config.ClaimSize,
		Loops: p.r.o.DispatchParallel,
		InFlight: func(ctx context.Context) (int64, error) {
			// Runs under the window's lock: park exhausted rows every
			// quarantineEvery, then count.
			if p.r.o.Clock().Sub(lastQuarantine) >= quarantineEvery {
				if err := p.quarantine(ctx); err != nil {
					return 0, err
				}
				lastQuarantine = p.r.o.Clock()
			}
			return p.r.o.Registry.CountStarted(ctx)
		},
		Claim: func(ctx context.Context, n int) ([]registry.Claim, bool, error) {
			// Read before the claim: a reconcile that registers its last
			// rows and ends between an empty claim and this check must not
			// end sync.
			registering := p.reconciling.Load()
			claims, err := p.r.claimDue(ctx, n)
			return claims, registering, err
		},
		Send: func(ctx context.Context, claims []registry.Claim) error {
			if err := p.send(ctx, claims); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Rounds++
			rep.Claimed += int64(len(claims))
			rep.Dispatched += int64(len(claims))
			total = max(total, rep.Dispatched)
			if total >= 0 {
				p.progress(PhaseSync, rep.Dispatched, total)
			}
			return nil
		},
		Wait:    p.wait,
		Expired: p.expired,
	}
	stats, err := w.Run(ctx)
	mu.Lock()
	rep.WindowWaits += stats.Waits
	mu.Unlock()
	if err != nil {
		return err
	}
	return p.quarantine(ctx)
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
