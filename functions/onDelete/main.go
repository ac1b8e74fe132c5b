// Command onDelete is the geoblob Lambda function subscribed to the primary
// bucket's ObjectRemoved:* and LifecycleExpiration:* notifications
// (through SQS or EventBridge). It is thin wiring: configuration from the
// environment, dependencies built once per cold start, then the shared handler.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/events"
)

const function = "onDelete"

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

	a, err := app.Build(context.Background(), cfg, logger)
	if err != nil {
		logger.Error("cannot build dependencies", "error", err)
		return 1
	}
	defer a.Close()
	h, err := a.NewHandler(function, events.KindRemoved)
	if err != nil {
		logger.Error("cannot build handler", "error", err)
		return 1
	}
	lambda.Start(h.Handle)
	return 0
}
