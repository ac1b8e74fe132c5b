// Command api is the geoblob Lambda function behind a function URL with
// AuthType AWS_IAM: the operator API (/api/v1) and console of shared/api,
// served through aws-lambda-go's lambdaurl (InvokeMode RESPONSE_STREAM).
// Read-only unless GEOBLOB_API_ACTIONS=true; actions are audited with the
// caller's IAM ARN. Operators reach it with `geoblob console -aws`, which
// signs every request with their own credentials. Thin wiring only.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
)

func main() {
	os.Exit(app.RunLambda("api", func(ctx context.Context, cfg config.Config, logger *slog.Logger) (any, func(), error) {
		h, closeFn, err := app.BuildAPI(ctx, cfg, os.Getenv, logger)
		if err != nil {
			return nil, nil, err
		}
		return lambdaurl.Wrap(h), closeFn, nil
	}))
}
