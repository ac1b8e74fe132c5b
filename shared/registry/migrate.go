package registry

import (
	"context"
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
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("registry: migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return fmt.Errorf("registry: migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(MigrationsTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("registry: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("registry: migrate: %w", err)
	}
	return nil
}
