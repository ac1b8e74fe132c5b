package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/metrics/prom"
	"github.com/geoblob/geoblob/shared/registry"
)

// buildInvoker builds the functions' handler from cfg with app.Build, as the
// Lambda entry points do, and wraps it with lambda.NewHandler so every body
// goes through the runtime's JSON decoding and encoding. Its copies are
// recorded in copies; the returned handler serves /metrics (registry gauges
// and copies). The returned func releases the handler's resources.
func buildInvoker(ctx context.Context, cfg config.Config, logger *slog.Logger, copies *prom.Copies) (sqsspool.Invoker, http.Handler, func(), error) {
	a, err := app.Build(ctx, cfg, logger, app.WithCopies(copies))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("devstack: %w", err)
	}
	return lambda.NewHandler(a.Handler.Handle), prom.Handler(a.Registry, copies), a.Close, nil
}

// OpenRegistry connects to the stack's registry. The returned func closes
// the connection pool.
func (s Settings) OpenRegistry(ctx context.Context) (*registry.Store, func(), error) {
	pool, err := pgxpool.New(ctx, s.DatabaseURL())
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: connect to registry: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("%w: registry at %s: %v", ErrNotUp, s.DatabaseURL(), err)
	}
	return registry.New(pool, registry.Options{}), pool.Close, nil
}
