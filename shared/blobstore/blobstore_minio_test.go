package blobstore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

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

// TestChecksumSHA256Validated: with x-amz-checksum-sha256 set, a real S3
// (MinIO) refuses bytes that do not match; gofakes3 does not check.
func TestChecksumSHA256Validated(t *testing.T) {
	t.Parallel()
	minio := s3test.Client(t.Context(), s3test.NewMinio(t).Endpoint())
	fake := s3test.Client(t.Context(), s3test.NewGofakes3(t))
	wrong := sha256.Sum256([]byte("not the body"))
	for name, c := range map[string]*s3.Client{"minio": minio, "gofakes3": fake} {
		s3test.CreateBucket(t, c, "sum")
		_, err := c.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String("sum"), Key: aws.String("k"), Body: bytes.NewReader([]byte("body")),
			ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(wrong[:])),
		})
		if name == "minio" {
			require.Error(t, err, "MinIO validates x-amz-checksum-sha256")
			t.Logf("minio rejects a wrong checksum: %v", err)
		} else {
			require.NoError(t, err, "gofakes3 ignores x-amz-checksum-sha256 (our own SHA-256 is what counts there)")
		}
	}
}
