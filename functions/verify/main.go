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

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/verify"
)

const function = "verify"

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
	logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("function", function)

	svc, err := verify.Build(context.Background(), cfg, os.Getenv, logger)
	if err != nil {
		logger.Error("cannot build dependencies", "error", err)
		return 1
	}
	defer svc.Close()
	lambda.Start(svc.Handle)
	return 0
}
