// Command backfill is the geoblob Lambda function that makes lost events
// harmless: it recovers stuck rows, registers primary objects no event
// announced, propagates deletes no event announced, and syncs pending and
// due-failed rows, resuming its cursor across invocations. It runs on an
// EventBridge Scheduler schedule (every minute) and on demand with a
// payload such as {"phases":["reconcile","sync"],"budget":"10m"}. All the
// work is in shared/backfill.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/config"
)

const function = "backfill"

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

	svc, err := backfill.Build(context.Background(), cfg, os.Getenv, logger, nil)
	if err != nil {
		logger.Error("cannot build dependencies", "error", err)
		return 1
	}
	defer svc.Close()
	lambda.Start(svc.Handle)
	return 0
}
