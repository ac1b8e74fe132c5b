package s3admin_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
)

// Uploads are stored byte for byte, the small one in one PutObject, the
// large one (above SinglePutMax) as a multipart upload; creating a bucket
// twice is not an error, removing it twice is.
func TestBucket(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := s3test.Bucket(t, s3test.NewGofakes3(t), "admin")
	require.NoError(t, b.Create(ctx), "a bucket that exists is not an error")

	small := []byte("small body")
	up, err := b.Put(ctx, "k/small", small, "text/plain")
	require.NoError(t, err)
	assert.NotEmpty(t, up.ETag)
	large := bytes.Repeat([]byte("0123456789abcdef"), (17<<20)/16)
	up, err = b.Put(ctx, "k/large", large, "")
	require.NoError(t, err)
	assert.Contains(t, up.ETag, "-", "a multipart upload's ETag counts its parts")
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, []byte("from a file"), 0o600))
	n, err := b.PutFile(ctx, "k/file", file)
	require.NoError(t, err)
	assert.Equal(t, int64(11), n)

	for key, want := range map[string][]byte{"k/small": small, "k/large": large, "k/file": []byte("from a file")} {
		got, ok := s3test.Read(t, b, key)
		require.True(t, ok, key)
		assert.Equal(t, want, got, key)
	}
	obj, err := b.Store().Head(ctx, "k/small")
	require.NoError(t, err)
	assert.Equal(t, "text/plain", obj.ContentType)
	assert.Equal(t, []string{"k/file", "k/large", "k/small"}, s3test.Keys(t, b))

	for _, k := range s3test.Keys(t, b) {
		require.NoError(t, b.Store().Delete(ctx, k))
	}
	require.NoError(t, b.Remove(ctx))
	require.Error(t, b.Remove(ctx), "the bucket is gone")
}
