package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/pgcluster"
)

// EventsRunner starts event delivery for a stack whose registry is ready.
// When StartEvents returns, an sqsspool.Receiver must be listening on s.EventsAddr(),
// because MinIO checks its webhook target when it starts.
type EventsRunner interface {
	// StartEvents starts (or finds running) the receiver and describes it
	// in one line for the user.
	StartEvents(ctx context.Context, s Settings) (string, error)
}

// Migrator applies the registry schema; an EventsRunner that runs the
// functions as processes migrates through the migrate function.
type Migrator interface {
	Migrate(ctx context.Context, s Settings) error
}

// UpOptions configure Up.
type UpOptions struct {
	// Settings describe the stack; Dir is created if missing.
	Settings Settings
	// Events starts the event receiver: a Daemon for the CLI, an InProcess
	// receiver for tests. Required.
	Events EventsRunner
	// MinioBinary overrides minioproc.FindBinary.
	MinioBinary string
	// Detach keeps the MinIO processes running after this process exits
	// (the CLI); tests leave it false so nothing outlives them.
	Detach bool
	// Out receives one progress line per component; nil discards.
	Out io.Writer
	// Logger receives library logs; nil discards.
	Logger *slog.Logger
}

// Stack is a running local stack.
type Stack struct {
	Settings Settings
	pg       *pgcluster.Cluster
	minio    map[Side]*minioproc.Server
}

// Postgres returns the stack's PostgreSQL cluster (to restart it in fault tests).
func (s *Stack) Postgres() *pgcluster.Cluster { return s.pg }

// Minio returns the MinIO server of one region.
func (s *Stack) Minio(side Side) *minioproc.Server { return s.minio[side] }

// stateDirMode is the mode of the state directory: 0700, owner only. Run
// as root, PostgreSQL runs as the postgres user (initdb refuses root),
// which must traverse the state dir to its data dir: 0711 then, which lists
// nothing (the files in it are 0600 and the spool's directories 0700).
func stateDirMode() os.FileMode {
	if os.Geteuid() == 0 {
		return 0o711
	}
	return 0o700
}

// Up starts whatever part of the stack is not running yet, in dependency
// order: PostgreSQL (with the registry schema migrated), the event receiver,
// the two MinIO processes with the webhook target, the buckets and the
// primary's notification configuration. It then writes stack.json and env.
// Components already running are left alone, so Up is idempotent.
func Up(ctx context.Context, opts UpOptions) (*Stack, error) {
	s := opts.Settings
	if opts.Events == nil {
		return nil, errors.New("devstack: UpOptions.Events is required")
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	// The state dir holds credentials and the events token: owner only.
	if err := os.MkdirAll(s.Dir, stateDirMode()); err != nil {
		return nil, fmt.Errorf("devstack: state dir: %w", err)
	}
	if err := os.Chmod(s.Dir, stateDirMode()); err != nil {
		return nil, fmt.Errorf("devstack: state dir: %w", err)
	}
	s, err := s.withEventsToken()
	if err != nil {
		return nil, err
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	st := &Stack{Settings: s, minio: map[Side]*minioproc.Server{}}

	// 1. PostgreSQL and the registry schema.
	was := "started"
	if _, err := pgcluster.Open(ctx, s.PostgresDir(), logger); err == nil {
		was = "already running"
	}
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: s.PostgresDir(), Port: s.Ports.Postgres, FsyncOff: true, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("devstack: postgres: %w", err)
	}
	st.pg = pg
	if err := ensureDatabase(ctx, pg, s.Database); err != nil {
		return nil, err
	}
	if m, ok := opts.Events.(Migrator); ok {
		err = m.Migrate(ctx, s)
	} else {
		err = migrate(ctx, s.DatabaseURL())
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "postgres   %-15s %s (registry schema migrated), data in %s\n", was, s.DatabaseURL(), s.PostgresDir())

	// 2. The event receiver, listening before MinIO starts.
	desc, err := opts.Events.StartEvents(ctx, s)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "events     %s\n", desc)

	// 3. MinIO, one process per region; only the primary notifies.
	for _, side := range []Side{Primary, Secondary} {
		srv, was, err := st.startMinio(ctx, opts, side, logger)
		if err != nil {
			return nil, err
		}
		st.minio[side] = srv
		b := s.Bucket(side)
		if err := b.ensure(ctx); err != nil {
			return nil, err
		}
		note := ""
		if side == Primary {
			if err := b.setNotifications(ctx, true); err != nil {
				return nil, err
			}
			note = ", notifications -> " + s.EventsURL()
		}
		fmt.Fprintf(out, "minio      %-15s %s region %s, bucket %s%s\n", was, srv.Endpoint(), regionOf(s, side), b.Name(), note)
	}
	return st, nil
}

