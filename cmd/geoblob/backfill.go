package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/config"
)

// runBackfill is `geoblob backfill [flags]`: one backfill pass against the
// local stack in dir (its database and buckets, plus any GEOBLOB_* tuning
// from the environment), with a progress bar and a summary. The flags
// after "backfill" are runBackfillCLI's own, so the stack directory comes
// from GEOBLOB_STACK_DIR (defaultDir). Wire it into run's switch with:
//
//	case "backfill":
//		return runBackfill(ctx, defaultDir(), args, stdout, stderr)
func runBackfill(ctx context.Context, dir string, args []string, stdout, stderr io.Writer) error {
	s, err := devstack.LoadSettings(dir)
	if err != nil {
		return err
	}
	// The stack's credentials reach the AWS clients through getenv
	// (config.Config.Credentials), not through the process environment.
	return runBackfillCLI(ctx, s.Getenv(os.Getenv), args, stdout, stderr)
}

// runBackfillCLI is the work of `geoblob backfill [flags]`: one pass (or passes until quiet)
// against the configuration read through getenv, with a progress bar per
// phase on stderr and a summary table on stdout. Flags:
//
//	-budget 10m            time budget of each pass
//	-phases recover,...    phases to run (default GEOBLOB_BACKFILL_PHASES)
//	-orphans off|report|delete
//	-resync-quarantined    send every quarantined row back to sync first
//	-relist                list the primary again within the relist interval
//	-until-quiet           repeat passes until one finds nothing to do
//	-max-passes 20         bound for -until-quiet
//	-progress=false        no progress bar
func runBackfillCLI(ctx context.Context, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geoblob backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	budget := fs.String("budget", "", "time budget of each pass (default GEOBLOB_BACKFILL_BUDGET)")
	phases := fs.String("phases", "", "comma-separated phases: recover, reconcile, sync, orphans")
	orphans := fs.String("orphans", "", "secondary objects without primary: off, report or delete")
	resync := fs.Bool("resync-quarantined", false, "send every quarantined row back to sync first")
	relist := fs.Bool("relist", false, "list the primary again now, even within GEOBLOB_BACKFILL_RELIST_INTERVAL of the last complete listing")
	untilQuiet := fs.Bool("until-quiet", false, "repeat passes until one finds nothing to do")
	maxPasses := fs.Int("max-passes", 20, "most passes with -until-quiet")
	showProgress := fs.Bool("progress", true, "show a progress bar on stderr")
	verbose := fs.Bool("v", false, "JSON logs to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req := backfill.Request{Budget: *budget, Orphans: backfill.OrphanMode(strings.ToLower(*orphans)), ResyncQuarantined: *resync, Relist: *relist}
	if *phases != "" {
		ps, err := backfill.ParsePhases(strings.Split(*phases, ","))
		if err != nil {
			return err
		}
		req.Phases = ps
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	}
	var bars *progressBars
	var progress func(backfill.Progress)
	if *showProgress {
		bars = &progressBars{out: stderr}
		progress = bars.update
	}
	svc, err := app.BuildBackfill(ctx, cfg, getenv, logger, progress)
	if err != nil {
		return err
	}
	defer svc.Close()
	start := time.Now()
	var rep backfill.Report
	if *untilQuiet {
		rep, err = svc.Runner.RunUntilQuiet(ctx, req, *maxPasses)
	} else {
		rep, err = svc.Runner.Run(ctx, req)
	}
	if bars != nil {
		bars.finish()
	}
	if werr := writeBackfillSummary(ctx, svc.Runner, stdout, rep, time.Since(start)); werr != nil && err == nil {
		err = werr
	}
	return err
}

// progressBars shows one bar per phase.
type progressBars struct {
	out   io.Writer
	mu    sync.Mutex
	phase backfill.Phase
	bar   *progressbar.ProgressBar
}

func (b *progressBars) update(p backfill.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == nil || p.Phase != b.phase {
		if b.bar != nil {
			_ = b.bar.Finish()
			fmt.Fprintln(b.out)
		}
		b.phase = p.Phase
		b.bar = progressbar.NewOptions64(p.Total,
			progressbar.OptionSetWriter(b.out),
			progressbar.OptionSetDescription(fmt.Sprintf("%-9s", p.Phase)),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unitOf(p.Phase)),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
	}
	if p.Total > 0 && b.bar.GetMax64() != p.Total {
		b.bar.ChangeMax64(p.Total)
	}
	_ = b.bar.Set64(p.Done)
}

func (b *progressBars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.out)
	}
}

func unitOf(p backfill.Phase) string {
	if p == backfill.PhaseSync {
		return "files"
	}
	return "objects"
}

// writeBackfillSummary prints a pass report, the cursors and the per-type backlog
// (pending, retried, quarantined rows).
func writeBackfillSummary(ctx context.Context, r *backfill.Runner, out io.Writer, rep backfill.Report, elapsed time.Duration) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	rc, sy, or := rep.Reconcile, rep.Sync, rep.Orphans
	fmt.Fprintf(tw, "backfill\t%s\tbudget exhausted: %v\n", elapsed.Round(time.Millisecond), rep.BudgetExhausted)
	fmt.Fprintf(tw, "recover\trecovered %d\t\n", rep.Recovered)
	skipped := ""
	if rc.Skipped != "" {
		skipped = " (skipped: " + rc.Skipped + ")"
	}
	fmt.Fprintf(tw, "reconcile\tsource %s%s\tlisted %d, selected %d, registered %d, changed %d, orphan rows %d, deletes %d, pass complete %v\n",
		rc.Source, skipped, rc.Listed, rc.Selected, rc.Registered, rc.Changed, rc.OrphanRows, rc.DeletesQueued, rc.PassComplete)
	rate := ""
	if s := elapsed.Seconds(); s > 0 && sy.Synced > 0 {
		rate = fmt.Sprintf(" (%.0f files/s over the run)", float64(sy.Synced)/s)
	}
	fmt.Fprintf(tw, "sync\tclaimed %d in %d rounds\tsynced %d%s, deleted %d, missing on primary %d, failed %d, other %d, newly quarantined %d\n",
		sy.Claimed, sy.Rounds, sy.Synced, rate, sy.Deleted, sy.Missing, sy.Failed, sy.Other, sy.Quarantined)
	if sy.Dispatched > 0 || sy.WindowWaits > 0 {
		fmt.Fprintf(tw, "dispatch\tsent %d sync requests to the workers\twindow full %d times\n", sy.Dispatched, sy.WindowWaits)
	}
	if or.Mode != "" && or.Mode != backfill.OrphansOff {
		fmt.Fprintf(tw, "orphans\tmode %s\tlisted %d, found %d, deleted %d\n", or.Mode, or.Listed, or.Found, or.Deleted)
	}
	if rep.Resynced > 0 {
		fmt.Fprintf(tw, "resync\t%d quarantined rows sent back to sync\t\n", rep.Resynced)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("backfill: summary: %w", err)
	}
	st, err := r.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data type\tpending\tfailed (retrying)\tquarantined\t")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", s.DataType, s.Pending, s.Failed, s.Quarantined)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("backfill: summary: %w", err)
	}
	cs, err := r.Cursors(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		fmt.Fprintf(out, "cursor %s: passes completed %d, current pass listed %d, position %s\n",
			c.Name, c.PassesCompleted, c.Listed, c.Position)
	}
	return nil
}
