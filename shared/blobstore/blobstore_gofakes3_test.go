package blobstore_test

import (
	"testing"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore/blobstoretest"
)

// TestGofakes3 runs the conformance suite against in-process gofakes3
// servers: one for Run, a second one as the other region for RunCopy.
func TestGofakes3(t *testing.T) {
	t.Parallel()
	blobstoretest.RunAll(t, s3test.Client(t.Context(), s3test.NewGofakes3(t)),
		s3test.Client(t.Context(), s3test.NewGofakes3(t)))
}
