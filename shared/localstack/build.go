package localstack

import (
	"context"
	"errors"
	"log/slog"

	"github.com/geoblob/geoblob/shared/config"
)

// buildInvoker builds the functions' handler from cfg and wraps it with
// lambda.NewHandler. The returned func releases its resources.
func buildInvoker(ctx context.Context, cfg config.Config, logger *slog.Logger) (Invoker, func(), error) {
	return nil, nil, errors.New("localstack: app.Build not available yet")
}
