package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/config"
)

// BuildAPI wires the api function (functions/api) from the validated
// configuration and getenv: the registry and buckets (Build), the health
// check with a read-only secondary probe (the api role may not write) and
// the SQS dead-letter queues of GEOBLOB_DEAD_LETTER_QUEUES, and the handler
// of api.NewFunction. close releases the database pool.
func BuildAPI(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger) (http.Handler, func(), error) {
	if _, err := api.ActionsFromEnv(getenv); err != nil {
		return nil, nil, err
	}
	a, err := Build(ctx, cfg, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("api: %w", err)
	}
	checker, err := HealthChecker(ctx, a, getenv, true, nil)
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("api: %w", err)
	}
	h, err := api.NewFunction(api.FunctionOptions{Config: cfg, Getenv: getenv, Registry: a.Registry, Health: checker, Logger: logger})
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return h, a.Close, nil
}
