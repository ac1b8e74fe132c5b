package devstack

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/shared/registry"
)

// migrate applies the registry schema to the database at url.
func migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("devstack: connect to registry: %w", err)
	}
	defer pool.Close()
	if err := registry.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}
