package registry_test

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

var loginSeq atomic.Int64

// runtimeDB returns a freshly migrated database (as the owner) and a pool
// on it logged in as a new runtime login made by EnsureRuntimeLogin.
func runtimeDB(t *testing.T) (owner, runtime *pgxpool.Pool, user string) {
	t.Helper()
	dsn := pgtest.NewDB(t)
	owner = pgtest.Connect(t, dsn)
	require.NoError(t, registry.Migrate(t.Context(), owner))
	user = fmt.Sprintf("geoblob_app_%d", loginSeq.Add(1))
	for {
		// Roles are per cluster; another test binary run may have left one.
		var exists bool
		require.NoError(t, owner.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", user).Scan(&exists))
		if !exists {
			break
		}
		user = fmt.Sprintf("geoblob_app_%d", loginSeq.Add(1))
	}
	require.NoError(t, registry.EnsureRuntimeLogin(t.Context(), owner, user, "first password"))
	require.NoError(t, registry.EnsureRuntimeLogin(t.Context(), owner, user, "s3cret 'quoted'"), "idempotent: resets the password")
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.User = url.UserPassword(user, "s3cret 'quoted'")
	return owner, pgtest.Connect(t, u.String()), user
}

// TestRuntimeRoleRunsTheRegistry runs the whole registry conformance suite
// logged in as a runtime login: every statement the functions make works
// with DML privileges only.
func TestRuntimeRoleRunsTheRegistry(t *testing.T) {
	t.Parallel()
	registrytest.Run(t, func(t *testing.T, opts registry.Options) *registry.Store {
		_, runtime, _ := runtimeDB(t)
		return registry.New(runtime, opts)
	})
}

// TestRuntimeRoleCannotChangeTheSchema: the runtime login reads and writes
// rows of every table (including one a later migration adds: default
// privileges), but cannot drop, alter, truncate or create tables or grant.
func TestRuntimeRoleCannotChangeTheSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	owner, runtime, user := runtimeDB(t)

	var isSuper, canCreateRole, member bool
	require.NoError(t, owner.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, pg_has_role($1, $2, 'MEMBER') FROM pg_roles WHERE rolname = $1`,
		user, registry.RuntimeRole).Scan(&isSuper, &canCreateRole, &member))
	assert.False(t, isSuper)
	assert.False(t, canCreateRole)
	assert.True(t, member)

	// A table added by a later migration (run by the owner) is covered.
	_, err := owner.Exec(ctx, `CREATE TABLE later_table (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)`)
	require.NoError(t, err)

	tables := []string{}
	rows, err := owner.Query(ctx, `SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, tables, "blob_registry")
	require.Contains(t, tables, "rejected_events")
	for _, tbl := range tables {
		var ok bool
		require.NoError(t, runtime.QueryRow(ctx, `SELECT has_table_privilege(current_user, $1, 'SELECT,INSERT,UPDATE,DELETE')`, tbl).Scan(&ok))
		assert.True(t, ok, "DML on %s", tbl)
	}
	_, err = runtime.Exec(ctx, `INSERT INTO later_table (v) VALUES ('x')`)
	assert.NoError(t, err, "insert (with its identity sequence) into a table of a later migration")
	_, err = runtime.Exec(ctx, `UPDATE later_table SET v = 'y'`)
	assert.NoError(t, err)
	_, err = runtime.Exec(ctx, `DELETE FROM later_table`)
	assert.NoError(t, err)
	_, err = runtime.Exec(ctx, `CREATE TEMP TABLE scratch (k text)`)
	assert.NoError(t, err, "temporary tables stay allowed (backfill stages batches in one)")

	for _, stmt := range []string{
		`DROP TABLE blob_registry`,
		`DROP TABLE later_table`,
		`ALTER TABLE blob_registry ADD COLUMN evil text`,
		`ALTER TABLE blob_registry DROP CONSTRAINT blob_registry_pkey`,
		`TRUNCATE blob_registry`,
		`CREATE TABLE public.evil (id int)`,
		`CREATE TABLE evil (id int)`,
		`CREATE INDEX evil_idx ON blob_registry (object_key)`,
		`CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE ROLE evil`,
		`DROP SCHEMA public CASCADE`,
		`DELETE FROM ` + registry.MigrationsTable,
		`INSERT INTO ` + registry.MigrationsTable + ` (version_id, is_applied) VALUES (99999, true)`,
	} {
		_, err := runtime.Exec(ctx, stmt)
		assert.Error(t, err, "the runtime role must not run: %s", stmt)
	}
	var version int64
	assert.NoError(t, runtime.QueryRow(ctx, `SELECT max(version_id) FROM `+registry.MigrationsTable).Scan(&version), "the schema version is readable")
	assert.Positive(t, version)
	// GRANT by a non-owner only warns; what counts is that nothing was granted.
	_, _ = runtime.Exec(ctx, `GRANT ALL ON blob_registry TO PUBLIC`)
	var publicDelete bool
	require.NoError(t, owner.QueryRow(ctx, `SELECT has_table_privilege('public', 'blob_registry', 'DELETE')`).Scan(&publicDelete))
	assert.False(t, publicDelete)
	var n int
	require.NoError(t, owner.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns WHERE table_name = 'blob_registry' AND column_name = 'evil'`).Scan(&n))
	assert.Zero(t, n)
}

func TestEnsureRuntimeLoginRefusesBadNames(t *testing.T) {
	t.Parallel()
	owner := pgtest.Connect(t, pgtest.NewDB(t))
	require.NoError(t, registry.Migrate(t.Context(), owner))
	for _, bad := range []string{"", "Robert'); DROP TABLE x;--", registry.RuntimeRole, "postgres", "UPPER"} {
		assert.Error(t, registry.EnsureRuntimeLogin(t.Context(), owner, bad, "pw"), bad)
	}
}
