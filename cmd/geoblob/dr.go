package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/restore"
)

// drUsage is the disaster-recovery part of the command list in usage.
const drUsage = `  brake         delete brake: status, or release|discard held deletes, reset
`

// drTarget says where a disaster-recovery command acts: the local stack in
// dir, or (-env) the deployment the process environment describes
// (GEOBLOB_* variables and the operator's own AWS credentials).
type drTarget struct {
	dir    *string
	useEnv *bool
}

func drTargetFlags(fs *flag.FlagSet, dir *string) drTarget {
	return drTarget{dir: dir, useEnv: fs.Bool("env", false,
		"act on the deployment described by the GEOBLOB_* environment (and the default AWS credential chain) instead of the local stack")}
}

// build wires the App for the target.
func (t drTarget) build(ctx context.Context, logger *slog.Logger) (*app.App, error) {
	getenv := os.Getenv
	if !*t.useEnv {
		abs, err := filepath.Abs(*t.dir)
		if err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		s, err := devstack.LoadSettings(abs)
		if err != nil {
			return nil, err
		}
		getenv = s.Getenv(os.Getenv)
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return app.Build(ctx, cfg, logger)
}

// operator names the person running the CLI in the audit trail.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

// runBrake is `geoblob brake [status|release|discard|reset] [-type T]
// [-prefix P] [-dry-run] [-json]`.
func runBrake(ctx context.Context, fs *flag.FlagSet, dir *string, args []string, stdout io.Writer, logger *slog.Logger) error {
	target := drTargetFlags(fs, dir)
	typ := fs.String("type", "", "release/discard: only held deletes of this data type")
	prefix := fs.String("prefix", "", "release/discard: only held deletes of keys under this prefix")
	dry := fs.Bool("dry-run", false, "release/discard: only count the held deletes that would change")
	asJSON := fs.Bool("json", false, "status as JSON")
	action, err := parseWithAction(fs, args, "status")
	if err != nil {
		return err
	}
	a, err := target.build(ctx, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	reg := a.Registry
	f := registry.HoldFilter{DataType: *typ, Prefix: *prefix}
	switch action {
	case "status":
		st, err := reg.BrakeStatus(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		return writeBrakeStatus(stdout, st, a.Config.Brake)
	case "release", "discard":
		n, err := reg.ResolveHeld(ctx, registry.HoldAction(action), f, operator(), *dry)
		if err != nil {
			return err
		}
		if *dry {
			fmt.Fprintf(stdout, "%s would change %d held deletes (dry run)\n", action, n)
			return nil
		}
		done, what := "released", "they reach the secondary with the next sync (backfill pass or event)"
		if action == "discard" {
			done, what = "discarded", "the secondary keeps the objects; the rows are synced tombstones"
		}
		fmt.Fprintf(stdout, "%s %d held deletes: %s\n", done, n, what)
		return nil
	case "reset":
		if err := reg.ResetBrake(ctx, operator()); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "delete brake re-armed (held deletes stay held)")
		return nil
	}
	return fmt.Errorf("brake: unknown action %q (status, release, discard, reset)", action)
}

// parseWithAction parses flags given before and after one positional
// action word (def when there is none).
func parseWithAction(fs *flag.FlagSet, args []string, def string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return def, nil
	}
	action := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return action, nil
}

// writeBrakeStatus prints the brake state with a hint for the operator.
func writeBrakeStatus(w io.Writer, st registry.BrakeStatus, p registry.BrakePolicy) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Tripped) == 0 {
		fmt.Fprintf(tw, "delete brake\tarmed (window %s, max %d deletes, %d per type, %.1f%% of rows beyond %d, grace %s)\n",
			p.Window, p.MaxDeletes, p.TypeMaxDeletes, 100*p.MaxFraction, p.MinDeletes, p.Grace)
	}
	for _, sc := range st.Tripped {
		fmt.Fprintf(tw, "delete brake\tTRIPPED\tscope %s since %s: %s\n", sc.Scope, sc.TrippedAt.UTC().Format(time.RFC3339), sc.Reason)
	}
	fmt.Fprintf(tw, "held deletes\t%d\t%s\n", st.HeldTotal, humanize.IBytes(uint64(max(st.HeldBytes, 0))))
	for typ, n := range st.Held {
		fmt.Fprintf(tw, "\t%s\t%d\n", typ, n)
	}
	if len(st.Tripped) > 0 || st.HeldTotal > 0 {
		fmt.Fprintln(tw, "fix\tcheck the primary; then `geoblob brake release` (deletes were intended) or `geoblob brake discard` (keep the secondary copies; restore them with `geoblob restore`)")
	}
	return tw.Flush()
}

