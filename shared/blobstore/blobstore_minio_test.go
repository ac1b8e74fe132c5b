package blobstore_test

import (
	"testing"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore/blobstoretest"
)

// TestMinio runs the conformance suite against two MinIO processes: one
// for Run, the pair of them as two regions for RunCopy.
func TestMinio(t *testing.T) {
	t.Parallel()
	blobstoretest.RunAll(t, s3test.Client(t.Context(), s3test.NewMinio(t).Endpoint()),
		s3test.Client(t.Context(), s3test.NewMinio(t).Endpoint()))
}
