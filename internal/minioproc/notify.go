package minioproc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// NotificationAPI is the subset of *s3.Client that ConfigureWebhook uses.
type NotificationAPI interface {
	PutBucketNotificationConfiguration(ctx context.Context, in *s3.PutBucketNotificationConfigurationInput,
		opts ...func(*s3.Options)) (*s3.PutBucketNotificationConfigurationOutput, error)
}

var _ NotificationAPI = (*s3.Client)(nil)

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
func ConfigureWebhook(ctx context.Context, client NotificationAPI, bucket, id string) error {
	in := &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &types.NotificationConfiguration{
			QueueConfigurations: []types.QueueConfiguration{{
				Id:       aws.String("geoblob-" + id),
				QueueArn: aws.String(WebhookARN(id)),
				Events:   []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
			}},
		},
	}
	deadline := time.Now().Add(targetWait)
	for {
		_, err := client.PutBucketNotificationConfiguration(ctx, in)
		if err == nil {
			return nil
		}
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidArgument" || time.Now().After(deadline) {
			return fmt.Errorf("minioproc: configure webhook %q on bucket %q: %w", id, bucket, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("minioproc: configure webhook %q on bucket %q: %w", id, bucket, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
