package health

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
)

// ErrInvalid is returned (wrapped, naming the variable) for an unusable
// GEOBLOB_HEALTH_* or GEOBLOB_DEAD_LETTER_QUEUES value.
var ErrInvalid = errors.New("health: invalid")

// Reference lists the variables the health check reads (for the README).
var Reference = []config.Var{
	{Name: "GEOBLOB_DEAD_LETTER_QUEUES", Default: "", Description: "Comma-separated SQS dead-letter queue URLs the health check counts (AWS; the stack sets it on the api function). Locally the event daemon's dead-letter directory is counted."},
	{Name: "GEOBLOB_HEALTH_BACKFILL_MAX_AGE", Default: "10m", Description: "Health check: the last backfill pass must have succeeded within this long."},
	{Name: "GEOBLOB_HEALTH_VERIFY_MAX_AGE", Default: "30m", Description: "Health check: the last verify pass must have succeeded within this long."},
}

// OptionsFromEnv reads the thresholds of Reference into Options (no
// dependencies set) and returns the dead-letter queue URLs.
func OptionsFromEnv(getenv func(string) string) (Options, []string, error) {
	e := config.NewEnv(getenv, ErrInvalid)
	o := Options{
		BackfillMaxAge: e.Duration("GEOBLOB_HEALTH_BACKFILL_MAX_AGE", DefaultBackfillMaxAge),
		VerifyMaxAge:   e.Duration("GEOBLOB_HEALTH_VERIFY_MAX_AGE", DefaultVerifyMaxAge),
	}
	var queues []string
	for _, u := range strings.Split(e.Str("GEOBLOB_DEAD_LETTER_QUEUES"), ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			e.Fail("GEOBLOB_DEAD_LETTER_QUEUES", "must hold queue URLs, got %q", u)
		}
		queues = append(queues, u)
	}
	return o, queues, e.Err()
}

// ForApp returns a checker on the app's registry and buckets with the
// thresholds and dead-letter queues read through getenv (SQS client with
// the app's credentials, app.AWSConfig). readOnly: see Options.ReadOnly. deadLetters,
// when not nil, replaces the SQS queues (the local stack's directory).
func ForApp(ctx context.Context, a *app.App, getenv func(string) string, readOnly bool, deadLetters DeadLetters) (*Checker, error) {
	o, queues, err := OptionsFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	o.Registry, o.Primary, o.Secondary, o.ReadOnly = a.Registry, a.Primary, a.Secondary, readOnly
	o.DeadLetters = deadLetters
	if o.DeadLetters == nil && len(queues) > 0 {
		awsCfg, err := app.AWSConfig(ctx, a.Config, "")
		if err != nil {
			return nil, fmt.Errorf("health: aws config: %w", err)
		}
		o.DeadLetters = SQSDeadLetters{Client: sqs.NewFromConfig(awsCfg), QueueURLs: queues}
	}
	return New(o)
}
