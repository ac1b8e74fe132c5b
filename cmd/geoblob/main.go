// Command geoblob runs geoblob's local stack: `up`, `down`, `status`, `demo`,
// `cp` and `rm` against the primary region, `backfill` and `verify` passes,
// and `serve-events` (the event daemon `up` starts in the background: the
// webhook receiver, its spool, the SQS-style delivery to the handler and
// the backfill/verify schedules). All the work is in internal/devstack,
// shared/backfill and shared/verify; this file only parses flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/internal/toolbin"
	"github.com/geoblob/geoblob/shared/config"
)

const usage = `usage: geoblob <command> [flags]

commands:
  up            start the local stack (PostgreSQL, two MinIO regions, event delivery)
  down          stop the local stack (state is kept)
  status        per-type replication table from the registry
  demo          start the stack, upload sample packages of every type, show them replicated
  cp FILE KEY   upload FILE to the primary bucket under KEY
  rm KEY        delete KEY from the primary bucket
  env           print the shell exports of the running stack
  backfill      one backfill pass: register what no event announced, sync what is due
` + verifyUsage + drUsage + restoreUsage + `  check         health check of the local stack (Geo's gitlab:geo:check): one line per check, exit 1 on failure
  localstack    steps of make deploy-local / make smoke-local (secret, migrate, smoke)
` + apiUsage + `  serve-events  run the event daemon in the foreground (started by up)

Every command takes -dir (default $GEOBLOB_STACK_DIR or <repo>/.local/stack).
Run 'geoblob <command> -h' for its flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "geoblob:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return flag.ErrHelp
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("geoblob "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", defaultDir(), "state directory of the stack")
	verbose := fs.Bool("v", false, "log library progress to stderr")
	logger := func() *slog.Logger {
		if *verbose {
			return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		return slog.New(slog.DiscardHandler)
	}
	switch cmd {
	case "up":
		parse := stackFlags(fs, dir)
		s, daemon, err := parse(args)
		if err != nil {
			return err
		}
		_, err = devstack.UpAndPrint(ctx, s, daemon, stdout, logger())
		return err
	case "down":
		if err := fs.Parse(args); err != nil {
			return err
		}
		return devstack.Down(ctx, *dir, stdout)
	case "status", "list", "resync", "reverify", "console", "dr-report":
		return runAPICommand(ctx, cmd, fs, dir, args, stdout, logger())
	case "env":
		if err := fs.Parse(args); err != nil {
			return err
		}
		s, err := devstack.LoadSettings(*dir)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, s.EnvFileContent())
		return err
	case "demo":
		parse := stackFlags(fs, dir)
		timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for replication")
		extra := fs.Int("extra", 3, "files per data type beyond its example keys")
		bigMiB := fs.Int("big-mib", 40, "size of the one large (multipart) file in MiB; 0 leaves it out")
		s, daemon, err := parse(args)
		if err != nil {
			return err
		}
		return devstack.Demo(ctx, devstack.DemoOptions{
			Settings: s, Events: daemon,
			Timeout: *timeout, ExtraPerType: *extra, BigSize: *bigMiB << 20, Functions: daemon.Functions,
			Out: stdout, Logger: logger(),
		})
	case "cp":
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 2 {
			return fmt.Errorf("cp needs FILE and KEY, e.g. geoblob cp ./app.jar maven/com/example/app/2.0.0/app-2.0.0.jar")
		}
		return devstack.Copy(ctx, *dir, fs.Arg(0), fs.Arg(1), stdout)
	case "rm":
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("rm needs KEY, e.g. geoblob rm maven/com/example/app/2.0.0/app-2.0.0.jar")
		}
		return devstack.Remove(ctx, *dir, fs.Arg(0), stdout)
	case "backfill":
		// The flags after "backfill" are runBackfillCLI's; -dir is ours.
		d, rest := cutDirArg(args, *dir)
		return runBackfill(ctx, d, rest, stdout, stderr)
	case "verify":
		return runVerify(ctx, fs, dir, args, stdout, logger())
	case "check":
		if err := fs.Parse(args); err != nil {
			return err
		}
		rep, err := devstack.Check(ctx, *dir, stdout, logger())
		if err != nil {
			return err
		}
		if !rep.OK {
			return fmt.Errorf("%d of %d health checks failed", len(rep.Failed()), len(rep.Checks))
		}
		return nil
	case "localstack":
		return runLocalStack(ctx, args, stdout, stderr)
	case "brake":
		return runBrake(ctx, fs, dir, args, stdout, logger())
	case "restore":
		return runRestore(ctx, fs, dir, args, stdout, stderr, logger())
	case "serve-events":
		listen := fs.String("listen", "127.0.0.1:9300", "address to receive MinIO webhook notifications on")
		spool := fs.String("spool", "", "spool directory (default <dir>/events-spool)")
		dlq := fs.String("dead-letters", "", "dead-letter directory (default <dir>/events-dlq)")
		batch := fs.Int("batch-size", 10, "most messages per handler invocation")
		conc := fs.Int("concurrency", 2, "most handler invocations in flight")
		maxReceives := fs.Int("max-receives", 5, "deliveries of a message before it goes to the dead-letter directory")
		visibility := fs.Duration("visibility", 2*time.Second, "visibility timeout after a message's first failure (doubles per failure, max 1m)")
		console := fs.String("console", "", "serve the operator console on this 127.0.0.1 address (empty: none)")
		sched := scheduleFlags(fs)
		fns := functionFlags(fs)
		if err := fs.Parse(args); err != nil {
			return err
		}
		s, err := devstack.LoadSettings(*dir)
		if err != nil {
			return fmt.Errorf("serve-events needs the stack's settings (its events token): %w", err)
		}
		if *spool == "" {
			*spool = s.SpoolDir()
		}
		if *dlq == "" {
			*dlq = s.DeadLetterDir()
		}
		cfg, err := config.FromEnv(os.Getenv)
		if err != nil {
			return err
		}
		log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
		return devstack.ServeEvents(ctx, devstack.ServeOptions{
			Addr: *listen, Token: s.EventsToken, Config: cfg, Getenv: os.Getenv, Logger: log, Schedules: sched.get(), ConsoleAddr: *console,
			Functions: fns.get(), FunctionLogDir: s.FunctionLogDir(),
			Queue: sqsspool.QueueOptions{Dir: *spool, DeadLetterDir: *dlq, BatchSize: *batch, Concurrency: *conc,
				MaxReceives: *maxReceives, Visibility: *visibility},
		})
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// cutDirArg returns the value of a -dir flag in args (before parsing;
// default def) and args without it.
func cutDirArg(args []string, def string) (string, []string) {
	dir := def
	var rest []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		switch {
		case strings.HasPrefix(a, "dir=") && a != args[i]:
			dir = strings.TrimPrefix(a, "dir=")
		case a == "dir" && a != args[i] && i+1 < len(args):
			dir = args[i+1]
			i++
		default:
			rest = append(rest, args[i])
		}
	}
	return dir, rest
}

type schedules struct{ backfill, verify, first *time.Duration }

// scheduleFlags are the EventBridge-Scheduler stand-ins of the event daemon.
// stackFlags registers on fs the flags of the commands that start the local
// stack (up, demo: ports, schedules, functions); the function it returns
// parses args and returns the stack's settings (state in *dir) and the
// daemon to start: this binary with the chosen schedules and functions.
func stackFlags(fs *flag.FlagSet, dir *string) func(args []string) (devstack.Settings, devstack.Daemon, error) {
	ports := portFlags(fs)
	sched := scheduleFlags(fs)
	fns := functionFlags(fs)
	return func(args []string) (devstack.Settings, devstack.Daemon, error) {
		if err := fs.Parse(args); err != nil {
			return devstack.Settings{}, devstack.Daemon{}, err
		}
		s, err := settings(*dir, ports, fs)
		if err != nil {
			return devstack.Settings{}, devstack.Daemon{}, err
		}
		exe, err := os.Executable()
		if err != nil {
			return devstack.Settings{}, devstack.Daemon{}, fmt.Errorf("locate own binary: %w", err)
		}
		return s, devstack.Daemon{Executable: exe, Schedules: sched.get(), Functions: fns.get()}, nil
	}
}

func scheduleFlags(fs *flag.FlagSet) schedules {
	def := devstack.DefaultSchedules()
	return schedules{
		backfill: fs.Duration("backfill-every", def.Backfill, "event daemon: run a backfill pass this often (0: never)"),
		verify:   fs.Duration("verify-every", def.Verify, "event daemon: run a verify pass this often (0: never)"),
		first:    fs.Duration("first-run", def.FirstRun, "event daemon: delay before the first scheduled passes"),
	}
}

func (s schedules) get() devstack.Schedules {
	return devstack.Schedules{Backfill: *s.backfill, Verify: *s.verify, FirstRun: *s.first}
}

type functions struct{ dir, emulator *string }

// functionFlags choose between the function binaries under the emulator
// (make up/demo pass -functions .local/lambdas) and in-process handlers.
func functionFlags(fs *flag.FlagSet) functions {
	return functions{
		dir:      fs.String("functions", "", "run the Lambda function binaries in DIR/<name>/bootstrap under aws-lambda-rie (make lambdas LAMBDA_OUT=DIR); empty: in-process handlers"),
		emulator: fs.String("emulator", "", "aws-lambda-rie binary (default $GEOBLOB_RIE_BIN or .local/bin/aws-lambda-rie)"),
	}
}

func (f functions) get() devstack.FunctionsOptions {
	dir := *f.dir
	if dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	return devstack.FunctionsOptions{Dir: dir, Emulator: *f.emulator}
}

type ports struct{ pg, primary, secondary, events, console *int }

func portFlags(fs *flag.FlagSet) ports {
	return ports{
		pg:        fs.Int("pg-port", devstack.DefaultPostgresPort, "PostgreSQL port"),
		primary:   fs.Int("primary-port", devstack.DefaultPrimaryPort, "primary region MinIO port"),
		secondary: fs.Int("secondary-port", devstack.DefaultSecondaryPort, "secondary region MinIO port"),
		events:    fs.Int("events-port", devstack.DefaultEventsPort, "event receiver port"),
		console:   fs.Int("console-port", devstack.DefaultConsolePort, "operator console port (served by the event daemon)"),
	}
}

// settings returns the recorded settings of the stack in dir (or defaults
// when there are none) with the port flags given on the command line applied.
func settings(dir string, p ports, fs *flag.FlagSet) (devstack.Settings, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return devstack.Settings{}, fmt.Errorf("state dir: %w", err)
	}
	s, err := devstack.LoadSettings(abs)
	if err != nil {
		s = devstack.DefaultSettings(abs)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "pg-port":
			s.Ports.Postgres = *p.pg
		case "primary-port":
			s.Ports.Primary = *p.primary
		case "secondary-port":
			s.Ports.Secondary = *p.secondary
		case "events-port":
			s.Ports.Events = *p.events
		case "console-port":
			s.Ports.Console = *p.console
		}
	})
	return s, nil
}

// defaultDir is $GEOBLOB_STACK_DIR, else .local/stack under the module root
// (the nearest directory with a go.mod), else under the working directory.
func defaultDir() string {
	if d := os.Getenv("GEOBLOB_STACK_DIR"); d != "" {
		return d
	}
	if root, ok := toolbin.ModuleRoot(); ok {
		return filepath.Join(root, ".local", "stack")
	}
	if wd, err := os.Getwd(); err == nil {
		return filepath.Join(wd, ".local", "stack")
	}
	return filepath.Join(".local", "stack")
}
