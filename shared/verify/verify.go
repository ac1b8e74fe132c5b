// Package verify proves, continuously and cheaply, that every secondary copy
// is byte-identical to its primary, and sends copies that are not back to
// sync.
//
// A pass claims batches of registry rows (FOR UPDATE SKIP LOCKED) and, with at
// most Options.Concurrency objects in flight, does two kinds of work:
//
//   - Secondary verification: for synced rows whose primary SHA-256 is known,
//     read the secondary object once, hash it and compare. A match records
//     verified_at; a mismatch keeps the observed checksum, sets
//     checksum_mismatch and sends the row back to sync (state failed,
//     generation+1, retry_at) with a backoff that grows with every
//     consecutive mismatch and is reset only by a successful verification
//     (never by the sync in between: GitLab Geo bug #607991). A missing
//     secondary object is sent back to sync the same way.
//   - Primary verification: compute the SHA-256 of rows that have none, and
//     re-read primaries after the reverification interval. A primary whose
//     bytes changed while the registry saw no event is flagged
//     (primary_checksum_mismatch) and is not copied over the good secondary:
//     an operator decides (AcceptPrimary).
//
// Rows come due for reverification ReverifyInterval after their last
// verification at the latest, spread over the preceding ReverifySpread by a
// stable per-row offset so that a registry verified in one burst does not
// all come due in one burst. Rows stuck in started longer than Timeout are
// claimed again. A pass stops claiming when its time budget is spent; the
// registry is the only state, so the next pass resumes where it stopped.
//
// Fast mode asks the servers for the full-object SHA-256 they store with an
// object (HeadObject in checksum mode; S3 validates it on upload) and
// compares it to the registry, reading no bytes. It can only confirm a
// match: an object without such a checksum, or with one that differs, is
// verified in deep mode. Deep is the default.
package verify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/registry"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrObjectNotFound: the object does not exist (the bucket does); the
	// blob store's sentinel.
	ErrObjectNotFound = blobstore.ErrNotFound
	// ErrBucketMissing: the bucket itself does not exist. It is an error
	// of the check (recorded and retried), never a missing object; the blob
	// store's sentinel.
	ErrBucketMissing = blobstore.ErrNoSuchBucket
	// ErrShortRead: the body held fewer or more bytes than its
	// Content-Length; the blob store's sentinel.
	ErrShortRead = blobstore.ErrSizeMismatch
	// ErrInvalid: unusable options or input.
	ErrInvalid = errors.New("verify: invalid")
	// ErrNotFound: no registry row with that id (the registry's sentinel).
	ErrNotFound = registry.ErrNotFound
)

// Mode says how an object's content is checked.
type Mode string

// Modes.
const (
	// ModeDeep reads every byte and computes its SHA-256.
	ModeDeep Mode = "deep"
	// ModeFast compares the full-object SHA-256 the server stores, falling
	// back to deep when there is none or it does not match.
	ModeFast Mode = "fast"
)

// ParseMode parses "deep" or "fast" (case-insensitive).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeDeep, ModeFast:
		return m, nil
	}
	return "", fmt.Errorf("%w: mode %q: must be deep or fast", ErrInvalid, s)
}

// Outcome is the result of checking one object (the registry's
// verification outcome, which it records).
type Outcome = registry.VerifyOutcome

// Outcomes.
const (
	// OutcomeMatch: the content's SHA-256 equals the expected one.
	OutcomeMatch = registry.VerifyMatch
	// OutcomeMismatch: the content's SHA-256 differs.
	OutcomeMismatch = registry.VerifyMismatch
	// OutcomeMissing: the object does not exist.
	OutcomeMissing = registry.VerifyMissing
	// OutcomeError: the check could not be completed (transport, throttling).
	OutcomeError = registry.VerifyError
)
