// Package pgcluster creates, starts, stops and attaches to throwaway
// PostgreSQL clusters for tests and the local stack.
//
// A cluster lives entirely inside one directory:
//
//	DIR/data             the data directory (PGDATA)
//	DIR/run              the Unix socket directory
//	DIR/postgres.log     the server log
//	DIR/pgcluster.json   port and binary directory, read by Open
//
// When the process runs as root, initdb and pg_ctl run as the operating
// system user "postgres" (via runuser) and DIR is chowned to that user,
// because PostgreSQL refuses to run as root. The cluster uses trust
// authentication for the database user "postgres" and listens on 127.0.0.1
// only: never use it for anything but throwaway data.
package pgcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geoblob/geoblob/internal/logtail"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotInstalled: no PostgreSQL server binaries were found.
	ErrNotInstalled = errors.New("pgcluster: PostgreSQL server binaries not found (install Debian package postgresql, or set GEOBLOB_PG_BIN to the directory holding initdb and pg_ctl)")
	// ErrNotRunning: Open found no running cluster in the directory.
	ErrNotRunning = errors.New("pgcluster: cluster not running")
)

// EnvBinDir names the environment variable that overrides where the
// PostgreSQL binaries (initdb, pg_ctl) are looked up.
const EnvBinDir = "GEOBLOB_PG_BIN"

// SuperUser is the database superuser every cluster is created with.
const SuperUser = "postgres"

const (
	dataSubdir   = "data"
	socketSubdir = "run"
	logFile      = "postgres.log"
	stateFile    = "pgcluster.json"
	osUser       = "postgres" // OS user the server runs as when we are root
	startTimeout = 60 * time.Second
)

// Options configure Start.
type Options struct {
	// Dir holds the cluster (see the package doc). Created if missing;
	// an existing cluster in it is reused. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 reuses the port recorded in Dir,
	// or else picks a free one.
	Port int
	// FsyncOff turns off fsync, synchronous_commit and full_page_writes:
	// fast, and safe only for data you can lose.
	FsyncOff bool
	// Settings are extra server settings, "name=value" each (passed as
	// -c name=value), e.g. "shared_buffers=4GB" for a large benchmark.
	Settings []string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// InitCache, if set, is a directory holding a pristine initdb result
	// (created there on first use) that new clusters copy instead of running
	// initdb: ~0.1 s instead of ~1.5 s. Share it between test binaries; it
	// is never modified after creation.
	InitCache string
}

// Cluster is a PostgreSQL cluster in one directory. Its methods are safe to
// call from one goroutine at a time; DSN and Port are safe concurrently.
type Cluster struct {
	dir      string
	binDir   string
	port     int
	fsyncOff bool
	settings []string // Options.Settings
	logger   *slog.Logger
	runAs    *user.User // nil: run binaries as the current user
	cache    string     // Options.InitCache
}

// state is what Start records in DIR/pgcluster.json for Open.
type state struct {
	Port     int      `json:"port"`
	BinDir   string   `json:"bin_dir"`
	FsyncOff bool     `json:"fsync_off"`
	Settings []string `json:"settings,omitempty"`
}

// FindBinDir returns the directory holding initdb and pg_ctl: $GEOBLOB_PG_BIN
// if set, else the highest /usr/lib/postgresql/<version>/bin, else
// `pg_config --bindir`. It returns an error wrapping ErrNotInstalled when
// none of them holds the binaries.
func FindBinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if hasServerBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w: %s=%q has no initdb/pg_ctl", ErrNotInstalled, EnvBinDir, dir)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, dir := range matches {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", ErrNotInstalled
}

func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// Start initialises a cluster in opts.Dir if there is none yet, starts it
// (or attaches if it is already running) and returns once it accepts
// connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgcluster: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: dir %q: %w", opts.Dir, err)
	}
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, binDir: binDir, port: opts.Port, fsyncOff: opts.FsyncOff, settings: opts.Settings, logger: opts.Logger, cache: opts.InitCache}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if err := c.prepareDir(ctx); err != nil {
		return nil, err
	}
	if err := c.initdbIfNeeded(ctx); err != nil {
		return nil, err
	}
	prev, _ := readState(dir)
	if c.running(ctx) {
		if prev.Port == 0 {
			return nil, fmt.Errorf("pgcluster: cluster in %s is running but %s is missing; stop it with pg_ctl -D %s stop", dir, stateFile, c.dataDir())
		}
		if opts.Port != 0 && opts.Port != prev.Port {
			return nil, fmt.Errorf("pgcluster: cluster in %s already running on port %d, not %d", dir, prev.Port, opts.Port)
		}
		c.port, c.fsyncOff, c.settings = prev.Port, prev.FsyncOff, prev.Settings
		c.logger.Info("pgcluster: attached to running cluster", "dir", dir, "port", c.port)
		return c, c.waitReady(ctx)
	}
	if c.port == 0 && prev.Port != 0 && portFree(prev.Port) {
		c.port = prev.Port
	}
	if err := c.start(ctx, opts.Port == 0); err != nil {
		return nil, err
	}
	return c, nil
}

