package registry

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationsTable is the goose version table of the registry schema (kept
// apart from other packages' migrations in the same database).
const MigrationsTable = "registry_schema_migrations"

// migrationLockID is the advisory lock that serialises concurrent Migrate
// calls ("geoblob-registry" as a number).
const migrationLockID int64 = 0x67656f626c6f62

// Migrate brings the registry schema to the newest version. It is
// idempotent and safe to run from several processes at once (they serialise
// on a PostgreSQL advisory lock). It uses no goose global state.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return MigrateWithLogger(ctx, pool, nil)
}

// MigrateWithLogger is Migrate with goose's progress sent to logger (nil
// discards it).
func MigrateWithLogger(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return fmt.Errorf("registry: migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := provider(db, goose.WithSessionLocker(locker), goose.WithSlog(logger))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("registry: migrate: %w", err)
	}
	return nil
}

// provider is the goose provider of the embedded migrations on db.
func provider(db *sql.DB, opts ...goose.ProviderOption) (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("registry: migrations: %w", err)
	}
	opts = append([]goose.ProviderOption{goose.WithTableName(MigrationsTable), goose.WithDisableGlobalRegistry(true)}, opts...)
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("registry: migrations: %w", err)
	}
	return p, nil
}

// SchemaVersion returns the registry schema version applied in the
// database and the newest version embedded in this binary. They differ
// when Migrate has not run since the binary was built (or the database is
// newer than the binary). It reads only; it takes no lock.
func (s *Store) SchemaVersion(ctx context.Context) (applied, embedded int64, err error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := provider(db)
	if err != nil {
		return 0, 0, err
	}
	if srcs := p.ListSources(); len(srcs) > 0 {
		embedded = srcs[len(srcs)-1].Version
	}
	applied, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, embedded, fmt.Errorf("registry: schema version: %w", err)
	}
	return applied, embedded, nil
}
