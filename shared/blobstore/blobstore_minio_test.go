package blobstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/blobstore/blobstoretest"
)

// TestMinio runs the conformance suite against two MinIO processes: one
// for Run, the pair of them as two regions for RunCopy.
func TestMinio(t *testing.T) {
	t.Parallel()
	primary := s3test.Client(t.Context(), s3test.NewMinio(t).Endpoint())
	secondary := s3test.Client(t.Context(), s3test.NewMinio(t).Endpoint())
	var n atomic.Int64
	storeOn := func(t *testing.T, client *s3.Client) *blobstore.Store {
		bucket := fmt.Sprintf("conf-%d", n.Add(1))
		s3test.CreateBucket(t, client, bucket)
		return blobstore.New(client, bucket, blobstore.Options{})
	}
	blobstoretest.Run(t, func(t *testing.T) *blobstore.Store { return storeOn(t, primary) })
	blobstoretest.RunMissingBucket(t, func(t *testing.T) (*blobstore.Store, *blobstore.Store) {
		return blobstore.New(primary, "geoblob-no-such-bucket", blobstore.Options{}), storeOn(t, primary)
	})
	blobstoretest.RunCopy(t, func(t *testing.T) (*blobstore.Store, *blobstore.Store) {
		return storeOn(t, primary), storeOn(t, secondary)
	})
}
