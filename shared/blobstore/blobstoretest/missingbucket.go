package blobstoretest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/geoblob/geoblob/shared/blobstore"
)

// RunMissingBucket checks every operation of a store whose bucket does not
// exist (newMissing returns one, with a second store on an existing bucket
// for Copy): each error wraps ErrNoSuchBucket, never ErrNotFound (a missing
// bucket is not a missing object), and is retryable.
func RunMissingBucket(t *testing.T, newMissing func(t *testing.T) (missing, existing *blobstore.Store)) {
	t.Run("MissingBucketIsNotAMissingObject", func(t *testing.T) {
		t.Parallel()
		s, other := newMissing(t)
		ctx := t.Context()
		data := []byte("x")
		ops := map[string]error{
			"HeadBucket": s.HeadBucket(ctx),
			"Delete":     s.Delete(ctx, "k"),
			"List":       s.List(ctx, blobstore.ListOptions{}, func([]blobstore.Object) error { return nil }),
		}
		_, ops["Head"] = s.Head(ctx, "k")
		_, _, ops["Open"] = s.Open(ctx, "k")
		_, ops["Checksum"] = s.Checksum(ctx, "k")
		_, ops["Hash"] = s.Hash(ctx, "k")
		_, ops["Stat"] = s.Stat(ctx, "k")
		_, ops["Put"] = s.Put(ctx, "k", bytes.NewReader(data), 1, blobstore.PutAttrs{})
		_, ops["CopyFrom"] = blobstore.Copy(ctx, s, other, "k")
		_, ops["CopyTo"] = putThenCopy(t, other, s)
		for op, err := range ops {
			assert.ErrorIs(t, err, blobstore.ErrNoSuchBucket, op)
			assert.False(t, errors.Is(err, blobstore.ErrNotFound), "%s: a missing bucket must not look like a missing object: %v", op, err)
			assert.True(t, blobstore.IsRetryable(err), "%s: retryable: %v", op, err)
		}
	})
}

// putThenCopy writes an object to src and copies it to dst.
func putThenCopy(t *testing.T, src, dst *blobstore.Store) (blobstore.CopyResult, error) {
	t.Helper()
	data := RandomBytes(7, 100)
	if _, err := src.Put(t.Context(), "copy-src", bytes.NewReader(data), int64(len(data)), blobstore.PutAttrs{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	return blobstore.Copy(t.Context(), src, dst, "copy-src")
}
