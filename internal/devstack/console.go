package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/metrics/prom"
	"github.com/geoblob/geoblob/shared/registry"
)

// DefaultConsolePort is the operator console's port of the local stack.
const DefaultConsolePort = 9400

// ConsolePort is the console's port: Ports.Console, or the events port +
// 100 for a stack recorded before the console existed.
func (s Settings) ConsolePort() int {
	if s.Ports.Console != 0 {
		return s.Ports.Console
	}
	return s.Ports.Events + 100
}

// ConsoleAddr is the console's listen address (127.0.0.1 only).
func (s Settings) ConsoleAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.ConsolePort()) }

// ConsoleURL is the operator console of the stack's event daemon.
func (s Settings) ConsoleURL() string { return fmt.Sprintf("http://%s/", s.ConsoleAddr()) }

// ConsoleOptions configure NewConsole.
type ConsoleOptions struct {
	// Config is the stack's configuration (registry URL, enabled types).
	Config config.Config
	// Getenv reads the health check's variables (geoblob check's).
	Getenv func(string) string
	// DeadLetterDir is the event daemon's dead-letter directory.
	DeadLetterDir string
	Logger        *slog.Logger
}

// NewConsole builds the operator handler (shared/api) on the stack's
// registry, with actions enabled (a local stack belongs to its operator),
// the registry's Prometheus gauges on /metrics,
// the caller named "local:<user>" in the audit trail, the daemon's
// dead-letter directory counted and `geoblob check` as the health check.
// The returned func closes the registry connection.
func NewConsole(ctx context.Context, o ConsoleOptions) (*api.Server, func(), error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.New(ctx, o.Config.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: console registry: %w", err)
	}
	var types []string
	for _, t := range o.Config.Types {
		types = append(types, t.Name)
	}
	who := "local"
	if u, err := user.Current(); err == nil {
		who = "local:" + u.Username
	}
	dl := DeadLetterDir(o.DeadLetterDir)
	reg := registry.New(pool, registry.Options{Logger: o.Logger})
	opts := api.Options{
		Registry:         reg,
		Metrics:          prom.Handler(reg, nil),
		DataTypes:        types,
		ActionsEnabled:   true,
		Identity:         func(*http.Request) string { return who },
		ReverifyInterval: o.Config.ReverifyInterval,
		Brake:            o.Config.Brake,
		Logger:           o.Logger,
	}
	if o.DeadLetterDir != "" {
		opts.DeadLetters = dl
	}
	if o.Getenv != nil {
		opts.Health = func(ctx context.Context) health.Report { return CheckWith(ctx, o.Getenv, dl, o.Logger) }
	}
	h, err := api.New(opts)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return h, func() { h.Wait(); pool.Close() }, nil
}

// ServeConsole serves h on addr until ctx ends. addr must be a loopback
// address: the console is never exposed beyond this machine.
func ServeConsole(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devstack: console address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("devstack: console address %q: only 127.0.0.1 (loopback) is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devstack: console: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if logger != nil {
		logger.Info("devstack: operator console", "url", "http://"+ln.Addr().String()+"/")
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("devstack: console: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("devstack: stop console: %w", err)
	}
	return nil
}

// OpenConsole builds the operator handler on the stack in dir (see
// NewConsole); the CLI's API commands call it in-process.
func OpenConsole(ctx context.Context, dir string, logger *slog.Logger) (Settings, *api.Server, func(), error) {
	s, err := LoadSettings(dir)
	if err != nil {
		return s, nil, nil, err
	}
	getenv := s.Getenv(os.Getenv)
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return s, nil, nil, fmt.Errorf("devstack: configuration: %w", err)
	}
	h, closeConsole, err := NewConsole(ctx, ConsoleOptions{Config: cfg, Getenv: getenv, DeadLetterDir: s.DeadLetterDir(), Logger: logger})
	return s, h, closeConsole, err
}

// Console serves the operator console of the stack in dir on addr ("" =
// the stack's console port + 1, next to the daemon's) in the foreground
// until ctx ends (`geoblob console`); printURL gets its URL first.
func Console(ctx context.Context, dir, addr string, printURL func(url string), logger *slog.Logger) error {
	s, h, closeConsole, err := OpenConsole(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer closeConsole()
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", s.ConsolePort()+1)
	}
	printURL("http://" + addr + "/")
	return ServeConsole(ctx, addr, h, logger)
}
