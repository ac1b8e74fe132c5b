package minioproc

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// NotificationAPI is the subset of *s3.Client that ConfigureWebhook uses.
type NotificationAPI interface {
	PutBucketNotificationConfiguration(ctx context.Context, in *s3.PutBucketNotificationConfigurationInput,
		opts ...func(*s3.Options)) (*s3.PutBucketNotificationConfigurationOutput, error)
}

var _ NotificationAPI = (*s3.Client)(nil)

// ConfigureWebhook makes bucket send s3:ObjectCreated:* and
// s3:ObjectRemoved:* events to the webhook target id (which the server
// must have been started with, see Options.Webhooks). It replaces the
// bucket's notification configuration.
func ConfigureWebhook(ctx context.Context, client NotificationAPI, bucket, id string) error {
	_, err := client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &types.NotificationConfiguration{
			QueueConfigurations: []types.QueueConfiguration{{
				Id:       aws.String("geoblob-" + id),
				QueueArn: aws.String(WebhookARN(id)),
				Events:   []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("minioproc: configure webhook %q on bucket %q: %w", id, bucket, err)
	}
	return nil
}
