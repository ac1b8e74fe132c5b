package pgcluster_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/pgcluster"
)

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	dir, err := pgcluster.FindBinDir()
	require.NoError(t, err)
	assert.FileExists(t, dir+"/pg_ctl")
	assert.FileExists(t, dir+"/initdb")
}

func TestFindBinDirHonoursEnv(t *testing.T) {
	t.Setenv(pgcluster.EnvBinDir, "/nonexistent/pg/bin")
	_, err := pgcluster.FindBinDir()
	require.ErrorIs(t, err, pgcluster.ErrNotInstalled)
	assert.Contains(t, err.Error(), "/nonexistent/pg/bin")
	assert.Contains(t, err.Error(), "install Debian package postgresql")
}

// TestLifecycle covers start, data surviving a restart, attach from
// "another process" with Open, stop, and restart of a stopped directory.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, FsyncOff: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	require.NotZero(t, c.Port())
	assert.FileExists(t, c.LogFile())

	require.NoError(t, c.CreateDatabase(ctx, "lifecycle"))
	exec(t, c.DSN("lifecycle"), "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
	assert.Equal(t, 42, queryInt(t, c.SocketDSN("lifecycle"), "SELECT v FROM t"))
	assert.Equal(t, 1, queryInt(t, c.DSN("lifecycle"), "SELECT CASE WHEN current_setting('fsync') = 'off' THEN 1 ELSE 0 END"))

	err = c.CreateDatabase(ctx, "lifecycle")
	require.Error(t, err, "creating an existing database must fail")
	assert.Contains(t, err.Error(), "lifecycle")

	port := c.Port()
	require.NoError(t, c.Restart(ctx))
	assert.Equal(t, port, c.Port(), "restart keeps the port")
	assert.Equal(t, 42, queryInt(t, c.DSN("lifecycle"), "SELECT v FROM t"), "data survives a restart")

	// Another process attaches by directory.
	o, err := pgcluster.Open(ctx, dir, nil)
	require.NoError(t, err)
	assert.Equal(t, port, o.Port())
	assert.Equal(t, 42, queryInt(t, o.DSN("lifecycle"), "SELECT v FROM t"))

	// Start on a running directory attaches too.
	s, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	require.NoError(t, err)
	assert.Equal(t, port, s.Port())
	_, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Port: port + 1})
	require.Error(t, err, "a running cluster can not change port")

	require.NoError(t, o.Stop(ctx))
	require.NoError(t, c.Stop(ctx), "stopping a stopped cluster is fine")
	_, err = pgcluster.Open(ctx, dir, nil)
	require.ErrorIs(t, err, pgcluster.ErrNotRunning)
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err == nil {
		_ = conn.Close(ctx)
	}
	require.Error(t, err, "server must be down after Stop")

	// Start reuses the existing cluster (no initdb) and its recorded port.
	c2, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, FsyncOff: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	assert.Equal(t, port, c2.Port())
	assert.Equal(t, 42, queryInt(t, c2.DSN("lifecycle"), "SELECT v FROM t"))
	require.NoError(t, c2.Remove(ctx))
	assert.NoDirExists(t, dir)
}

func TestOpenWithoutCluster(t *testing.T) {
	t.Parallel()
	_, err := pgcluster.Open(context.Background(), t.TempDir(), nil)
	require.ErrorIs(t, err, pgcluster.ErrNotRunning)
	assert.False(t, errors.Is(err, pgcluster.ErrNotInstalled))
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func queryInt(t *testing.T, dsn, sql string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&v))
	return v
}

func TestInitCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base, err := os.MkdirTemp("", "pgcluster-cache-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	cache := base + "/initcache"
	if os.Geteuid() == 0 {
		// MkdirTemp's 0700 keeps the postgres user out: a clear error.
		_, err := pgcluster.Start(ctx, pgcluster.Options{Dir: base + "/a", InitCache: cache})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "user postgres cannot write")
		require.NoError(t, os.Chmod(base, 0o755))
	}
	for _, name := range []string{"a", "b"} {
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: base + "/" + name, FsyncOff: true, InitCache: cache})
		require.NoError(t, err, name)
		assert.FileExists(t, cache+"/PG_VERSION", "cache created on first use")
		require.NoError(t, c.CreateDatabase(ctx, "db_"+name))
		assert.Equal(t, 1, queryInt(t, c.DSN("db_"+name), "SELECT 1"))
		require.NoError(t, c.Stop(ctx))
	}
	assert.NoFileExists(t, cache+"/postmaster.pid", "the cache itself never runs")
	entries, err := os.ReadDir(base)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "a, b and the cache; no temporary leftovers")
}
