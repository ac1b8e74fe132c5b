package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
)

// BuildBackfill wires the backfill function's Service from the validated configuration and the
// GEOBLOB_BACKFILL_* variables read through getenv: Build, plus the
// inventory bucket's store (same endpoint, region and credentials as the
// primary) when GEOBLOB_BACKFILL_INVENTORY is set. progress may be nil.
// opts are passed to Build (e.g. WithCopies).
func BuildBackfill(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger, progress func(backfill.Progress), opts ...Option) (*backfill.Service, error) {
	bcfg, err := backfill.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	a, err := Build(ctx, cfg, logger, opts...)
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	built := false
	defer func() {
		if !built {
			a.Close()
		}
	}()
	o := backfill.Options{
		Config:        bcfg,
		Pool:          a.Pool,
		Registry:      a.Registry,
		Engine:        a.Engine,
		Catalog:       a.Catalog,
		Primary:       a.Primary,
		PrimaryBucket: cfg.Primary.Name,
		Secondary:     a.Secondary,
		SyncTimeout:   cfg.SyncTimeout,
		Logger:        a.Logger,
		Progress:      progress,
		PassLog:       a.Registry,
	}
	if bcfg.SyncQueueURL != "" {
		d, err := Dispatcher(ctx, cfg, bcfg.SyncQueueURL)
		if err != nil {
			return nil, fmt.Errorf("backfill: sync queue: %w", err)
		}
		o.Dispatcher = d
	}
	if bcfg.Inventory != nil {
		b := cfg.Primary
		b.Name = bcfg.Inventory.Bucket
		inv, err := blobstore.Open(ctx, Location(b, cfg.PathStyle), blobstore.Options{Logger: a.Logger})
		if err != nil {
			return nil, fmt.Errorf("backfill: inventory bucket: %w", err)
		}
		o.Inventory = inv
	}
	r, err := backfill.New(o)
	if err != nil {
		return nil, err
	}
	built = true
	return &backfill.Service{Runner: r, Registry: a.Registry, Logger: a.Logger, Release: a.Close}, nil
}
