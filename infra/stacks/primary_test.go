package stacks

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPrimaryImportsBucketAndForwardsEvents(t *testing.T) {
	s := fixture(t, "full")
	assert.Equal(t, "us-east-1", *s.stacks.Primary.Stack.Region())
	assert.Equal(t, "us-west-2", *s.stacks.Secondary.Stack.Region())
	// An imported bucket: no bucket resource, only EventBridge turned on,
	// keeping the notifications configured outside the stack.
	check(t, "no bucket", func() { s.primary.ResourceCountIs(jsii.String("AWS::S3::Bucket"), jsii.Number(0)) })
	check(t, "eventbridge on", func() {
		s.primary.HasResourceProperties(jsii.String("Custom::S3BucketNotifications"), map[string]any{
			"BucketName":                "registry-packages",
			"Managed":                   false,
			"NotificationConfiguration": map[string]any{"EventBridgeConfiguration": map[string]any{}},
		})
	})
	dlqID := logicalIDOf(t, s.primaryJSON, "AWS::SQS::Queue", "ForwardDeadLetterQueue")
	rule := props(resource(t, s.primaryJSON, logicalIDOf(t, s.primaryJSON, "AWS::Events::Rule", "ForwardObjectEvents")))
	assert.Equal(t, map[string]any{
		"source":      []any{"aws.s3"},
		"detail-type": []any{"Object Created", "Object Deleted"},
		"detail":      map[string]any{"bucket": map[string]any{"name": []any{"registry-packages"}}},
	}, rule["EventPattern"])
	assert.Nil(t, rule["EventBusName"], "the default bus, where S3 delivers")
	targets := rule["Targets"].([]any)
	require.Len(t, targets, 1)
	target := targets[0].(map[string]any)
	arn := jsonString(target["Arn"])
	assert.Contains(t, arn, ":events:us-west-2:")
	assert.Contains(t, arn, ":event-bus/geoblob-s3-events")
	assert.Equal(t, map[string]any{"Arn": getAtt(dlqID, "Arn")}, target["DeadLetterConfig"])
	assert.NotNil(t, target["RoleArn"])
	check(t, "forward DLQ alarm", func() {
		s.primary.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"AlarmName":  "geoblob-forward-dlq",
			"MetricName": "ApproximateNumberOfMessagesVisible",
			"Dimensions": assertions.Match_ArrayWith(&[]any{map[string]any{"Name": "QueueName", "Value": getAtt(dlqID, "QueueName")}}),
		})
	})
	// The bus the rule targets is the one the secondary stack creates.
	check(t, "secondary bus", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::Events::EventBus"), map[string]any{"Name": "geoblob-s3-events"})
	})
	deps := s.stacks.Primary.Stack.Dependencies()
	require.Len(t, *deps, 1)
	assert.Equal(t, SecondaryStackID, *(*deps)[0].StackName())
}

func TestPrimaryDemoBucket(t *testing.T) {
	s := fixture(t, "minimal")
	check(t, "demo bucket", func() {
		s.primary.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
			"BucketName": "registry-packages",
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"VersioningConfiguration": map[string]any{"Status": "Enabled"},
		})
	})
	// A bucket the stack creates turns EventBridge on through its own
	// property: no custom resource (LocalStack skips those).
	check(t, "eventbridge on", func() {
		s.primary.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
			"NotificationConfiguration": map[string]any{"EventBridgeConfiguration": map[string]any{"EventBridgeEnabled": true}},
		})
	})
	assert.Empty(t, resources(s.primaryJSON, "Custom::S3BucketNotifications"))
	check(t, "TLS only", func() {
		s.primary.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), map[string]any{
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{
				"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
					"Effect": "Deny", "Action": "s3:*",
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				})}),
			}),
		})
	})
}
