package app

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/geoblob/geoblob/shared/health"
)

// HealthChecker returns a health check on the app's registry and buckets with the
// thresholds and dead-letter queues read through getenv (SQS client with
// the app's credentials, AWSConfig). readOnly: see health.Options.ReadOnly.
// deadLetters,
// when not nil, replaces the SQS queues (the local stack's directory).
func HealthChecker(ctx context.Context, a *App, getenv func(string) string, readOnly bool, deadLetters health.DeadLetters) (*health.Checker, error) {
	o, queues, err := health.OptionsFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	o.Registry, o.Primary, o.Secondary, o.ReadOnly = a.Registry, a.Primary, a.Secondary, readOnly
	o.DeadLetters = deadLetters
	if o.DeadLetters == nil && len(queues) > 0 {
		awsCfg, err := AWSConfig(ctx, a.Config, "")
		if err != nil {
			return nil, fmt.Errorf("health: aws config: %w", err)
		}
		o.DeadLetters = health.SQSDeadLetters{Client: sqs.NewFromConfig(awsCfg), QueueURLs: queues}
	}
	return health.New(o)
}
