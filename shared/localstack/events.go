package localstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/geoblob/geoblob/shared/config"
)

// ServeEvents runs the event receiver in the foreground until ctx ends: it
// builds the functions' handler from cfg exactly as the Lambda entry points
// do, wraps it with lambda.NewHandler (the runtime's JSON path) and serves
// MinIO's webhook POSTs on addr. `geoblob serve-events` runs it.
func ServeEvents(ctx context.Context, addr string, cfg config.Config, logger *slog.Logger) error {
	inv, closeApp, err := buildInvoker(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeApp()
	srv, err := ListenEvents(addr, NewReceiver(inv, ReceiverOptions{Logger: logger}))
	if err != nil {
		return err
	}
	logger.Info("localstack: receiving MinIO events", "addr", srv.Addr(), "primary", cfg.Primary.Name, "secondary", cfg.Secondary.Name)
	select {
	case err := <-srv.Done():
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	logger.Info("localstack: stopping event receiver")
	return srv.Close(shutdown)
}

// Daemon runs the event receiver as a background process of the geoblob
// binary (`geoblob serve-events`), with a pid file and a log file in the
// state directory. It is the EventsRunner of the CLI.
type Daemon struct {
	// Executable is the geoblob binary (os.Executable()); it is copied into
	// the state directory so a daemon started by `go run` keeps its binary.
	Executable string
}

var _ EventsRunner = Daemon{}

// StartEvents starts the daemon unless one is already running and answering.
func (d Daemon) StartEvents(ctx context.Context, s Settings) (string, error) {
	if d.Executable == "" {
		return "", errors.New("localstack: Daemon.Executable is required")
	}
	bin := filepath.Join(s.Dir, "bin", "geoblob")
	restarted := ""
	if pid, ok := readPID(s.EventsPIDFile()); ok {
		current := sameFile(d.Executable, bin)
		if current && waitHTTP(ctx, s.EventsURL(), pid, 2*time.Second) == nil {
			return fmt.Sprintf("%-15s %s (pid %d), log %s", "already running", s.EventsURL(), pid, s.EventsLogFile()), nil
		}
		// Not answering, or running an older build of geoblob: replace it
		// (MinIO keeps the events meanwhile in its queue).
		if _, _, err := stopPID(ctx, s.EventsPIDFile(), 10*time.Second); err != nil {
			return "", err
		}
		restarted = "re"
	}
	if err := copyExecutable(d.Executable, bin); err != nil {
		return "", err
	}
	env := daemonEnv(os.Environ(), s)
	pid, err := spawn([]string{bin, "serve-events", "-listen", s.EventsAddr()}, env, s.EventsPIDFile(), s.EventsLogFile())
	if err != nil {
		return "", err
	}
	if err := waitHTTP(ctx, s.EventsURL(), pid, 30*time.Second); err != nil {
		_, _, _ = stopPID(context.WithoutCancel(ctx), s.EventsPIDFile(), 2*time.Second)
		return "", fmt.Errorf("%w; log %s: %s", err, s.EventsLogFile(), tailFile(s.EventsLogFile(), 1000))
	}
	return fmt.Sprintf("%-15s %s (pid %d), log %s", restarted+"started", s.EventsURL(), pid, s.EventsLogFile()), nil
}

// sameFile reports whether files a and b have identical contents.
func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil || sa.Size() != sb.Size() {
		return false
	}
	ha, errA := fileSHA256(a)
	hb, errB := fileSHA256(b)
	return errA == nil && errB == nil && ha == hb
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// daemonEnv is the caller's environment without GEOBLOB_* and AWS_*
// variables (so a sourced env file of another stack cannot leak in), plus
// the stack's variables. GEOBLOB_LOG_LEVEL and the tuning variables pass.
func daemonEnv(environ []string, s Settings) []string {
	own := map[string]bool{}
	for _, v := range s.Env() {
		own[v.Name] = true
	}
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if own[name] || strings.HasPrefix(name, "AWS_") || name == "GEOBLOB_DATABASE_SECRET_ARN" || name == "GEOBLOB_DATABASE_HOST" {
			continue
		}
		env = append(env, kv)
	}
	for _, v := range s.Env() {
		env = append(env, v.Name+"="+v.Value)
	}
	return env
}

func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// InProcess serves the event receiver inside the calling process (the
// end-to-end tests): same handler, same receiver, no daemon.
type InProcess struct {
	// Observe, when set, sees every delivery (see ReceiverOptions.Observe).
	Observe func(Delivery)
	// Logger receives the handler's logs; nil discards.
	Logger *slog.Logger
	// Getenv supplies tuning variables beyond the stack's own (nil: none).
	Getenv func(string) string
	// Invoker, when set, replaces the functions' handler (tests of the
	// delivery path itself, e.g. a handler that fails on purpose).
	Invoker Invoker

	mu       sync.Mutex
	srv      *EventServer
	rec      *Receiver
	closeApp func()
}

var _ EventsRunner = (*InProcess)(nil)

// StartEvents builds the handler from the stack's configuration and starts
// serving it on the stack's events address.
func (p *InProcess) StartEvents(ctx context.Context, s Settings) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return "", errors.New("localstack: in-process receiver already started")
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := config.FromEnv(s.Getenv(p.Getenv))
	if err != nil {
		return "", fmt.Errorf("localstack: stack configuration: %w", err)
	}
	inv, closeApp := p.Invoker, func() {}
	if inv == nil {
		if inv, closeApp, err = buildInvoker(ctx, cfg, logger); err != nil {
			return "", err
		}
	}
	rec := NewReceiver(inv, ReceiverOptions{Logger: logger, Observe: p.Observe})
	srv, err := ListenEvents(s.EventsAddr(), rec)
	if err != nil {
		closeApp()
		return "", err
	}
	p.srv, p.rec, p.closeApp = srv, rec, closeApp
	return fmt.Sprintf("%-15s %s (in-process)", "started", s.EventsURL()), nil
}

// Receiver returns the receiver (nil before StartEvents); tests replay
// captured bodies through its Invoke.
func (p *InProcess) Receiver() *Receiver {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec
}

// Close stops the receiver and releases the handler's resources.
func (p *InProcess) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil {
		return nil
	}
	err := p.srv.Close(ctx)
	p.closeApp()
	p.srv, p.rec = nil, nil
	return err
}
