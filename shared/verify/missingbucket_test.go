package verify_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/verify"
)

// TestMissingBucketIsNotAMissingObject: checks against a bucket that does
// not exist end in an error (recorded and retried), never in "missing",
// which would send good secondaries back to sync or flag primaries.
func TestMissingBucketIsNotAMissingObject(t *testing.T) {
	t.Parallel()
	client := s3test.Client(t.Context(), s3test.NewGofakes3(t))
	side := blobstore.New(client, "geoblob-no-such-bucket", blobstore.Options{})
	_, err := side.Stat(t.Context(), "k")
	assert.ErrorIs(t, err, verify.ErrBucketMissing)
	assert.False(t, errors.Is(err, verify.ErrObjectNotFound), "stat: %v", err)
	_, err = side.Hash(t.Context(), "k")
	assert.ErrorIs(t, err, verify.ErrBucketMissing)
	assert.False(t, errors.Is(err, verify.ErrObjectNotFound), "hash: %v", err)
	for _, mode := range []verify.Mode{verify.ModeFast, verify.ModeDeep} {
		chk := verify.CheckObject(t.Context(), side, "k", "00", 1, mode)
		assert.Equal(t, verify.OutcomeError, chk.Outcome, "mode %s", mode)
	}
}