// Open attaches to the cluster a Start (possibly in another process) left
// running in dir. It returns an error wrapping ErrNotRunning when there is
// none.
func Open(ctx context.Context, dir string, logger *slog.Logger) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: dir %q: %w", dir, err)
	}
	st, err := readState(abs)
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %v", ErrNotRunning, abs, err)
	}
	c := &Cluster{dir: abs, binDir: st.BinDir, port: st.Port, fsyncOff: st.FsyncOff, settings: st.Settings, logger: logger}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if !hasServerBinaries(c.binDir) {
		if c.binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if c.runAs, err = serverUser(); err != nil {
		return nil, err
	}
	if !c.running(ctx) {
		return nil, fmt.Errorf("%w in %s", ErrNotRunning, abs)
	}
	return c, c.waitReady(ctx)
}

// Dir returns the cluster's directory (absolute).
func (c *Cluster) Dir() string { return c.dir }

// Port returns the TCP port the cluster listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// LogFile returns the path of the server log.
func (c *Cluster) LogFile() string { return filepath.Join(c.dir, logFile) }

// DSN returns a postgres:// URL for database dbname as the superuser over TCP.
func (c *Cluster) DSN(dbname string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", SuperUser, c.port, url.PathEscape(dbname))
}

// SocketDSN returns a DSN for dbname over the cluster's Unix socket (a little
// faster than TCP; only usable on this machine).
func (c *Cluster) SocketDSN(dbname string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable",
		SuperUser, url.PathEscape(dbname), url.QueryEscape(c.socketDir()), c.port)
}

// CreateDatabase creates an empty database called name (from template1).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return c.CreateDatabaseFrom(ctx, name, "")
}

// CreateDatabaseFrom creates database name as a copy of database template
// ("" means template1). The template must have no open connections.
func (c *Cluster) CreateDatabaseFrom(ctx context.Context, name, template string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connect to %s: %w", c.dir, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgcluster: create database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast mode: open sessions are disconnected).
// Stopping a cluster that is not running is not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.running(ctx) {
		return nil
	}
	out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir(), "-m", "fast", "-w", "-t", strconv.Itoa(int(startTimeout.Seconds())))
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop in %s: %w: %s", c.dir, err, bytes.TrimSpace(out))
	}
	c.logger.Info("pgcluster: stopped", "dir", c.dir, "port", c.port)
	return nil
}

// Restart stops the server and starts it again on the same directory and
// port; data survives, sessions do not.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	return c.start(ctx, false)
}

// Remove stops the server and deletes the cluster directory.
func (c *Cluster) Remove(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("pgcluster: remove %s: %w", c.dir, err)
	}
	return nil
}

func (c *Cluster) dataDir() string   { return filepath.Join(c.dir, dataSubdir) }
func (c *Cluster) socketDir() string { return filepath.Join(c.dir, socketSubdir) }

// serverUser returns the OS user to run PostgreSQL as: nil (ourselves)
// unless we are root.
func serverUser() (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root needs OS user %q (install Debian package postgresql): %w", osUser, err)
	}
	return u, nil
}

func (c *Cluster) prepareDir(ctx context.Context) error {
	var err error
	if c.runAs, err = serverUser(); err != nil {
		return err
	}
	for _, d := range []string{c.dir, c.socketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("pgcluster: create %s: %w", d, err)
		}
	}
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	for _, d := range []string{c.dir, c.socketDir()} {
		if err := os.Chown(d, uid, gid); err != nil {
			return fmt.Errorf("pgcluster: chown %s to %s: %w", d, osUser, err)
		}
	}
	if out, err := c.runCmd(ctx, "test", "-w", c.dir); err != nil {
		return fmt.Errorf("pgcluster: user %s cannot write %s (is a parent directory closed to it?): %w %s", osUser, c.dir, err, out)
	}
	return nil
}

