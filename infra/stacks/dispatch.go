package stacks

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// SyncQueueName is the Queues key of the sync-request queue: backfill
// dispatches claimed rows there and onCreate performs them, so event and
// backfill copies share onCreate's reserved concurrency (one copy cap).
const SyncQueueName = "syncRequests"

// SyncWindow is GEOBLOB_SYNC_WINDOW of backfill: the most sync claims in
// flight, the shared copy cap. Context syncWindow, or by default onCreate's
// reserved concurrency times copyConcurrency (an unreserved onCreate counts
// as 10 instances).
func (c Config) SyncWindow() int {
	if c.SyncWindowOverride > 0 {
		return c.SyncWindowOverride
	}
	n := c.Concurrency["onCreate"]
	if n <= 0 {
		n = 10
	}
	return n * c.CopyConcurrency
}

// syncQueue creates the sync-request queue and its dead-letter queue when
// both backfill (the dispatcher) and onCreate (the worker) are deployed:
// onCreate consumes it through a second event source mapping (partial
// batch failures, capped at its reserved concurrency), backfill alone may
// send to it (sqs:SendMessage, nothing else), and backfill is told its URL
// and window. Its alarms are made by syncQueueAlarms.
func (s *SecondaryStack) syncQueue(c Config, after constructs.IConstruct) {
	worker, okW := s.Functions["onCreate"]
	dispatcher, okD := s.Functions["backfill"]
	if !okW || !okD || !c.Dispatch {
		return
	}
	var workerTimeout time.Duration
	for _, f := range KnownFunctions() {
		if f.Name == "onCreate" {
			workerTimeout = f.Timeout
		}
	}
	scope := constructs.NewConstruct(s.Stack, jsii.String("SyncRequests"))
	name := c.Prefix + "-sync-requests"
	dlq := awssqs.NewQueue(scope, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(name + "-dlq"),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	q := awssqs.NewQueue(scope, jsii.String("Queue"), &awssqs.QueueProps{
		QueueName: jsii.String(name),
		// AWS recommends six times the consuming function's timeout.
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number((6 * workerTimeout).Seconds())),
		// A request older than the stuck-claim timeout is moot (its claim
		// was recovered and dispatched again); one day is plenty.
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(1)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		DeadLetterQueue: &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(float64(c.MaxReceiveCount))},
	})
	s.Queues[SyncQueueName] = q
	s.DeadLetterQueues[SyncQueueName] = dlq
	s.syncScope = scope

	props := &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(float64(c.BatchSize)),
		ReportBatchItemFailures: jsii.Bool(true),
	}
	if n := c.Concurrency["onCreate"]; n >= 2 {
		props.MaxConcurrency = jsii.Number(float64(n))
	}
	before := len(*worker.Node().Children())
	worker.AddEventSource(awslambdaeventsources.NewSqsEventSource(q, props))
	if after != nil {
		for _, child := range (*worker.Node().Children())[before:] {
			if m, ok := child.(awslambda.EventSourceMapping); ok {
				m.Node().AddDependency(after)
			}
		}
	}

	// SendMessageBatch is authorized as sqs:SendMessage; the queue uses
	// SSE-SQS, so no KMS permission is needed.
	dispatcher.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DispatchSyncRequests"),
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings("sqs:SendMessage"),
		Resources: &[]*string{q.QueueArn()},
	}))
	dispatcher.AddEnvironment(jsii.String("GEOBLOB_SYNC_QUEUE_URL"), q.QueueUrl(), nil)
	dispatcher.AddEnvironment(jsii.String("GEOBLOB_SYNC_WINDOW"), jsii.String(strconv.Itoa(c.SyncWindow())), nil)

}

// syncQueueAlarms alarms on the sync-request queue through the stack's
// alarm topic: messages in its dead-letter queue, and requests waiting
// longer than 5 minutes (the window should keep the queue short).
func (s *SecondaryStack) syncQueueAlarms(c Config) {
	q, ok := s.Queues[SyncQueueName]
	if !ok || s.alarmTopic == nil {
		return
	}
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	alarm(s.syncScope, "DeadLetters", c.Prefix+"-sync-requests-dlq",
		fmt.Sprintf("geoblob: sync requests failed %d times (registry unreachable from onCreate?); their rows are recovered and dispatched again after the sync timeout", c.MaxReceiveCount),
		s.DeadLetterQueues[SyncQueueName].MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")}), 1, 1, s.alarmTopic)
	alarm(s.syncScope, "QueueAge", c.Prefix+"-sync-requests-age",
		"geoblob: dispatched sync requests wait longer than 5 minutes (onCreate throttled or failing)",
		q.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")}), 5*60, 3, s.alarmTopic)
}
