package blobstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
)

func TestPartPlan(t *testing.T) {
	t.Parallel()
	s := New(nil, "b", Options{})
	const mib, gib, tib = int64(1 << 20), int64(1 << 30), int64(1 << 40)
	cases := []struct {
		size     int64
		partSize int64
		conc     int
	}{
		{17 * mib, 8 * mib, 4},
		{gib, 8 * mib, 4},
		{78 * gib, 8 * mib, 4},   // 9,984 parts of 8 MiB
		{100 * gib, 11 * mib, 2}, // grown parts, fewer in flight
		{MaxObjectSize, 525 * mib, 1},
	}
	for _, c := range cases {
		ps, conc := s.PartPlan(c.size)
		assert.Equal(t, c.partSize, ps, "part size for %d", c.size)
		assert.Equal(t, c.conc, conc, "concurrency for %d", c.size)
		parts := (c.size + ps - 1) / ps
		assert.LessOrEqual(t, parts, int64(MaxParts))
		assert.LessOrEqual(t, ps*int64(conc), max(32*mib, ps), "buffers stay within budget")
	}
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
