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
		if err := exportCredentials(s); err != nil {
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
