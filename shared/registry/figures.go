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
		AtRiskObjects:     t.AtRiskObjects(), AtRiskBytes: t.BytesPending,
	}
}

// AtRiskObjects counts the rows a failover now would lose or serve stale:
// live rows not synced plus tombstones whose delete is not propagated
// (held deletes included). It equals the sum of a DRTypeReport's
// categories; the bytes of the live ones are BytesPending.
func (t TypeStatus) AtRiskObjects() int64 { return t.Rows - t.Synced + t.TombstonesPending }
