package minioproc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/smithy-go"

	"github.com/geoblob/geoblob/internal/s3admin"
)

// targetWait bounds how long ConfigureWebhook waits for MinIO to register
// its webhook targets after start-up.
const targetWait = 15 * time.Second

// ConfigureWebhook makes bucket send s3:ObjectCreated:* and
// s3:ObjectRemoved:* events to the webhook target id (which the server
// must have been started with, see Options.Webhooks). It replaces the
// bucket's notification configuration.
//
// MinIO answers /minio/health/live before it has registered its webhook
// targets; until then it rejects the ARN with InvalidArgument. That answer
// is retried for up to 15 s (bounded by ctx); other errors are returned at
// once.
func ConfigureWebhook(ctx context.Context, bucket *s3admin.Bucket, id string) error {
	deadline := time.Now().Add(targetWait)
	for {
		err := bucket.NotifyQueue(ctx, "geoblob-"+id, WebhookARN(id), "s3:ObjectCreated:*", "s3:ObjectRemoved:*")
		if err == nil {
			return nil
		}
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidArgument" || time.Now().After(deadline) {
			return fmt.Errorf("minioproc: configure webhook %q on bucket %q: %w", id, bucket.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("minioproc: configure webhook %q on bucket %q: %w", id, bucket.Name(), errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
