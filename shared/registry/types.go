// Package registry tracks the replication and verification state of every blob
// in PostgreSQL: one row per (data type, object key), one schema for all types.
package registry

import (
	"errors"
	"time"
)

// ReplicationState is the sync state of a row. Values are stored as smallint
// and mirrored by a CHECK constraint.
type ReplicationState int16

// Replication states (Geo's numbering).
const (
	StatePending ReplicationState = 0
	StateStarted ReplicationState = 1
	StateSynced  ReplicationState = 2
	StateFailed  ReplicationState = 3
)

// String returns the state's lower-case name.
func (s ReplicationState) String() string {
	return enumName(s, "pending", "started", "synced", "failed")
}

// VerificationState is the verification state of a row.
type VerificationState int16

// Verification states (Geo's numbering).
const (
	VerificationPending   VerificationState = 0
	VerificationStarted   VerificationState = 1
	VerificationSucceeded VerificationState = 2
	VerificationFailed    VerificationState = 3
	VerificationDisabled  VerificationState = 4
)

// String returns the state's lower-case name.
func (s VerificationState) String() string {
	return enumName(s, "pending", "started", "succeeded", "failed", "disabled")
}

// Sentinel errors; callers test with errors.Is.
var (
	// ErrNotFound: no row for that (data type, key) or id.
	ErrNotFound = errors.New("registry: not found")
)

// MaxFailureLen is the longest failure message stored; longer ones are cut
// (never rejected) so a long error can not block a state transition.
const MaxFailureLen = 255

// Row is one registry row.
type Row struct {
	ID        int64
	DataType  string
	ObjectKey string

	State            ReplicationState
	Generation       int64 // bumped by every event and every claim; the compare-and-set token
	RetryCount       int
	RetryAt          *time.Time
	LastSyncFailure  string
	LastSyncedAt     *time.Time
	StartedAt        *time.Time // when the current/last claim started
	Size             int64
	ETag             string
	VersionID        string
	PrimarySHA256    string // lower-case hex, empty when unknown
	LastSequencer    string // normalized (see NormalizeSequencer) sequencer of the newest applied event
	MissingOnPrimary bool
	DeletedAt        *time.Time // tombstone: the primary object was deleted

	VerificationState      VerificationState
	VerificationStartedAt  *time.Time
	VerifiedAt             *time.Time
	VerificationRetryCount int
	VerificationRetryAt    *time.Time
	VerificationFailure    string
	SecondarySHA256        string
	ChecksumMismatch       bool

	// Primary is the verification state of the primary's bytes.
	Primary PrimaryVerification

	CreatedAt time.Time
	UpdatedAt time.Time
}

// PrimaryVerification is the primary-side verification state of a row
// (columns of migration 00020).
type PrimaryVerification struct {
	State            VerificationState
	StartedAt        *time.Time
	VerifiedAt       *time.Time
	RetryCount       int
	RetryAt          *time.Time
	Failure          string
	ChecksumMismatch bool   // the primary's bytes differ from the registry's checksum
	MismatchSHA256   string // what the primary's bytes hash to when flagged
	Generation       int64  // row generation when the state was last decided
}

// Tombstoned reports whether the row records a deletion.
func (r Row) Tombstoned() bool { return r.DeletedAt != nil }

// ObjectEvent is what the registry needs to know about one S3 event.
type ObjectEvent struct {
	DataType  string
	Key       string // URL-decoded object key
	Size      int64
	ETag      string
	VersionID string
	Sequencer string // as delivered by S3; normalized by the registry
	EventTime time.Time
}

// Applied says whether an event changed the registry.
type Applied bool

// Claim is a row this worker owns in the started state of one of the
// registry's state machines; only the holder of the claim's token (the
// generation, and for verification the claim's start time) may finish it.
type Claim struct {
	Row
	token time.Time // started_at of the machine's claim (verification machines)
}

// ClaimedAt is the claim's token: the time the row's machine was started
// at. A dispatcher hands it to the worker (events.VerifyRequest), which
// takes the claim over with AcceptSecondaryClaim or AcceptPrimaryClaim.
func (c Claim) ClaimedAt() time.Time { return c.token }

// SyncResult is what a finished copy reports.
type SyncResult struct {
	Size      int64
	SHA256    string // hex
	ETag      string
	VersionID string
}

// TypeStats counts rows of one data type. The state counters count live
// rows only; tombstones are counted apart.
type TypeStats struct {
	DataType           string
	Files              int64 // live (not tombstoned) rows
	Pending            int64 // live rows pending sync
	Started            int64 // live rows being synced
	Synced             int64 // live rows synced
	Failed             int64 // live rows failed (waiting for retry_at)
	Tombstones         int64 // rows recording a deletion
	TombstonesPending  int64 // tombstones whose delete is not yet propagated (state != synced)
	Bytes              int64 // sum of sizes of live synced rows
	Verified           int64 // live rows with verification succeeded
	VerificationFailed int64 // live rows with verification failed
	ChecksumMismatch   int64 // live rows whose last verification found a mismatch
	Missing            int64 // live rows missing on primary
}

// enumName returns the name of an enumeration value: names[v], or
// "unknown" for a value out of range.
func enumName[T ~int | ~int16](v T, names ...string) string {
	if v < 0 || int(v) >= len(names) {
		return "unknown"
	}
	return names[v]
}