func regionOf(s Settings, side Side) string {
	if side == Secondary {
		return s.SecondaryRegion
	}
	return s.PrimaryRegion
}

func (st *Stack) startMinio(ctx context.Context, opts UpOptions, side Side, logger *slog.Logger) (*minioproc.Server, string, error) {
	s := st.Settings
	dir := s.MinioDir(string(side))
	if srv, err := minioproc.Attach(dir); err == nil {
		return srv, "already running", nil
	}
	port := s.Ports.Primary
	var hooks, tokens map[string]string
	if side == Primary {
		hooks = map[string]string{WebhookID: s.EventsURL()}
		tokens = map[string]string{WebhookID: s.EventsToken}
	} else {
		port = s.Ports.Secondary
	}
	srv, err := minioproc.Start(ctx, minioproc.Options{
		Dir:       dir,
		Address:   fmt.Sprintf("127.0.0.1:%d", port),
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
		Region:    regionOf(s, side),
		Webhooks:  hooks,
		// The receiver refuses POSTs without the stack's token.
		WebhookAuthTokens: tokens,
		// No MinIO queue: events are posted at once (MinIO replays its
		// queue only every 3 s); the receiver's spool is the durable queue.
		// Sync events: a PUT is answered after its event is spooled.
		NoWebhookQueue: true,
		SyncEvents:     true,
		Binary:         opts.MinioBinary,
		Detach:         opts.Detach,
		Logger:         logger,
	})
	if err != nil {
		return nil, "", fmt.Errorf("devstack: minio %s: %w", side, err)
	}
	return srv, "started", nil
}

func ensureDatabase(ctx context.Context, pg *pgcluster.Cluster, name string) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("devstack: connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("devstack: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if err := pg.CreateDatabase(ctx, name); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// Close stops the MinIO processes and PostgreSQL that Up started or attached
// to (the event receiver belongs to its runner). Tests call it; the CLI uses Down.
func (st *Stack) Close(ctx context.Context) error {
	var errs []error
	for _, side := range []Side{Primary, Secondary} {
		if srv := st.minio[side]; srv != nil {
			errs = append(errs, srv.Stop())
		}
	}
	if st.pg != nil {
		errs = append(errs, st.pg.Stop(ctx))
	}
	return errors.Join(errs...)
}

// Down stops the stack recorded in dir: MinIO first (so no new events are
// produced; queued ones stay on disk), then the event daemon, then
// PostgreSQL. It prints what it stopped; data stays in dir.
func Down(ctx context.Context, dir string, out io.Writer) error {
	s, err := LoadSettings(dir)
	if err != nil {
		if errors.Is(err, ErrNotUp) {
			fmt.Fprintf(out, "nothing to stop: no stack in %s\n", dir)
			return nil
		}
		return err
	}
	var errs []error
	for _, side := range []Side{Primary, Secondary} {
		srv, err := minioproc.Attach(s.MinioDir(string(side)))
		if err != nil {
			fmt.Fprintf(out, "minio %-9s not running\n", side)
			continue
		}
		if err := srv.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("devstack: stop minio %s: %w", side, err))
			continue
		}
		fmt.Fprintf(out, "minio %-9s stopped (pid %d, %s)\n", side, srv.State().Pid, srv.Endpoint())
	}
	pid, stopped, err := stopPID(ctx, s.EventsPIDFile(), 10*time.Second)
	switch {
	case err != nil:
		errs = append(errs, err)
	case stopped:
		fmt.Fprintf(out, "events    stopped (pid %d, %s)\n", pid, s.EventsAddr())
	default:
		fmt.Fprintln(out, "events    not running")
	}
	pg, err := pgcluster.Open(ctx, s.PostgresDir(), nil)
	if err != nil {
		fmt.Fprintln(out, "postgres  not running")
	} else if err := pg.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("devstack: stop postgres: %w", err))
	} else {
		fmt.Fprintf(out, "postgres  stopped (port %d)\n", pg.Port())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(out, "stack stopped; state kept in %s (`make clean` removes it)\n", filepath.Clean(s.Dir))
	return nil
}
