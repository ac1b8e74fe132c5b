package registry

import "github.com/geoblob/geoblob/shared/metrics"

// Figures returns the status as the per-type figures geoblob publishes as
// metrics (Prometheus locally, CloudWatch EMF in AWS).
func (t TypeStatus) Figures() metrics.TypeFigures {
	return metrics.TypeFigures{
		DataType: t.DataType,
		Rows:     t.Rows, Pending: t.Pending, Started: t.Started, Synced: t.Synced, Failed: t.Failed,
		VerificationPending: t.VerificationPending, VerificationStarted: t.VerificationStarted,
		Verified: t.Verified, VerificationFailed: t.VerificationFailed, ChecksumMismatch: t.ChecksumMismatch,
		PrimaryChecksummed: t.PrimaryChecksummed, PrimaryChecksumFailed: t.PrimaryChecksumFailed,
		MissingOnPrimary: t.MissingOnPrimary, Quarantined: t.Quarantined, BytesPending: t.BytesPending,
		OldestUnsyncedAge: t.OldestUnsyncedAge,
	}
}
