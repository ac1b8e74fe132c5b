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

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/metrics"
)

func main() {
	os.Exit(app.RunLambda("backfill", func(ctx context.Context, cfg config.Config, logger *slog.Logger) (any, func(), error) {
		svc, err := app.BuildBackfill(ctx, cfg, os.Getenv, logger, nil, app.WithCopies(metrics.NewEMFCopies(os.Stdout)))
		if err != nil {
			return nil, nil, err
		}
		svc.MetricsOut = os.Stdout // registry health and per-type figures for the CloudWatch alarms (EMF)
		return svc.Handle, svc.Close, nil
	}))
}
