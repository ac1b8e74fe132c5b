// Package minioproc starts and stops MinIO server processes: one per
// simulated region in tests and in the local stack. A started server
// records its pid and endpoint in its directory, so another process (for
// example `make down`) can attach to it and stop it.
package minioproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/geoblob/geoblob/internal/logtail"
	"github.com/geoblob/geoblob/internal/toolbin"
)

// Errors returned by this package.
var (
	// ErrBinaryNotFound: no MinIO binary in GEOBLOB_MINIO_BIN,
	// <module root>/.local/bin/minio or PATH. `make tools` installs it.
	ErrBinaryNotFound = errors.New("minioproc: minio binary not found (run `make tools`, or set GEOBLOB_MINIO_BIN)")
	// ErrNotRunning: the directory holds no state of a live server.
	ErrNotRunning = errors.New("minioproc: server not running")
)

// BinEnv names the environment variable that overrides the binary location.
const BinEnv = "GEOBLOB_MINIO_BIN"

// File names inside Options.Dir.
const (
	DataDir   = "data"       // the drive
	PidFile   = "minio.pid"  // decimal pid
	StateFile = "minio.json" // State as JSON
	LogFile   = "minio.log"  // server stdout and stderr
)

// Options describe a server to start.
type Options struct {
	// Dir holds the data drive, the pid/state files and the log. Required.
	Dir string
	// Address is host:port to listen on; port 0 (or "") picks a free port on
	// 127.0.0.1.
	Address string
	// AccessKey and SecretKey are the root credentials (MinIO wants at least
	// 3 and 8 characters). Defaults: "minioadmin", "minioadmin".
	AccessKey, SecretKey string
	// Region is the server's region name. Default "us-east-1".
	Region string
	// Webhooks maps a notification target id (letters, digits, '_'; upper
	// cased) to its endpoint URL. Each becomes
	// MINIO_NOTIFY_WEBHOOK_ENABLE_<ID>=on and
	// MINIO_NOTIFY_WEBHOOK_ENDPOINT_<ID>=<url>, with an on-disk queue in
	// Dir/queue-<id> so that events survive the endpoint being down; the
	// target's ARN is WebhookARN(id).
	Webhooks map[string]string
	// WebhookAuthTokens maps a webhook target id to the token MinIO sends
	// as "Authorization: Bearer <token>" with every POST
	// (MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>).
	WebhookAuthTokens map[string]string
	// NoWebhookQueue turns the on-disk webhook queue off: MinIO posts each
	// event as soon as it happens (no 3 s replay ticker) and drops an event
	// that cannot be delivered instead of retrying it. The receiver must
	// then persist what it accepts (the local stack's spool does).
	NoWebhookQueue bool
	// SyncEvents sets MINIO_API_SYNC_EVENTS=on: a request that emits an
	// event (PUT, DELETE, ...) is answered only after the event has been
	// handed to every target, so without a queue a client that got its
	// answer knows the receiver accepted (or refused) the event, and events
	// of one client's sequential requests arrive in request order.
	SyncEvents bool
	// Binary overrides the binary lookup (see FindBinary).
	Binary string
	// Detach keeps the server running after this process exits (for the
	// local stack). By default the server is killed when its parent dies.
	Detach bool
	// ReadyTimeout bounds the wait for /minio/health/live. Default 60 s.
	ReadyTimeout time.Duration
	// Logger receives lifecycle logs. Default slog.Default().
	Logger *slog.Logger
}

