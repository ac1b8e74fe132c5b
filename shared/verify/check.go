package verify

import (
	"context"
	"errors"
)

// Check is the result of checking one object against an expected SHA-256.
type Check struct {
	Outcome Outcome
	// SHA256 is the observed content checksum (hex); "" when the object is
	// missing or the check failed.
	SHA256 string
	// Size is the observed size; BytesRead the bytes read to decide (0 when
	// the stored checksum sufficed).
	Size      int64
	BytesRead int64
	// Fast is true when the stored checksum decided without reading bytes.
	Fast bool
	// ETag and VersionID describe the object that was checked.
	ETag      string
	VersionID string
	// Err is set for OutcomeError.
	Err error
}

// CheckObject checks the object key of side against want (hex SHA-256).
// In fast mode a stored full-object SHA-256 equal to want and a size equal
// to wantSize (when >= 0) decide a match with no read; everything else is
// decided by one deep read. An empty want only computes the checksum
// (Outcome is OutcomeMatch when the object could be read).
func CheckObject(ctx context.Context, side Side, key, want string, wantSize int64, mode Mode) Check {
	if mode == ModeFast && want != "" {
		st, err := side.Stat(ctx, key)
		if c, failed := readFailed(err); failed {
			return c
		}
		if st.SHA256 == want && (wantSize < 0 || st.Size == wantSize) {
			return Check{Outcome: OutcomeMatch, SHA256: st.SHA256, Size: st.Size, Fast: true, ETag: st.ETag, VersionID: st.VersionID}
		}
		// No usable stored checksum, or one that differs: the bytes decide.
	}
	d, err := side.Hash(ctx, key)
	if c, failed := readFailed(err); failed {
		return c
	}
	c := Check{Outcome: OutcomeMatch, SHA256: d.SHA256, Size: d.Size, BytesRead: d.Size, ETag: d.ETag, VersionID: d.VersionID}
	if want != "" && d.SHA256 != want {
		c.Outcome = OutcomeMismatch
	}
	return c
}

// readFailed is the Check of a read of the object that failed with err
// (missing when the object does not exist, else an error); failed is false
// when err is nil.
func readFailed(err error) (c Check, failed bool) {
	switch {
	case err == nil:
		return Check{}, false
	case errors.Is(err, ErrObjectNotFound):
		return Check{Outcome: OutcomeMissing}, true
	default:
		return Check{Outcome: OutcomeError, Err: err}, true
	}
}