func (c *Cluster) initdbIfNeeded(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err == nil {
		return nil
	}
	if c.cache == "" {
		return c.initdb(ctx, c.dataDir())
	}
	if err := c.ensureInitCache(ctx); err != nil {
		return err
	}
	// cp -a keeps the owner (postgres) and modes PostgreSQL insists on.
	if out, err := exec.CommandContext(ctx, "cp", "-a", c.cache, c.dataDir()).CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: copy init cache %s to %s: %w: %s", c.cache, c.dataDir(), err, bytes.TrimSpace(out))
	}
	return nil
}

// ensureInitCache creates the init cache if missing: initdb next to it,
// then an atomic rename, so concurrent processes never see half a cache.
func (c *Cluster) ensureInitCache(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.cache, "PG_VERSION")); err == nil {
		return nil
	}
	parent := filepath.Dir(c.cache)
	tmp, err := os.MkdirTemp(parent, filepath.Base(c.cache)+".tmp-")
	if err != nil {
		return fmt.Errorf("pgcluster: init cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		if err := os.Chown(tmp, uid, gid); err != nil {
			return fmt.Errorf("pgcluster: init cache: chown %s: %w", tmp, err)
		}
	}
	data := filepath.Join(tmp, "data")
	if err := c.initdb(ctx, data); err != nil {
		return err
	}
	if err := os.Rename(data, c.cache); err != nil {
		if _, statErr := os.Stat(filepath.Join(c.cache, "PG_VERSION")); statErr == nil {
			return nil // another process won the race
		}
		return fmt.Errorf("pgcluster: init cache: %w", err)
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context, dataDir string) error {
	t0 := time.Now()
	out, err := c.run(ctx, "initdb", "-D", dataDir, "--auth=trust", "-U", SuperUser,
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err != nil {
		return fmt.Errorf("pgcluster: %s/initdb -D %s: %w: %s", c.binDir, dataDir, err, bytes.TrimSpace(out))
	}
	c.logger.Info("pgcluster: initdb done", "dir", dataDir, "took", time.Since(t0))
	return nil
}

// start runs pg_ctl start; with pickPort it retries on another free port
// when the chosen one was taken meanwhile.
func (c *Cluster) start(ctx context.Context, pickPort bool) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if c.port == 0 || (attempt > 0 && pickPort) {
			p, err := freePort()
			if err != nil {
				return err
			}
			c.port = p
		}
		if lastErr = c.startOnce(ctx); lastErr == nil {
			return nil
		}
		if !pickPort || ctx.Err() != nil {
			break
		}
		c.logger.Warn("pgcluster: start failed, retrying on another port", "port", c.port, "err", lastErr)
	}
	return lastErr
}

func (c *Cluster) startOnce(ctx context.Context) error {
	t0 := time.Now()
	settings := []string{
		"-c listen_addresses=127.0.0.1",
		"-p " + strconv.Itoa(c.port),
		"-k " + c.socketDir(),
	}
	if c.fsyncOff {
		settings = append(settings, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	for _, kv := range c.settings {
		settings = append(settings, "-c "+kv)
	}
	out, err := c.run(ctx, "pg_ctl", "start", "-D", c.dataDir(), "-l", c.LogFile(), "-w",
		"-t", strconv.Itoa(int(startTimeout.Seconds())), "-o", strings.Join(settings, " "))
	if err != nil {
		return fmt.Errorf("pgcluster: %s/pg_ctl start in %s on port %d: %w: %s; log tail: %s",
			c.binDir, c.dir, c.port, err, bytes.TrimSpace(out), logtail.Tail(c.LogFile(), 600))
	}
	if err := writeState(c.dir, state{Port: c.port, BinDir: c.binDir, FsyncOff: c.fsyncOff, Settings: c.settings}); err != nil {
		return err
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	c.logger.Info("pgcluster: started", "dir", c.dir, "port", c.port, "took", time.Since(t0))
	return nil
}

// waitReady pings until the server accepts a connection to "postgres".
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: cluster in %s (port %d) does not accept connections: %w", c.dir, c.port, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) running(ctx context.Context) bool {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err != nil {
		return false
	}
	_, err := c.run(ctx, "pg_ctl", "status", "-D", c.dataDir())
	return err == nil
}

// run executes a PostgreSQL binary from binDir (as the server user when root).
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return c.runCmd(ctx, filepath.Join(c.binDir, name), args...)
}

func (c *Cluster) runCmd(ctx context.Context, path string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, fmt.Errorf("pgcluster: read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("pgcluster: parse %s: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

func writeState(dir string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("pgcluster: encode state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o644); err != nil {
		return fmt.Errorf("pgcluster: write state: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// tail returns the last n bytes of a file, for error messages.
