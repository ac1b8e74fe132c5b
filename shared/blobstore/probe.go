package blobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// NotificationAPI is the S3 call Notifications makes; *s3.Client satisfies
// it (S3API does not include it, so a client given to New may lack it).
type NotificationAPI interface {
	GetBucketNotificationConfiguration(ctx context.Context, in *s3.GetBucketNotificationConfigurationInput, opts ...func(*s3.Options)) (*s3.GetBucketNotificationConfigurationOutput, error)
}

var _ NotificationAPI = (*s3.Client)(nil)

// ErrUnsupported is returned when the store's client lacks a call.
var ErrUnsupported = errors.New("blobstore: unsupported by the client")

// Notifications summarises where a bucket sends its event notifications.
type Notifications struct {
	// EventBridge: every event of the bucket goes to Amazon EventBridge.
	EventBridge bool
	// Created and Removed list the destinations (queue, topic or function
	// ARNs) of ObjectCreated and ObjectRemoved events.
	Created, Removed []string
}

// Notifications reads the bucket's notification configuration
// (s3:GetBucketNotification).
func (s *Store) Notifications(ctx context.Context) (Notifications, error) {
	api, ok := s.client.(NotificationAPI)
	if !ok {
		return Notifications{}, fmt.Errorf("%w: GetBucketNotificationConfiguration", ErrUnsupported)
	}
	out, err := api.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &s.bucket})
	if err != nil {
		return Notifications{}, opError("notifications", s.bucket, "", err)
	}
	n := Notifications{EventBridge: out.EventBridgeConfiguration != nil}
	add := func(arn string, events []string) {
		for _, e := range events {
			switch {
			case strings.HasPrefix(e, "s3:ObjectCreated:"):
				n.Created = append(n.Created, arn)
			case strings.HasPrefix(e, "s3:ObjectRemoved:"):
				n.Removed = append(n.Removed, arn)
			}
		}
	}
	for _, q := range out.QueueConfigurations {
		add(aws.ToString(q.QueueArn), eventNames(q.Events))
	}
	for _, t := range out.TopicConfigurations {
		add(aws.ToString(t.TopicArn), eventNames(t.Events))
	}
	for _, f := range out.LambdaFunctionConfigurations {
		add(aws.ToString(f.LambdaFunctionArn), eventNames(f.Events))
	}
	return n, nil
}

func eventNames[E ~string](es []E) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e)
	}
	return out
}

// ServerTime returns the time the S3 server reports in the Date header of
// a one-key listing of the bucket (s3:ListBucket), for clock-skew checks.
func (s *Store) ServerTime(ctx context.Context) (time.Time, error) {
	out, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)})
	if err != nil {
		return time.Time{}, opError("list", s.bucket, "", err)
	}
	t, ok := awsmiddleware.GetServerTime(out.ResultMetadata)
	if !ok || t.IsZero() {
		return time.Time{}, fmt.Errorf("blobstore: bucket %s: response had no Date header", s.bucket)
	}
	return t, nil
}
