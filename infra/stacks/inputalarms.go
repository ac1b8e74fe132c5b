package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/geoblob/geoblob/shared/metrics"
)

// Metrics of input that can never succeed and of a missing primary bucket
// (shared/metrics names them; the functions write them as EMF lines).
const (
	// MetricRejectedEvents counts events the event functions rejected as
	// invalid (recorded in the registry's rejected_events, not retried).
	MetricRejectedEvents = metrics.NameRejectedEvents
	// MetricPrimaryBucketMissing is 1 while backfill finds no primary bucket.
	MetricPrimaryBucketMissing = metrics.NamePrimaryBucketMissing
)

// inputAlarms alarms on rejected events (someone must look at the
// rejected_events table) and on a missing primary bucket (nothing is
// replicated and no delete is propagated until it is back).
func inputAlarms(scope constructs.Construct, c Config, topic awssns.ITopic) {
	alarm(scope, "RejectedEvents", c.Prefix+"-rejected-events",
		"geoblob: events rejected as invalid (NUL or non-UTF-8 key, key over 1,024 bytes, negative size, bad sequencer); see the registry table rejected_events",
		registryMetric(MetricRejectedEvents, "Sum"), 1, 1, topic)
	alarm(scope, "PrimaryBucketMissing", c.Prefix+"-primary-bucket-missing",
		"geoblob: the primary bucket does not exist (deleted or renamed); copies fail and retry, deletes are not propagated",
		registryMetric(MetricPrimaryBucketMissing, "Maximum"), 1, 1, topic)
}
