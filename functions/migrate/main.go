// Command migrate is the geoblob Lambda function that applies the registry
// migrations (registry.Migrate). The infrastructure runs it during every
// deploy through a CloudFormation custom resource (CDK Provider framework),
// so the schema is never changed by hand. Invoked directly (any payload that
// is not a custom-resource event) it migrates too.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
)

const function = "migrate"

// physicalResourceID names the one schema the custom resource manages. It
// never changes, so an update never looks like a replacement to CloudFormation
// (which would send a Delete for the old id).
const physicalResourceID = "geoblob-registry-schema"

func main() {
	os.Exit(run())
}

func run() int {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", function)
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		logger.Error("invalid configuration", "error", err)
		return 2
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("function", function)
	h := handler{migrate: databaseMigrator(cfg, logger), logger: logger}
	lambda.Start(h.handle)
	return 0
}

// databaseMigrator returns a function that connects to the registry (a fresh
// pool per call: a deploy runs it once) and applies the migrations.
func databaseMigrator(cfg config.Config, logger *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		dsn, err := app.DatabaseURL(ctx, cfg, nil)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		pool, err := app.NewPool(ctx, dsn, 1)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer pool.Close()
		if err := registry.MigrateWithLogger(ctx, pool, logger); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	}
}

// response is what the Provider framework's onEvent handler returns.
type response struct {
	PhysicalResourceID string            `json:"PhysicalResourceId"`
	Data               map[string]string `json:"Data,omitempty"`
}

// handler applies the migrations on Create and Update (and on a direct
// invocation); Delete keeps the schema and its data.
type handler struct {
	migrate func(context.Context) error
	logger  *slog.Logger
}

func (h handler) handle(ctx context.Context, ev cfn.Event) (response, error) {
	h.logger.InfoContext(ctx, "migrate invoked", "request_type", ev.RequestType, "logical_resource_id", ev.LogicalResourceID)
	if ev.RequestType == cfn.RequestDelete {
		// Dropping the stack must never drop the registry.
		return response{PhysicalResourceID: physicalResourceID}, nil
	}
	if err := h.migrate(ctx); err != nil {
		h.logger.ErrorContext(ctx, "migration failed", "error", err)
		return response{}, err
	}
	h.logger.InfoContext(ctx, "registry schema is up to date")
	return response{
		PhysicalResourceID: physicalResourceID,
		Data:               map[string]string{"MigrationsTable": registry.MigrationsTable},
	}, nil
}
