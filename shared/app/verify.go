package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// BuildVerify wires the verify function's Service from geoblob's configuration and the
// GEOBLOB_VERIFY_* variables read through getenv: S3 clients for both
// buckets (blobstore.Open) and a database pool (DatabaseURL) sized for the
// verification concurrency. It does not connect yet. Close releases it.
func BuildVerify(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger) (*verify.Service, error) {
	opts, err := verify.OptionsFromEnv(getenv, cfg.ReverifyInterval)
	if err != nil {
		return nil, err
	}
	opts.Logger = logger
	primary, secondary, err := openBuckets(ctx, cfg, blobstore.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	dsn, err := DatabaseURL(ctx, cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	pool, err := NewPool(ctx, dsn, opts.Concurrency)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	built := false
	defer func() {
		if !built {
			pool.Close()
		}
	}()
	store := registry.New(pool, registry.Options{
		VerificationRetry: opts.RetryPolicy(),
		KeyPrefixes:       cfg.KeyPrefixes,
		Logger:            logger,
	})
	opts.PassLog = store
	if opts.QueueURL != "" {
		d, err := Dispatcher(ctx, cfg, opts.QueueURL)
		if err != nil {
			return nil, fmt.Errorf("verify: verification queue: %w", err)
		}
		opts.Dispatcher = d
	}
	v, err := verify.New(store, primary, secondary, opts)
	if err != nil {
		return nil, err
	}
	built = true
	return &verify.Service{Verifier: v, Store: store, Release: pool.Close}, nil
}
