package backfill

import (
	"context"
	"errors"
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

// leaseExpiryEvery is how often a long dispatch pass deletes expired
// dispatch leases.
const leaseExpiryEvery = 10 * time.Second

// windowRecount is how old the dispatcher's count of the work in flight
// may get while the requests it sent since keep it under the window (so
// other claimers' work, such as event copies, is seen within it).
const windowRecount = time.Second

// dispatch is the sync phase when a Dispatcher is configured. It reads due
// rows (pending first, due failed rows next, fair across types) without
// claiming them: each row it sends gets a dispatch lease, and the worker
// that receives the request claims the row with a compare-and-set on its
// state (registry.Store.ClaimRequested), ending the lease. The claim
// writes thus run in the workers, in parallel, and the dispatcher writes
// one narrow lease row per request instead of claiming the registry row.
// It never lets the work in flight (rows in state started: event copies,
// requests being worked on, in-process copies; plus live leases: requests
// queued) exceed Config.Window, which is the workers' shared copy cap.
// When the window is full it waits; live events are then at most one
// window behind. It ends when nothing is due (and reconcile, running
// alongside, is done) or at the budget. A request that is lost (its lease
// expires after Config.DispatchLease) is sent again by a later pass; a
// worker that dies after claiming leaves a started row, which the recover
// phase fails after the sync timeout. Options.DispatchParallel loops share
// the window (reads are serialized by the scan; sending is mostly waiting
// on SQS).
func (p *pass) dispatch(ctx context.Context) error {
	rep := &p.rep.Sync
	defer func() {
		p.r.log.InfoContext(ctx, "backfill sync dispatch", "phase", PhaseSync, "rounds", rep.Rounds,
			"claimed", rep.Claimed, "dispatched", rep.Dispatched, "window", p.r.o.Config.Window,
			"window_waits", rep.WindowWaits, "quarantined", rep.Quarantined, "budget_exhausted", p.exhausted.Load())
	}()
	reg, lease := p.r.o.Registry, p.r.o.Config.DispatchLease
	if _, err := reg.ExpireLeases(ctx, lease); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	// Expired leases are deleted beside the dispatch loops. Rows that used
	// up their attempts are never sent (the scan skips them); they are
	// parked when the phase ends, which can take a scan of the failed rows
	// (seconds on a large registry with many), not in front of or between
	// the dispatch rounds.
	expiryCtx, stopExpiry := context.WithCancel(ctx)
	expiryDone := make(chan error, 1)
	go func() { expiryDone <- p.expireLeases(expiryCtx, lease) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopExpiry()
		return <-expiryDone
	}
	defer func() { _ = stop() }()
	total := p.syncTotal(ctx)
	scan := reg.NewDueScan(p.r.typeNames(), lease, p.r.o.Config.MaxAttempts)
	var mu sync.Mutex // guards rep and total (Send runs in every loop)
	w := dispatch.Window[registry.DueRequest]{
		Size:     int64(p.r.o.Config.Window),
		Batch:    p.r.o.Config.ClaimSize,
		Loops:    p.r.o.DispatchParallel,
		InFlight: func(ctx context.Context) (int64, error) { return reg.CountDispatched(ctx, lease) },
		Recount:  windowRecount,
		Claim: func(ctx context.Context, n int) ([]registry.DueRequest, bool, error) {
			// Read before the scan: a reconcile that registers its last
			// rows and ends between an empty scan and this check must not
			// end sync.
			registering := p.reconciling.Load()
			reqs, err := scan.Next(ctx, n)
			if err != nil {
				return nil, false, fmt.Errorf("backfill: dispatch scan: %w", err)
			}
			return reqs, registering, nil
		},
		Send: func(ctx context.Context, due []registry.DueRequest) error {
			if err := p.send(ctx, due); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Rounds++
			rep.Claimed += int64(len(due))
			rep.Dispatched += int64(len(due))
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
	if err := errors.Join(err, stop()); err != nil {
		return err
	}
	return p.quarantine(ctx)
}

// expireLeases deletes expired dispatch leases every leaseExpiryEvery
// until ctx ends.
func (p *pass) expireLeases(ctx context.Context, lease time.Duration) error {
	for {
		t := time.NewTimer(leaseExpiryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if _, err := p.r.o.Registry.ExpireLeases(ctx, lease); err != nil && ctx.Err() == nil {
			return fmt.Errorf("backfill: %w", err)
		}
	}
}

// send dispatches leased rows as sync requests. If sending fails, their
// leases end so the rows are due again at once (a request that did get
// through is then a duplicate, which its worker's compare-and-set makes
// harmless).
func (p *pass) send(ctx context.Context, due []registry.DueRequest) error {
	reqs := make([]events.SyncRequest, len(due))
	for i, d := range due {
		reqs[i] = events.SyncRequest{DataType: d.DataType, Key: d.ObjectKey, Generation: d.Generation}
	}
	err := p.r.o.Dispatcher.SendSync(ctx, reqs)
	if err == nil {
		return nil
	}
	ids := make([]int64, len(due))
	for i, d := range due {
		ids[i] = d.ID
	}
	if rerr := p.r.o.Registry.ReleaseLeases(context.WithoutCancel(ctx), ids); rerr != nil {
		p.r.log.WarnContext(ctx, "backfill: release leases of unsent requests", "requests", len(ids), "error", rerr)
	}
	return fmt.Errorf("backfill: dispatch %d sync requests: %w", len(due), err)
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
