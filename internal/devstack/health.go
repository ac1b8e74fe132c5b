package devstack

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/health"
)

// DeadLetterDir counts the event daemon's dead letters (the local stand-in
// of the SQS dead-letter queues) for the health check.
type DeadLetterDir string

var _ health.DeadLetters = DeadLetterDir("")

// DeadLetters returns the number of messages in the directory.
func (d DeadLetterDir) DeadLetters(context.Context) (int64, string, error) {
	c, err := sqsspool.CountSpool("", string(d))
	return int64(c.DeadLetters), string(d), err
}

// Check runs the health check against the local stack in dir (geoblob
// check): the stack's configuration, its registry and buckets with the
// write probe on the secondary, MinIO's notification configuration and the
// daemon's dead-letter directory. It prints one line per check to out and
// returns the report.
func Check(ctx context.Context, dir string, out io.Writer, logger *slog.Logger) (health.Report, error) {
	s, err := LoadSettings(dir)
	if err != nil {
		return health.Report{}, err
	}
	getenv := s.Getenv(os.Getenv)
	rep := CheckWith(ctx, getenv, DeadLetterDir(s.DeadLetterDir()), logger)
	return rep, health.WriteText(out, rep)
}

// CheckWith runs the health check on the configuration read through
// getenv with the given dead-letter source. A configuration that does not
// load is reported as the failed config check.
func CheckWith(ctx context.Context, getenv func(string) string, dl health.DeadLetters, logger *slog.Logger) health.Report {
	fail := func(err error) health.Report {
		c, _ := health.New(health.Options{ConfigErr: err})
		return c.Run(ctx)
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return fail(err)
	}
	a, err := app.Build(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	defer a.Close()
	c, err := app.HealthChecker(ctx, a, getenv, false, dl)
	if err != nil {
		return fail(err)
	}
	return c.Run(ctx)
}
