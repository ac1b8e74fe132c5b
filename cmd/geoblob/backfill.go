package main

import (
	"context"
	"io"
	"os"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/shared/backfill"
)

// runBackfill is `geoblob backfill [flags]`: one backfill pass against the
// local stack in dir (its database and buckets, plus any GEOBLOB_* tuning
// from the environment), with a progress bar and a summary. The flags
// after "backfill" are backfill.RunCLI's own, so the stack directory comes
// from GEOBLOB_STACK_DIR (defaultDir). Wire it into run's switch with:
//
//	case "backfill":
//		return runBackfill(ctx, defaultDir(), args, stdout, stderr)
func runBackfill(ctx context.Context, dir string, args []string, stdout, stderr io.Writer) error {
	s, err := devstack.LoadSettings(dir)
	if err != nil {
		return err
	}
	// The stack's credentials reach the AWS clients through getenv
	// (config.Config.Credentials), not through the process environment.
	return backfill.RunCLI(ctx, s.Getenv(os.Getenv), args, stdout, stderr)
}
