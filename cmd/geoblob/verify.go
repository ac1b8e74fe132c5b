package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/verify"
)

// verifyUsage is the line for the command list in usage.
const verifyUsage = "  verify        checksum every replicated file on both sides of the local stack and show the result\n"

// runVerify is `geoblob verify [-mode deep|fast] [-budget 10m] [-accept-primary ID]`:
// verification passes against the local stack in dir until nothing is due,
// then the per-type table; it fails unless every file is verified.
// -accept-primary resolves a flagged primary (an operator's decision that
// its new content is right) and sends the row to sync.
func runVerify(ctx context.Context, fs *flag.FlagSet, dir *string, args []string, stdout io.Writer, logger *slog.Logger) error {
	mode := fs.String("mode", "", "deep or fast (default: GEOBLOB_VERIFY_MODE / per-type modes)")
	budget := fs.Duration("budget", 0, "time budget of each pass (default GEOBLOB_VERIFY_BUDGET)")
	accept := fs.String("accept-primary", "", "registry row id whose flagged primary content is accepted (resyncs it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	s, err := devstack.LoadSettings(abs)
	if err != nil {
		return err
	}
	getenv := s.Getenv(os.Getenv)
	if *accept != "" {
		id, err := strconv.ParseInt(*accept, 10, 64)
		if err != nil {
			return fmt.Errorf("-accept-primary needs a row id, got %q", *accept)
		}
		return acceptPrimary(ctx, getenv, id, stdout, logger)
	}
	ro := verify.RunOptions{Budget: *budget}
	if *mode != "" {
		m, err := verify.ParseMode(*mode)
		if err != nil {
			return err
		}
		ro.Mode = m
	}
	_, err = runVerifyLocal(ctx, getenv, ro, stdout, logger)
	return err
}

func acceptPrimary(ctx context.Context, getenv func(string) string, id int64, stdout io.Writer, logger *slog.Logger) error {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	svc, err := app.BuildVerify(ctx, cfg, getenv, logger)
	if err != nil {
		return err
	}
	defer svc.Close()
	if err := svc.Store.AcceptPrimary(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "row %d: primary content accepted; it will be copied to the secondary by the next sync\n", id)
	return nil
}

// runVerifyLocal builds the verify service from the environment read
// through getenv (the local stack's settings), runs passes until nothing is
// due and prints the per-type table to out; it returns an error wrapping
// verify.ErrNotVerified unless every live file is verified. `geoblob
// verify` (make verify) calls it.
func runVerifyLocal(ctx context.Context, getenv func(string) string, ro verify.RunOptions, out io.Writer, logger *slog.Logger) (verify.Report, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return verify.Report{}, fmt.Errorf("verify: %w", err)
	}
	svc, err := app.BuildVerify(ctx, cfg, getenv, logger)
	if err != nil {
		return verify.Report{}, err
	}
	defer svc.Close()
	return svc.RunUntilDone(ctx, ro, verify.DefaultMaxPasses, out)
}
