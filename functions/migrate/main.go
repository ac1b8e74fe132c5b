// Command migrate is the geoblob Lambda function that applies the registry
// migrations (registry.Migrate) as the database owner and makes the runtime
// login of GEOBLOB_DATABASE_RUNTIME_SECRET_ARN (app.MigrateRegistry); it is
// the only function that connects as the owner. The infrastructure runs it during every
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

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
)

const physicalResourceID = "geoblob-registry-schema"

func main() {
	os.Exit(app.RunLambda("migrate", func(_ context.Context, cfg config.Config, logger *slog.Logger) (any, func(), error) {
		h := handler{migrate: databaseMigrator(cfg, logger), logger: logger}
		return h.handle, nil, nil
	}))
}

func databaseMigrator(cfg config.Config, logger *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := app.MigrateRegistry(ctx, cfg, logger, nil); err != nil {
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
