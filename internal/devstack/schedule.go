package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/verify"
)

// Schedules are the local stand-in for the EventBridge Scheduler rules that
// invoke the backfill and verify functions in AWS: the event daemon runs
// one pass of each every interval, the first FirstRun after it starts, so
// events missed while the daemon was down (MinIO drops what it cannot
// deliver) are reconciled and new copies get verified. A zero interval
// turns that schedule off.
type Schedules struct {
	Backfill time.Duration
	Verify   time.Duration
	// FirstRun is the delay before the first pass of each (default 5 s).
	FirstRun time.Duration
	// Dispatcher, when set, makes backfill dispatch sync requests to it
	// (the local sync-request queue) instead of copying in process, with a
	// window of GEOBLOB_COPY_CONCURRENCY claims (inProcessSyncWindow).
	Dispatcher backfill.Dispatcher
	// VerifyDispatcher, when set, makes verify dispatch verification
	// requests to it (the local verification queue and its workers)
	// instead of checking in process, with a window of
	// VerifyQueueConcurrency x the queue's batch size claims.
	VerifyDispatcher verify.Dispatcher
}

// DefaultSchedules are the daemon's: both every minute, first after 5 s.
func DefaultSchedules() Schedules {
	return Schedules{Backfill: time.Minute, Verify: time.Minute, FirstRun: 5 * time.Second}
}

// backfillPass is the part of *backfill.Runner a schedule uses.
type backfillPass interface {
	Run(ctx context.Context, req backfill.Request) (backfill.Report, error)
}

// verifyPass is the part of *verify.Service a schedule uses.
type verifyPass interface {
	Run(ctx context.Context, ro verify.RunOptions) (verify.Report, error)
}

var (
	_ backfillPass = (*backfill.Runner)(nil)
	_ verifyPass   = (*verify.Service)(nil)
)

// Run builds the backfill and verify services from cfg and getenv (as
// their Lambda entry points do) and runs their passes on schedule until
// ctx ends. A failing pass is logged and the schedule goes on. opts go to
// app.Build of the backfill service (e.g. app.WithCopies).
func (sc Schedules) Run(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger, opts ...app.Option) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return sc.run(ctx, logger, []scheduledJob{
		{name: "backfill", interval: sc.Backfill, build: func(ctx context.Context) (func(context.Context), func(), error) {
			svc, err := app.BuildBackfill(ctx, cfg, getenv, logger, nil, opts...)
			if err != nil {
				return nil, nil, err
			}
			if sc.Dispatcher != nil {
				svc.Runner = svc.Runner.WithDispatcher(sc.Dispatcher, inProcessSyncWindow(cfg))
			}
			return func(ctx context.Context) { runBackfillPass(ctx, svc.Runner, logger) }, svc.Close, nil
		}},
		{name: "verify", interval: sc.Verify, build: func(ctx context.Context) (func(context.Context), func(), error) {
			svc, err := app.BuildVerify(ctx, cfg, getenv, logger)
			if err != nil {
				return nil, nil, err
			}
			if sc.VerifyDispatcher != nil {
				svc.Verifier = svc.Verifier.WithDispatcher(sc.VerifyDispatcher, VerifyQueueConcurrency*verifyQueueBatch)
			}
			return func(ctx context.Context) { runVerifyPass(ctx, svc, logger) }, svc.Close, nil
		}},
	})
}

// scheduledJob is one schedule: build returns its pass and what releases
// the pass's resources.
type scheduledJob struct {
	name     string
	interval time.Duration // <= 0: off
	build    func(ctx context.Context) (pass func(context.Context), closeFn func(), err error)
}

// run builds every job that is on before it starts any, so a failed build
// leaves nothing running, then runs the passes on schedule until ctx ends
// and returns after every schedule goroutine has stopped (and only then
// releases the jobs' resources).
func (sc Schedules) run(ctx context.Context, logger *slog.Logger, jobs []scheduledJob) error {
	if sc.FirstRun <= 0 {
		sc.FirstRun = 5 * time.Second
	}
	type ready struct {
		interval time.Duration
		pass     func(context.Context)
	}
	var runs []ready
	for _, j := range jobs {
		if j.interval <= 0 {
			continue
		}
		pass, closeFn, err := j.build(ctx)
		if err != nil {
			return fmt.Errorf("devstack: %s schedule: %w", j.name, err)
		}
		defer closeFn()
		runs = append(runs, ready{j.interval, pass})
	}
	if len(runs) == 0 {
		return nil
	}
	logger.Info("devstack: schedules started", "backfill_every", sc.Backfill, "verify_every", sc.Verify, "first_run_in", sc.FirstRun)
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, sc.FirstRun, r.interval, func() { r.pass(ctx) })
		}()
	}
	wg.Wait()
	return nil
}

// every calls fn after first, then every interval (never two at once; a
// pass longer than the interval delays the next), until ctx ends.
func every(ctx context.Context, first, interval time.Duration, fn func()) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
		t.Reset(interval)
	}
}

func runBackfillPass(ctx context.Context, r backfillPass, logger *slog.Logger) backfill.Report {
	rep, err := r.Run(ctx, backfill.Request{})
	attrs := []any{"function", "backfill", "trigger", "schedule", "elapsed", rep.Elapsed.Round(time.Millisecond),
		"recovered", rep.Recovered, "listed", rep.Reconcile.Listed, "registered", rep.Reconcile.Registered,
		"changed", rep.Reconcile.Changed, "deletes_queued", rep.Reconcile.DeletesQueued,
		"claimed", rep.Sync.Claimed, "synced", rep.Sync.Synced, "deleted", rep.Sync.Deleted,
		"failed", rep.Sync.Failed, "budget_exhausted", rep.BudgetExhausted}
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("devstack: scheduled backfill pass failed", append(attrs, "error", err)...)
	} else {
		logger.Info("devstack: scheduled backfill pass", attrs...)
	}
	return rep
}

func runVerifyPass(ctx context.Context, v verifyPass, logger *slog.Logger) verify.Report {
	rep, err := v.Run(ctx, verify.RunOptions{})
	attrs := []any{"function", "verify", "trigger", "schedule", "elapsed", rep.Elapsed.Round(time.Millisecond),
		"secondary_checked", rep.Secondary.Checked, "secondary_matched", rep.Secondary.Matched,
		"secondary_mismatched", rep.Secondary.Mismatched, "secondary_missing", rep.Secondary.Missing,
		"resynced", rep.Secondary.Resynced, "primary_checked", rep.Primary.Checked,
		"primary_changed", rep.Primary.Mismatched, "errors", rep.Secondary.Errors + rep.Primary.Errors,
		"bytes_read", rep.Secondary.BytesRead + rep.Primary.BytesRead, "dispatched", rep.Dispatched,
		"budget_exhausted", rep.BudgetExhausted}
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("devstack: scheduled verify pass failed", append(attrs, "error", err)...)
	} else {
		logger.Info("devstack: scheduled verify pass", attrs...)
	}
	return rep
}
