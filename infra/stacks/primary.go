package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// PrimaryStack is the small stack in the primary region: it only turns on
// EventBridge notifications of the registry's bucket and forwards its object
// events to the secondary region's bus. Nothing the disaster-recovery side
// needs to run lives here.
type PrimaryStack struct {
	// Stack is the CDK stack.
	Stack awscdk.Stack
	// Bucket is the primary bucket (imported, or created for a demo).
	Bucket awss3.IBucket
	// Rule forwards the bucket's object events to the secondary bus.
	Rule awsevents.Rule
	// ForwardDeadLetterQueue holds events the rule could not deliver.
	ForwardDeadLetterQueue awssqs.Queue
}

// newPrimaryStack builds the primary stack; c is validated.
func newPrimaryStack(scope constructs.Construct, id string, c Config) *PrimaryStack {
	stack := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Env:         env(c, c.PrimaryRegion),
		Description: jsii.String("geoblob primary side: EventBridge notifications of the registry bucket, forwarded to " + c.SecondaryRegion),
	})
	p := &PrimaryStack{Stack: stack}
	if c.CreatePrimaryBucket || c.LocalStack() {
		// LocalStack always gets a created bucket: turning EventBridge on for
		// an imported one takes a custom resource, which LocalStack skips.
		bucket := awss3.NewBucket(stack, jsii.String("PrimaryBucket"), &awss3.BucketProps{
			BucketName:        jsii.String(c.PrimaryBucket),
			Versioned:         jsii.Bool(true),
			Encryption:        awss3.BucketEncryption_S3_MANAGED,
			BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
			EnforceSSL:        jsii.Bool(true),
			ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		})
		enableEventBridge(bucket)
		p.Bucket = bucket
	} else {
		p.Bucket = awss3.Bucket_FromBucketName(stack, jsii.String("PrimaryBucket"), jsii.String(c.PrimaryBucket))
		// Adds EventBridge delivery to the bucket's notification configuration,
		// keeping the notifications configured outside this stack.
		p.Bucket.EnableEventBridgeNotification()
	}

	p.ForwardDeadLetterQueue = awssqs.NewQueue(stack, jsii.String("ForwardDeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(c.Prefix + "-forward-dlq"),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	bus := awsevents.EventBus_FromEventBusArn(stack, jsii.String("SecondaryBus"), jsii.String(fmt.Sprintf(
		"arn:%s:events:%s:%s:event-bus/%s", *stack.Partition(), c.SecondaryRegion, *stack.Account(), EventBusName(c))))
	p.Rule = awsevents.NewRule(stack, jsii.String("ForwardObjectEvents"), &awsevents.RuleProps{
		Description: jsii.String("geoblob: forward object events of " + c.PrimaryBucket + " to " + c.SecondaryRegion),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.s3"),
			DetailType: jsii.Strings("Object Created", "Object Deleted"),
			Detail: &map[string]any{
				"bucket": map[string]any{"name": []string{c.PrimaryBucket}},
			},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewEventBus(bus, &awseventstargets.EventBusProps{
			DeadLetterQueue: p.ForwardDeadLetterQueue,
		})},
	})

	topic := alarmTopic(stack, c)
	alarm(stack, "ForwardDeadLetters", c.Prefix+"-forward-dlq",
		"geoblob: object events could not be forwarded to "+c.SecondaryRegion+" (backfill will still find the blobs)",
		p.ForwardDeadLetterQueue.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(1)), Statistic: jsii.String("Maximum"),
		}), 1, 1, topic)
	awscdk.NewCfnOutput(stack, jsii.String("PrimaryBucketName"), &awscdk.CfnOutputProps{
		Value: p.Bucket.BucketName(), Description: jsii.String("GEOBLOB_PRIMARY_BUCKET"),
	})
	return p
}
