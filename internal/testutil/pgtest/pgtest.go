// Package pgtest gives tests in any package a real PostgreSQL database.
//
// One throwaway cluster (fsync off, in a temporary directory) is started
// lazily per test binary, on the first call that needs it (~1-2 s); each
// NewDB call then creates a fresh, empty database in it (a few ms), so tests
// can run in parallel without sharing rows. Usage:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) } // stops the cluster and removes its dir
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.NewPool(t)            // or dsn := pgtest.NewDB(t)
//		...
//	}
//
// NewDBFrom clones a template database that a setup function (for example
// running migrations) prepared once per test binary, which is faster than
// migrating every database. NewCluster starts a private cluster for tests that
// must stop or restart the server (fault tests); never restart the shared one.
//
// The first cluster ever started on a machine runs initdb into
// $TMPDIR/geoblob-pginit-<bindir> (~1.5 s); later ones copy it.
//
// Calling NewDB without pgtest.Main in TestMain fails the test: the cluster
// would outlive the test binary. Clusters left behind by killed test binaries
// (directories /tmp/geoblob-pgtest-*) are removed by the next run.
//
// PostgreSQL server binaries must be installed (Debian package postgresql,
// or GEOBLOB_PG_BIN pointing at them); when they are missing tests fail with
// that message rather than being skipped.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/internal/pgcluster"
)

const (
	dirPrefix = "geoblob-pgtest-"
	ownerFile = "owner.pid"
)

// env is the per-test-binary shared cluster. It is package state on purpose:
// a test binary has exactly one, started on first use and stopped by Main.
type env struct {
	mainCalled atomic.Bool
	seq        atomic.Int64

	once    sync.Once
	cluster *pgcluster.Cluster
	err     error

	mu        sync.Mutex
	templates map[string]*template
}

type template struct {
	once sync.Once
	name string
	err  error
}

var shared = &env{templates: map[string]*template{}}

// Main runs the tests, then stops the shared cluster (if one was started)
// and removes its directory, and exits with the tests' status. Call it from
// TestMain.
func Main(m *testing.M) {
	shared.mainCalled.Store(true)
	code := m.Run()
	if err := shared.shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Cluster returns the shared cluster of this test binary, starting it if
// needed. Do not stop or restart it: other tests use it.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	if !shared.mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) from TestMain, otherwise the shared PostgreSQL cluster outlives the test binary")
	}
	shared.once.Do(shared.start)
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.cluster
}

// NewDB creates a fresh, empty database with a unique name in the shared
// cluster and returns its DSN (postgres:// URL, superuser, TCP).
func NewDB(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := shared.dbName(t)
	if err := c.CreateDatabase(context.Background(), name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return c.DSN(name)
}

// NewDBFrom returns the DSN of a fresh database cloned from the template
// called key. The first call per test binary creates the template and runs
// setup on it (setup must close its connections; leftovers are terminated);
// a setup error fails every test that asks for that template.
func NewDBFrom(t testing.TB, key string, setup func(ctx context.Context, dsn string) error) string {
	t.Helper()
	c := Cluster(t)
	tpl := shared.template(key)
	tpl.once.Do(func() { tpl.err = prepareTemplate(c, tpl.name, setup) })
	if tpl.err != nil {
		t.Fatalf("pgtest: template %q: %v", key, tpl.err)
	}
	name := shared.dbName(t)
	if err := c.CreateDatabaseFrom(context.Background(), name, tpl.name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return c.DSN(name)
}

// NewPool returns a pgx pool on a fresh, empty database; it is closed when
// the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, NewDB(t))
}

// Connect opens a pgx pool on dsn and closes it when the test ends.
func Connect(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewCluster starts a private cluster (own directory, fsync off) for tests
// that stop or restart the server; it is stopped and removed when the test
// ends.
func NewCluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := writeOwner(dir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c, err := pgcluster.Start(context.Background(), clusterOptions(dir))
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Remove(context.Background()); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// clusterOptions: fsync off, and an initdb result shared by all test
// binaries (per PostgreSQL binary directory) so a cluster starts in ~0.3 s.
// GEOBLOB_PGTEST_SETTINGS adds server settings (space-separated
// name=value, e.g. "shared_buffers=4GB" for the 10M-row benchmarks).
func clusterOptions(dir string) pgcluster.Options {
	opts := pgcluster.Options{Dir: dir, FsyncOff: true, Settings: strings.Fields(os.Getenv("GEOBLOB_PGTEST_SETTINGS"))}
	if bin, err := pgcluster.FindBinDir(); err == nil {
		opts.InitCache = filepath.Join(os.TempDir(), "geoblob-pginit-"+sanitize(bin))
	}
	return opts
}

func (e *env) start() {
	reapStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		e.err = err
		return
	}
	if e.err = writeOwner(dir); e.err != nil {
		return
	}
	e.cluster, e.err = pgcluster.Start(context.Background(), clusterOptions(dir))
	if e.err != nil {
		_ = os.RemoveAll(dir)
	}
}

func (e *env) shutdown() error {
	if e.cluster == nil {
		return nil
	}
	return e.cluster.Remove(context.Background())
}

func (e *env) template(key string) *template {
	e.mu.Lock()
	defer e.mu.Unlock()
	tpl, ok := e.templates[key]
	if !ok {
		tpl = &template{name: truncate("tpl_" + sanitize(key))}
		e.templates[key] = tpl
	}
	return tpl
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

func sanitize(s string) string { return nonIdent.ReplaceAllString(strings.ToLower(s), "_") }

// truncate keeps names within PostgreSQL's 63-byte identifier limit.
func truncate(s string) string {
	if len(s) > 63 {
		return s[:63]
	}
	return s
}

func (e *env) dbName(t testing.TB) string {
	return truncate(fmt.Sprintf("t%d_%s", e.seq.Add(1), sanitize(t.Name())))
}

func prepareTemplate(c *pgcluster.Cluster, name string, setup func(context.Context, string) error) error {
	ctx := context.Background()
	if err := c.CreateDatabase(ctx, name); err != nil {
		return err
	}
	if err := setup(ctx, c.DSN(name)); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
	if err != nil {
		return fmt.Errorf("close template sessions: %w", err)
	}
	return nil
}

func writeOwner(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// reapStale stops and removes clusters whose owning test binary is gone.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if c, err := pgcluster.Open(context.Background(), dir, nil); err == nil {
			_ = c.Stop(context.Background())
		}
		_ = os.RemoveAll(dir)
	}
}