// State is what a running server records in Dir/StateFile.
type State struct {
	Pid       int    `json:"pid"`
	Endpoint  string `json:"endpoint"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Region    string `json:"region"`
}

// Server is a running MinIO process, started or attached.
type Server struct {
	dir   string
	state State
	cmd   *exec.Cmd     // nil when attached
	exit  chan struct{} // closed when cmd exits (started servers only)
	err   error         // cmd.Wait result, valid after exit is closed
	log   *slog.Logger
	logf  *os.File
}

// Endpoint is the server's base URL, e.g. http://127.0.0.1:9000.
func (s *Server) Endpoint() string { return s.state.Endpoint }

// State returns the recorded pid, endpoint, credentials and region.
func (s *Server) State() State { return s.state }

// Dir is the server's directory.
func (s *Server) Dir() string { return s.dir }

// WebhookARN is the queue ARN to use in a bucket notification
// configuration for the webhook target id. MinIO names targets after the
// environment variable suffix, which is upper case: "geoblob" gives
// arn:minio:sqs::GEOBLOB:webhook.
func WebhookARN(id string) string { return "arn:minio:sqs::" + strings.ToUpper(id) + ":webhook" }

// FindBinary locates the MinIO binary: $GEOBLOB_MINIO_BIN, then
// .local/bin/minio under the module root (the nearest directory above the
// working directory holding go.mod), then PATH. It returns an error
// wrapping ErrBinaryNotFound when none exists.
func FindBinary() (string, error) {
	return toolbin.Find(BinEnv, "minio", ErrBinaryNotFound)
}

// Start launches a MinIO server and returns once it answers
// GET /minio/health/live, or fails (killing the process) if it exits or
// does not become ready within ReadyTimeout. A port chosen by Start that
// another process grabs first is retried on a new port. ctx bounds the
// start-up only: the server runs until Stop (or, unless Options.Detach,
// until this process dies).
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("minioproc: Options.Dir is required")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	if opts.AccessKey == "" {
		opts.AccessKey = "minioadmin"
	}
	if opts.SecretKey == "" {
		opts.SecretKey = "minioadmin"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, DataDir), 0o755); err != nil {
		return nil, fmt.Errorf("minioproc: %w", err)
	}
	if st, err := readState(opts.Dir); err == nil && alive(st.Pid) {
		return nil, fmt.Errorf("minioproc: a server (pid %d, %s) already runs in %s", st.Pid, st.Endpoint, opts.Dir)
	}
	pickPort := opts.Address == "" || strings.HasSuffix(opts.Address, ":0")
	var lastErr error
	for range 3 {
		addr := opts.Address
		if pickPort {
			var err error
			if addr, err = freeAddress(opts.Address); err != nil {
				return nil, err
			}
		}
		s, err := start(ctx, bin, addr, opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !pickPort || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, bin, addr string, opts Options) (*Server, error) {
	logf, err := os.OpenFile(filepath.Join(opts.Dir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("minioproc: %w", err)
	}
	cmd := exec.Command(bin, "server", filepath.Join(opts.Dir, DataDir), "--address", addr, "--quiet")
	cmd.Env = append(os.Environ(), env(opts)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(opts.Detach)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("minioproc: start %s: %w", bin, err)
	}
	s := &Server{
		dir:  opts.Dir,
		cmd:  cmd,
		exit: make(chan struct{}),
		log:  opts.Logger.With("minio_pid", cmd.Process.Pid, "minio_addr", addr),
		logf: logf,
		state: State{
			Pid: cmd.Process.Pid, Endpoint: "http://" + addr,
			AccessKey: opts.AccessKey, SecretKey: opts.SecretKey, Region: opts.Region,
		},
	}
	go func() { s.err = cmd.Wait(); close(s.exit) }()

	if err := s.waitReady(ctx, opts.ReadyTimeout); err != nil {
		_ = s.kill()
		return nil, fmt.Errorf("%w (log tail: %s)", err, logtail.Tail(filepath.Join(opts.Dir, LogFile), 800))
	}
	if err := writeState(opts.Dir, s.state); err != nil {
		_ = s.kill()
		return nil, err
	}
	s.log.Info("minioproc: server ready", "endpoint", s.state.Endpoint, "dir", opts.Dir)
	return s, nil
}

func env(opts Options) []string {
	e := []string{
		"MINIO_ROOT_USER=" + opts.AccessKey,
		"MINIO_ROOT_PASSWORD=" + opts.SecretKey,
		"MINIO_SITE_REGION=" + opts.Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	}
	if opts.SyncEvents {
		e = append(e, "MINIO_API_SYNC_EVENTS=on")
	}
	ids := make([]string, 0, len(opts.Webhooks))
	for id := range opts.Webhooks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		up := strings.ToUpper(id)
		e = append(e,
			"MINIO_NOTIFY_WEBHOOK_ENABLE_"+up+"=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+up+"="+opts.Webhooks[id],
		)
		if tok := opts.WebhookAuthTokens[id]; tok != "" {
			e = append(e, "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+up+"="+tok)
		}
		if !opts.NoWebhookQueue {
			e = append(e,
				"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+up+"="+filepath.Join(opts.Dir, "queue-"+id),
				"MINIO_NOTIFY_WEBHOOK_QUEUE_LIMIT_"+up+"=10000",
			)
		}
	}
	return e
}

// freeAddress returns host:port with a port that was free a moment ago.
func freeAddress(want string) (string, error) {
	host := "127.0.0.1"
	if want != "" {
		if h, _, err := net.SplitHostPort(want); err == nil && h != "" {
			host = h
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("minioproc: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	url := s.state.Endpoint + "/minio/health/live"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("minioproc: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			// Live answers 200 before the object layer is up; until then it
			// says so in x-minio-server-status ("offline") and S3 requests
			// fail with XMinioServerNotInitialized.
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") == "" {
				return nil
			}
		}
		select {
		case <-s.exit:
			return fmt.Errorf("minioproc: server exited before ready: %v", s.err)
		case <-ctx.Done():
			return fmt.Errorf("minioproc: server not ready at %s: %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

// Attach returns the server recorded in dir if its process is alive, or an
// error wrapping ErrNotRunning.
func Attach(dir string) (*Server, error) {
	st, err := readState(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRunning, err)
	}
	if !alive(st.Pid) {
		return nil, fmt.Errorf("%w: pid %d from %s is gone", ErrNotRunning, st.Pid, dir)
	}
	return &Server{dir: dir, state: st, log: slog.Default().With("minio_pid", st.Pid)}, nil
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s), waits
// for it to exit and removes the pid and state files. Stopping a server
// that already exited is not an error.
func (s *Server) Stop() error {
	defer s.cleanupFiles()
	if s.cmd != nil {
		select {
		case <-s.exit:
			return nil
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exit:
			return nil
		case <-time.After(10 * time.Second):
			return s.kill()
		}
	}
	// Attached: not our child, poll for its exit.
	pid := s.state.Pid
	if !alive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("minioproc: stop pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("minioproc: kill pid %d: %w", pid, err)
	}
	return nil
}

func (s *Server) kill() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Kill()
	<-s.exit
	if s.logf != nil {
		_ = s.logf.Close()
	}
	return nil
}

func (s *Server) cleanupFiles() {
	if s.logf != nil {
		_ = s.logf.Close()
	}
	if st, err := readState(s.dir); err == nil && st.Pid == s.state.Pid {
		_ = os.Remove(filepath.Join(s.dir, PidFile))
		_ = os.Remove(filepath.Join(s.dir, StateFile))
	}
}

// alive reports whether pid names a live, non-zombie process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill(0)
	}
	// Field 3 (after "(comm)") is the state; Z is a zombie.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func writeState(dir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("minioproc: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, StateFile), b, 0o600); err != nil {
		return fmt.Errorf("minioproc: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, PidFile), []byte(strconv.Itoa(st.Pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("minioproc: %w", err)
	}
	return nil
}

func readState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("minioproc: %s: %w", StateFile, err)
	}
	return st, nil
}
