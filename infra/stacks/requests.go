package stacks

import (
	"fmt"
	"slices"
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

// Request queues: a dispatcher function claims registry rows and sends one
// request per claim to a queue its workers consume (shared/dispatch); the
// workers' reserved concurrency is the cap, and the dispatcher keeps at
// most a window of claims in flight.
const (
	// SyncQueueName is the Queues key of the sync-request queue: backfill
	// dispatches claimed rows there and onCreate performs them, so event
	// and backfill copies share onCreate's reserved concurrency (one copy
	// cap).
	SyncQueueName = "syncRequests"
	// VerifyQueueName is the Queues key of the verification-request queue:
	// the verify function's scheduled pass dispatches claimed rows there and
	// verifyWorker checks them under its own reserved concurrency.
	VerifyQueueName = "verifyRequests"
)

// requestQueue describes one dispatcher → queue → worker path.
type requestQueue struct {
	key        string // Queues key
	construct  string // construct id grouping its resources
	name       string // queue name after the prefix
	dispatcher string // function that sends
	worker     string // function that consumes
	urlEnv     string // the dispatcher's variable naming the queue
	windowEnv  string // the dispatcher's variable naming the window
	window     int
	// instances is the mapping's maximum concurrency (< 2: none); batch
	// its batch size.
	instances, batch int
	sid              string // Sid of the send grant
	// workerEnv are variables set on the worker.
	workerEnv map[string]string
	// what the alarms say: the requests' purpose and how lost claims come back
	what, recovery string
}

// requestQueuesOf returns the request queues configuration c deploys.
func requestQueuesOf(c Config) []requestQueue {
	var qs []requestQueue
	if dispatching(c) {
		qs = append(qs, requestQueue{
			key: SyncQueueName, construct: "SyncRequests", name: "sync-requests",
			dispatcher: "backfill", worker: "onCreate",
			urlEnv: "GEOBLOB_SYNC_QUEUE_URL", windowEnv: "GEOBLOB_SYNC_WINDOW", window: c.SyncWindow(),
			// A batch never holds more copies than one instance runs at once
			// (a batch of 10 at 8 copies would run as two waves).
			instances: c.SyncRequestInstances(), batch: min(c.BatchSize, c.CopyConcurrency),
			sid: "DispatchSyncRequests", what: "sync requests",
			recovery: "their rows are recovered and dispatched again after the sync timeout",
		})
	}
	if verifyDispatching(c) {
		qs = append(qs, requestQueue{
			key: VerifyQueueName, construct: "VerifyRequests", name: "verify-requests",
			dispatcher: "verify", worker: "verifyWorker",
			urlEnv: "GEOBLOB_VERIFY_QUEUE_URL", windowEnv: "GEOBLOB_VERIFY_WINDOW", window: c.VerifyWindow(),
			instances: c.Concurrency["verifyWorker"], batch: c.BatchSize,
			sid: "DispatchVerifyRequests", what: "verification requests",
			recovery: "their rows are recovered and dispatched again after GEOBLOB_VERIFY_TIMEOUT",
			// One batch is checked at once: the window counts it whole.
			workerEnv: map[string]string{"GEOBLOB_VERIFY_CONCURRENCY": strconv.Itoa(c.BatchSize)},
		})
	}
	return qs
}

// SyncWindow is GEOBLOB_SYNC_WINDOW of backfill: the most sync claims in
// flight, the shared copy cap. Context syncWindow, or by default onCreate's
// reserved concurrency times copyConcurrency (an unreserved onCreate counts
// as 10 instances).
func (c Config) SyncWindow() int {
	if c.SyncWindowOverride > 0 {
		return c.SyncWindowOverride
	}
	return capOf(c, "onCreate") * c.CopyConcurrency
}

// SyncRequestInstances is the maximum concurrency of onCreate's
// sync-request mapping: how many onCreate instances backfill's requests
// may use. Context syncRequestConcurrency, or by default onCreate's cap
// (10 when unreserved) less what the event mapping keeps: a fifth, at
// least 2. With dispatch on, the event mapping gets the rest of onCreate's
// reserved concurrency (EventInstances), so the two mappings together
// never ask for more than it: event source mappings do not count reserved
// concurrency, an invocation beyond it is throttled, and a throttled
// batch returns to its queue after the visibility timeout with its
// receive count spent, on the way to the dead-letter queue.
func (c Config) SyncRequestInstances() int {
	if c.SyncRequestConcurrency > 0 {
		return c.SyncRequestConcurrency
	}
	n := capOf(c, "onCreate")
	return n - eventShare(n)
}

// eventShare is the part of n onCreate instances the event mapping keeps
// by default: a fifth, at least 2.
func eventShare(n int) int { return max(2, (n+4)/5) }

// EventInstances is the maximum concurrency of function's event mapping
// (0: none, the function is unreserved): its reserved concurrency less the
// instances of the request queues it also consumes (onCreate, while
// dispatch is on: SyncRequestInstances).
func (c Config) EventInstances(function string) int {
	n := c.Concurrency[function]
	if n <= 0 {
		return n
	}
	for _, rq := range requestQueuesOf(c) {
		if rq.worker == function {
			n -= rq.instances
		}
	}
	return n
}

// validateMappingConcurrency checks that onCreate's two mappings fit in
// its reserved concurrency with at least 2 instances each (the least
// maximum concurrency AWS accepts).
func (c Config) validateMappingConcurrency(fail func(key, format string, args ...any)) {
	if c.SyncRequestConcurrency < 0 || c.SyncRequestConcurrency > 1000 {
		fail("syncRequestConcurrency", "must be from 0 (derived) to 1000, got %d", c.SyncRequestConcurrency)
		return
	}
	if !dispatching(c) {
		return
	}
	r := c.Concurrency["onCreate"]
	if r > 0 && r < 4 {
		fail("concurrency.onCreate", "must be 0 (unreserved) or at least 4 with dispatch on: its event mapping and its sync-request mapping need 2 instances each, got %d", r)
		return
	}
	s := c.SyncRequestInstances()
	switch {
	case r > 0 && (s < 2 || s > r-2):
		fail("syncRequestConcurrency", "must be from 2 to concurrency.onCreate - 2 (%d): the event mapping keeps at least 2 of onCreate's %d reserved instances, got %d", r-2, r, s)
	case s < 2:
		fail("syncRequestConcurrency", "must be at least 2 (the least maximum concurrency AWS accepts), got %d", s)
	}
}

// VerifyWindow is GEOBLOB_VERIFY_WINDOW of verify: the most verification
// claims in flight, verifyWorker's reserved concurrency
// (concurrency.verifyWorker; unreserved counts as 10 instances) times the
// batch each instance checks at once (batchSize).
func (c Config) VerifyWindow() int {
	return capOf(c, "verifyWorker") * c.BatchSize
}

// capOf is a function's reserved concurrency, 10 when unreserved.
func capOf(c Config, function string) int {
	if n := c.Concurrency[function]; n > 0 {
		return n
	}
	return 10
}

// verifyDispatching reports whether the verify pass sends verification
// requests to verifyWorker (both deployed and dispatch on).
func verifyDispatching(c Config) bool {
	return c.Dispatch && slices.Contains(c.Functions, "verify") && slices.Contains(c.Functions, "verifyWorker")
}

// requestQueues creates every request queue of c (requestQueuesOf).
func (s *SecondaryStack) requestQueues(c Config, after constructs.IConstruct) {
	for _, rq := range requestQueuesOf(c) {
		s.requestQueue(c, rq, after)
	}
}

// requestQueue creates a request queue and its dead-letter queue: the
// worker consumes it through an event source mapping (partial batch
// failures, capped at its reserved concurrency), the dispatcher alone may
// send to it (sqs:SendMessage, nothing else), and the dispatcher is told
// its URL and window. Its alarms are made by requestQueueAlarms.
func (s *SecondaryStack) requestQueue(c Config, rq requestQueue, after constructs.IConstruct) {
	worker, dispatcher := s.Functions[rq.worker], s.Functions[rq.dispatcher]
	var workerTimeout time.Duration
	for _, f := range KnownFunctions() {
		if f.Name == rq.worker {
			workerTimeout = f.Timeout
		}
	}
	scope := constructs.NewConstruct(s.Stack, jsii.String(rq.construct))
	name := c.Prefix + "-" + rq.name
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
	s.Queues[rq.key] = q
	s.DeadLetterQueues[rq.key] = dlq
	s.requestScopes[rq.key] = scope

	props := &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(float64(rq.batch)),
		ReportBatchItemFailures: jsii.Bool(true),
	}
	if rq.instances >= 2 {
		props.MaxConcurrency = jsii.Number(float64(rq.instances))
	}
	before := len(*worker.Node().Children())
	// AddEventSource grants the worker's role exactly what the mapping
	// needs (sqs:ReceiveMessage, DeleteMessage, GetQueueAttributes,
	// ChangeMessageVisibility, GetQueueUrl on this queue).
	worker.AddEventSource(awslambdaeventsources.NewSqsEventSource(q, props))
	if after != nil {
		for _, child := range (*worker.Node().Children())[before:] {
			if m, ok := child.(awslambda.EventSourceMapping); ok {
				m.Node().AddDependency(after)
			}
		}
	}
	for k, v := range rq.workerEnv {
		worker.AddEnvironment(jsii.String(k), jsii.String(v), nil)
	}

	// SendMessageBatch is authorized as sqs:SendMessage; the queue uses
	// SSE-SQS, so no KMS permission is needed.
	dispatcher.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(rq.sid),
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings("sqs:SendMessage"),
		Resources: &[]*string{q.QueueArn()},
	}))
	dispatcher.AddEnvironment(jsii.String(rq.urlEnv), q.QueueUrl(), nil)
	dispatcher.AddEnvironment(jsii.String(rq.windowEnv), jsii.String(strconv.Itoa(rq.window)), nil)
}

// requestQueueAlarms alarms on every request queue through the stack's
// alarm topic: messages in its dead-letter queue, and requests waiting
// longer than 5 minutes (the window should keep the queue short).
func (s *SecondaryStack) requestQueueAlarms(c Config) {
	if s.alarmTopic == nil {
		return
	}
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	for _, rq := range requestQueuesOf(c) {
		q, ok := s.Queues[rq.key]
		if !ok {
			continue
		}
		name := c.Prefix + "-" + rq.name
		alarm(s.requestScopes[rq.key], "DeadLetters", name+"-dlq",
			fmt.Sprintf("geoblob: %s failed %d times (registry unreachable from %s?); %s", rq.what, c.MaxReceiveCount, rq.worker, rq.recovery),
			s.DeadLetterQueues[rq.key].MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")}), 1, 1, s.alarmTopic)
		alarm(s.requestScopes[rq.key], "QueueAge", name+"-age",
			fmt.Sprintf("geoblob: dispatched %s wait longer than 5 minutes (%s throttled or failing)", rq.what, rq.worker),
			q.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{Period: minute, Statistic: jsii.String("Maximum")}), 5*60, 3, s.alarmTopic)
	}
}
