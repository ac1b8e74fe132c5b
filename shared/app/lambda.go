package app

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/metrics"
)

// BuildFunc builds one function's Lambda handler from validated
// configuration, once per cold start. closeFn (may be nil) releases what it
// built when the runtime stops the process.
type BuildFunc func(ctx context.Context, cfg config.Config, logger *slog.Logger) (handler any, closeFn func(), err error)

// RunLambda is the whole main of a geoblob function: JSON logs tagged with
// the function name, configuration from the environment (exit code 2 and an
// error naming every bad variable), dependencies built once (exit code 1 on
// failure), then the Lambda runtime loop with the handler. It returns the
// exit code only when configuration or the build fails: the runtime loop
// never returns. closeFn runs when the runtime sends SIGTERM before it
// stops the process (lambda.WithEnableSIGTERM registers the internal
// extension that makes Lambda send it), so the database pool is closed
// cleanly instead of being cut by SIGKILL.
func RunLambda(function string, build BuildFunc) int {
	logger := functionLogger(function, slog.LevelInfo)
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		logger.Error("invalid configuration", "error", err)
		return 2
	}
	logger = functionLogger(function, cfg.LogLevel)
	handler, closeFn, err := build(context.Background(), cfg, logger)
	if err != nil {
		logger.Error("cannot build dependencies", "error", err)
		return 1
	}
	var opts []lambda.Option
	if closeFn != nil {
		opts = append(opts, lambda.WithEnableSIGTERM(func() {
			logger.Info("SIGTERM: releasing resources before shutdown")
			closeFn()
		}))
	}
	lambda.StartWithOptions(handler, opts...)
	return 0
}

// EventFunction builds the handler of an event function (onCreate, onDelete):
// the shared handler expecting events of kind expect.
func EventFunction(function string, expect events.Kind) BuildFunc {
	return func(ctx context.Context, cfg config.Config, logger *slog.Logger) (any, func(), error) {
		a, err := Build(ctx, cfg, logger, WithCopies(metrics.NewEMFCopies(os.Stdout)))
		if err != nil {
			return nil, nil, err
		}
		h, err := a.NewHandler(function, expect)
		if err != nil {
			a.Close()
			return nil, nil, err
		}
		return h.Handle, a.Close, nil
	}
}

func functionLogger(function string, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("function", function)
}
