// Command verify is the geoblob Lambda function that proves every secondary
// copy is byte-identical to its primary: it checksums primaries that have
// no checksum, re-reads secondaries and compares, reverifies after
// GEOBLOB_REVERIFY_INTERVAL and sends bad copies back to sync. It runs on an
// EventBridge Scheduler schedule and on demand with a payload such as
// {"mode":"deep","budget":"10m"}. All the work is in shared/verify.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
)

func main() {
	os.Exit(app.RunLambda("verify", func(ctx context.Context, cfg config.Config, logger *slog.Logger) (any, func(), error) {
		svc, err := app.BuildVerify(ctx, cfg, os.Getenv, logger)
		if err != nil {
			return nil, nil, err
		}
		return svc.Handle, svc.Close, nil
	}))
}
