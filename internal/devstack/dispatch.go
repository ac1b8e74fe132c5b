package devstack

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/dispatch"
)

// The local request queues: backfill's sync requests (delivered to
// onCreate, as in AWS: SyncQueueConcurrency sync worker processes of the
// onCreate binary, or the in-process handler) and verify's verification
// requests (delivered to verify workers). The
// dispatchers reach them through the SQS API stand-in on the events
// address (sqsspool.SQSAPI), with the same SQS client and sender as in
// AWS.
const (
	SyncQueueName   = "geoblob-sync-requests"
	VerifyQueueName = "geoblob-verify-requests"
	// SyncQueueConcurrency and VerifyQueueConcurrency are how many
	// invocations each runs at once (the event source mapping's maximum
	// concurrency), so the fan-out is exercised locally.
	SyncQueueConcurrency   = 4
	VerifyQueueConcurrency = 4
	// verifyQueueBatch is the verification queue's batch size: a worker
	// checks its batch at once, so the verify window is
	// VerifyQueueConcurrency x verifyQueueBatch.
	verifyQueueBatch = 10
)

// syncWindow is backfill's GEOBLOB_SYNC_WINDOW when the functions run as
// processes: SyncQueueConcurrency sync worker processes, each with its own
// engine copying GEOBLOB_COPY_CONCURRENCY objects at once (in AWS: the
// sync mapping's maximum concurrency x the copy cap).
func syncWindow(cfg config.Config) int { return SyncQueueConcurrency * cfg.CopyConcurrency }

// inProcessSyncWindow is backfill's window when the handler code runs in
// this process (Schedules.Run): GEOBLOB_COPY_CONCURRENCY, not
// SyncQueueConcurrency times it. In process, the sync-request queue's
// concurrent deliveries and the event queue's all go to one handler, whose
// one replication engine caps the copies in flight at
// GEOBLOB_COPY_CONCURRENCY (one execution environment); a bigger window
// would only queue requests behind that semaphore while counting them as
// being copied. The window follows the real cap, rather than the engine
// being built bigger, so GEOBLOB_COPY_CONCURRENCY keeps meaning the copies
// of one execution environment, as in AWS; the stack with the function
// processes is the one that runs SyncQueueConcurrency of them.
func inProcessSyncWindow(cfg config.Config) int { return cfg.CopyConcurrency }

// requestQueueOptions derives a request queue's options from the event
// queue's: its own spool and dead-letter directories next to the event
// spool's (suffix -<suffix>), concurrency invocations at once; Observe
// sees its deliveries too (from its own goroutine).
func requestQueueOptions(qo sqsspool.QueueOptions, suffix string, concurrency int) sqsspool.QueueOptions {
	so := qo
	so.Dir, so.DeadLetterDir = qo.Dir+"-"+suffix, qo.DeadLetterDir+"-"+suffix
	so.Concurrency = concurrency
	return so
}

// sender returns the dispatcher's SQS sender to the local queue name
// through the SQS API stand-in at endpoint (http://host:port).
func sender(endpoint, name string) *dispatch.SQS {
	client := sqs.New(sqs.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("geoblob-local", "geoblob-local", "")})
	return dispatch.NewSQS(client, sqsspool.QueueURL(endpoint, name), 0)
}

// verifyWorker builds the verify workers' handler (the verify function's
// own Handle, which takes the verification queue's SQS events) from the
// stack's configuration; the func releases it.
func verifyWorker(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger) (sqsspool.Invoker, func(), error) {
	svc, err := app.BuildVerify(ctx, cfg, func(k string) string {
		if k == "GEOBLOB_VERIFY_CONCURRENCY" {
			return fmt.Sprint(verifyQueueBatch) // a whole batch at once
		}
		return getenv(k)
	}, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: verify workers: %w", err)
	}
	return lambda.NewHandler(svc.Handle), svc.Close, nil
}