// restoreUsage is the restore line of the command list.
const restoreUsage = `  restore       copy objects from the secondary back to the primary (dry run unless -execute)
`

// runRestore is `geoblob restore [-key K | -prefix P | -type T]
// [-deleted-from T1 -deleted-to T2 | -as-of T | -written-after T]
// [-execute] [-journal FILE] [-json]`.
func runRestore(ctx context.Context, fs *flag.FlagSet, dir *string, args []string, stdout, stderr io.Writer, logger *slog.Logger) error {
	target := drTargetFlags(fs, dir)
	var sel restore.Selector
	fs.StringVar(&sel.Key, "key", "", "restore this one key")
	fs.StringVar(&sel.Prefix, "prefix", "", "restore keys under this prefix")
	fs.StringVar(&sel.DataType, "type", "", "restore objects of this data type")
	from := fs.String("deleted-from", "", "restore objects deleted on the primary from this time (RFC 3339) ...")
	to := fs.String("deleted-to", "", "... until this time (exclusive)")
	asOf := fs.String("as-of", "", "restore every object changed after this time to the version the secondary held then")
	after := fs.String("written-after", "", "failback: copy objects written to the secondary after this time (their current version)")
	execute := fs.Bool("execute", false, "restore (default: print the plan only)")
	journal := fs.String("journal", "geoblob-restore.journal", "execute: file of restored keys; a rerun with it resumes")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	for _, t := range []struct {
		flag, v string
		dst     *time.Time
	}{{"deleted-from", *from, &sel.DeletedFrom}, {"deleted-to", *to, &sel.DeletedTo}, {"as-of", *asOf, &sel.AsOf}, {"written-after", *after, &sel.WrittenAfter}} {
		if t.v == "" {
			continue
		}
		if *t.dst, err = time.Parse(time.RFC3339, t.v); err != nil {
			return fmt.Errorf("-%s: %w", t.flag, err)
		}
	}
	a, err := target.build(ctx, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	r := &restore.Restorer{Registry: a.Registry, Primary: a.Primary, Secondary: a.Secondary, Catalog: a.Catalog, Logger: logger}
	plan, err := r.Plan(ctx, sel)
	if err != nil {
		return err
	}
	if *asJSON && !*execute {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	writePlan(stdout, plan)
	if !*execute {
		fmt.Fprintln(stdout, "dry run: nothing written; add -execute to restore")
		return nil
	}
	f, err := os.OpenFile(*journal, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	res, err := r.Execute(ctx, plan, restore.ExecOptions{Journal: f, Actor: operator(), Progress: func(p restore.Progress) {
		fmt.Fprintf(stderr, "\r%d/%d objects, %s of %s (%d already done)   ", p.Done+p.Skipped, p.Total,
			humanize.IBytes(uint64(p.Bytes)), humanize.IBytes(uint64(max(p.BytesPlanned, 0))), p.Skipped)
	}})
	fmt.Fprintln(stderr)
	if err != nil {
		return fmt.Errorf("%w (restored %d; rerun the same command to resume from %s)", err, res.Restored, *journal)
	}
	fmt.Fprintf(stdout, "restored %d objects (%s), each SHA-256 verified on the primary; %d were already done\n",
		res.Restored, humanize.IBytes(uint64(res.Bytes)), res.Skipped)
	return nil
}

// writePlan prints a plan: counts, bytes, skipped reasons and the objects.
func writePlan(w io.Writer, p restore.Plan) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "plan\t%d objects\t%s\n", p.Objects, humanize.IBytes(uint64(max(p.Bytes, 0))))
	for reason, n := range p.Skipped {
		fmt.Fprintf(tw, "skipped\t%d\t%s\n", n, reason)
	}
	for _, it := range p.Items {
		fmt.Fprintf(tw, "%s\t%s\tversion %s\t%s\t%s\n", it.DataType, it.Key, it.VersionID, humanize.IBytes(uint64(max(it.Size, 0))), it.Reason)
	}
	_ = tw.Flush()
}
