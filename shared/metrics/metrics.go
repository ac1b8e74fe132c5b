// Package metrics names geoblob's CloudWatch metrics and writes them in
// CloudWatch Embedded Metric Format. It has no dependencies, so the CDK app
// (infra/) and the functions share one definition.
package metrics

import (
	"io"
	"time"
)

// CloudWatch names of the registry health metrics. The infrastructure's
// alarms and dashboard read exactly these (infra/stacks/monitoring.go).
const (
	// Namespace holds every geoblob metric.
	Namespace = "Geoblob"
	// NameOldestUnsyncedAge is Health.OldestUnsyncedAge in seconds.
	NameOldestUnsyncedAge = "OldestUnsyncedAgeSeconds"
	// NameFailedBlobs is Health.Failed.
	NameFailedBlobs = "FailedBlobs"
	// NameQuarantinedBlobs is Health.Quarantined.
	NameQuarantinedBlobs = "QuarantinedBlobs"
	// NameDeleteBrakeTripped is Health.DeleteBrakeTripped (tripped scopes;
	// the delete-brake alarm fires at 1).
	NameDeleteBrakeTripped = "DeleteBrakeTripped"
	// NameHeldDeletes is Health.HeldDeletes.
	NameHeldDeletes = "HeldDeletes"
	// NamePrimaryBucketMissing is Health.PrimaryBucketMissing (1 or 0).
	NamePrimaryBucketMissing = "PrimaryBucketMissing"
)

// Health summarises the registry of the enabled data types.
type Health struct {
	// OldestUnsyncedAge is how long the longest-waiting live row that is not
	// synced (pending, started, or failed and still retried) has waited
	// since its last change; 0 when every row is synced.
	OldestUnsyncedAge time.Duration
	// Failed counts rows in state failed that are still retried.
	Failed int64
	// Quarantined counts rows given up on until an operator resyncs them.
	Quarantined int64
	// DeleteBrakeTripped counts tripped delete-brake scopes (0: deletes flow).
	DeleteBrakeTripped int64
	// HeldDeletes counts deletes the brake holds for an operator.
	HeldDeletes int64
	// PrimaryBucketMissing is 1 when the primary bucket does not exist
	// (deleted, renamed): nothing can be replicated and nothing is taken
	// for deleted; an operator must act.
	PrimaryBucketMissing int64
}

// WriteEMF writes h as one CloudWatch Embedded Metric Format line (namespace
// Namespace, no dimensions). Written to a Lambda function's stdout,
// CloudWatch turns it into the metrics the alarms watch; nothing else is
// needed (no PutMetricData call, no extra permission).
func WriteEMF(w io.Writer, h Health, at time.Time) error {
	return writeEMF(w, at, []value{
		{NameOldestUnsyncedAge, "Seconds", h.OldestUnsyncedAge.Seconds()},
		{NameFailedBlobs, "Count", h.Failed},
		{NameQuarantinedBlobs, "Count", h.Quarantined},
		{NameDeleteBrakeTripped, "Count", h.DeleteBrakeTripped},
		{NameHeldDeletes, "Count", h.HeldDeletes},
		{NamePrimaryBucketMissing, "Count", h.PrimaryBucketMissing},
	})
}
