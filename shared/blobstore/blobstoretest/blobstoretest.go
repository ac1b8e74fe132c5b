// Package blobstoretest is the conformance suite every blobstore backend
// (gofakes3, MinIO, real S3) must pass, plus deterministic content helpers
// for tests and benchmarks.
package blobstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
)

// LargeSize is the size of the large object the suite writes: above 100 MiB
// and not a multiple of the part size.
const LargeSize int64 = 100<<20 + 12345

// OddKeys are object keys (already URL-decoded) that must survive a round
// trip unchanged.
var OddKeys = []string{
	"with space/file name.txt",
	"plus+sign/a+b.tgz",
	"percent/100%/%2F%20literal.bin",
	"unicode/ünïcødé/日本語/파일.jar",
	"deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/leaf",
	"maven/com/example/lib/1.0.0/lib-1.0.0.pom",
	"npm/@scope/pkg/-/pkg-1.0.0.tgz",
	"punct/~!$&'()*,;=@[]{}.txt",
}

// Random returns a deterministic pseudo-random stream of size bytes: the
// same seed and size always give the same bytes, without holding them in
// memory.
func Random(seed uint64, size int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// RandomBytes returns the bytes of Random(seed, size) (for small sizes).
func RandomBytes(seed uint64, size int64) []byte {
	b, err := io.ReadAll(Random(seed, size))
	if err != nil {
		// ChaCha8 reads never fail.
		return nil
	}
	return b
}

// SHA256 returns the hex SHA-256 of everything r yields.
func SHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RandomSHA256 returns the hex SHA-256 of Random(seed, size).
func RandomSHA256(seed uint64, size int64) string {
	sum, _ := SHA256(Random(seed, size))
	return sum
}

// shortReader yields the first n bytes of r, then a clean EOF, whatever
// size was announced.
func shortReader(r io.Reader, n int64) io.Reader { return io.LimitReader(r, n) }

// Run checks that stores made by newStore honour the blobstore contract.
// newStore must return a store over an empty bucket that nothing else
// writes to; it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) *blobstore.Store) {
	t.Run("RoundTripOddKeys", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		for i, key := range OddKeys {
			data := RandomBytes(uint64(i), 1000+int64(i))
			attrs := blobstore.PutAttrs{ContentType: "application/x-test", Metadata: map[string]string{"origin": "suite", "n": fmt.Sprint(i)}}
			res, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), attrs)
			require.NoError(t, err, key)
			want := sha(data)
			assert.Equal(t, want, res.SHA256, key)
			assert.Equal(t, int64(len(data)), res.Size, key)

			obj, err := s.Head(ctx, key)
			require.NoError(t, err, key)
			assert.Equal(t, key, obj.Key)
			assert.Equal(t, int64(len(data)), obj.Size, key)
			assert.Equal(t, "application/x-test", obj.ContentType, key)
			assert.Equal(t, attrs.Metadata, obj.Metadata, key)

			got, obj2 := readAll(t, s, key)
			assert.Equal(t, want, sha(got), "content of %q", key)
			assert.Equal(t, obj.Size, obj2.Size)
			assert.Equal(t, attrs.Metadata, obj2.Metadata, key)

			assertChecksum(t, s, key, want)

			d, err := s.Hash(ctx, key)
			require.NoError(t, err, key)
			assert.Equal(t, want, d.SHA256, "hash of %q", key)
			assert.Equal(t, int64(len(data)), d.Size, "bytes hashed of %q (one read)", key)
			st, err := s.Stat(ctx, key)
			require.NoError(t, err, key)
			assert.Equal(t, int64(len(data)), st.Size, key)
			assert.Contains(t, []string{"", want}, st.SHA256, "a stored checksum, when there is one, is the content's: %q", key)
		}
		// Every key lists back exactly as written.
		var listed []string
		require.NoError(t, s.List(ctx, blobstore.ListOptions{}, func(page []blobstore.Object) error {
			for _, o := range page {
				listed = append(listed, o.Key)
			}
			return nil
		}))
		assert.ElementsMatch(t, OddKeys, listed)
	})

	t.Run("EmptyObject", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		res, err := s.Put(t.Context(), "empty/zero", bytes.NewReader(nil), 0, blobstore.PutAttrs{})
		require.NoError(t, err)
		assert.Equal(t, sha(nil), res.SHA256)
		obj, err := s.Head(t.Context(), "empty/zero")
		require.NoError(t, err)
		assert.Zero(t, obj.Size)
		got, _ := readAll(t, s, "empty/zero")
		assert.Empty(t, got)
		assertChecksum(t, s, "empty/zero", sha(nil))
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		first, second := RandomBytes(1, 5000), RandomBytes(2, 3000)
		_, err := s.Put(ctx, "over/write", bytes.NewReader(first), int64(len(first)), blobstore.PutAttrs{ContentType: "text/a"})
		require.NoError(t, err)
		_, err = s.Put(ctx, "over/write", bytes.NewReader(second), int64(len(second)), blobstore.PutAttrs{ContentType: "text/b"})
		require.NoError(t, err)
		got, obj := readAll(t, s, "over/write")
		assert.Equal(t, sha(second), sha(got))
		assert.Equal(t, "text/b", obj.ContentType)
		assertChecksum(t, s, "over/write", sha(second))
	})

	t.Run("LargeMultipart", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		const key = "large/object with space+plus.bin"
		want := RandomSHA256(42, LargeSize)
		attrs := blobstore.PutAttrs{ContentType: "application/java-archive", Metadata: map[string]string{"sha": "x"}}
		res, err := s.Put(ctx, key, Random(42, LargeSize), LargeSize, attrs)
		require.NoError(t, err)
		assert.Equal(t, want, res.SHA256)
		assert.Equal(t, LargeSize, res.Size)

		obj, err := s.Head(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, LargeSize, obj.Size)
		assert.Equal(t, attrs.ContentType, obj.ContentType)
		assert.Equal(t, attrs.Metadata, obj.Metadata)

		body, _, err := s.Open(ctx, key)
		require.NoError(t, err)
		got, err := SHA256(body)
		require.NoError(t, err)
		require.NoError(t, body.Close())
		assert.Equal(t, want, got, "content read back")

		assertChecksum(t, s, key, want)
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		large := s.Options().MultipartThreshold + 1<<20
		cases := []struct {
			name      string
			body      io.Reader
			announced int64
		}{
			{"single/short", shortReader(Random(3, 100), 90), 100},
			{"single/long", Random(3, 100), 90},
			{"multipart/short", shortReader(Random(4, large), large-10), large},
			{"multipart/long", Random(4, large+10), large},
		}
		for _, c := range cases {
			_, err := s.Put(ctx, c.name, c.body, c.announced, blobstore.PutAttrs{})
			require.ErrorIs(t, err, blobstore.ErrSizeMismatch, c.name)
			assert.False(t, blobstore.IsRetryable(err), "a wrong announced size is permanent: %v", err)
			_, err = s.Head(ctx, c.name)
			assert.ErrorIs(t, err, blobstore.ErrNotFound, "%s: nothing may be left behind", c.name)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		_, err := s.Head(ctx, "no/such key")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		assert.False(t, blobstore.IsRetryable(err))
		_, _, err = s.Open(ctx, "no/such key")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		_, err = s.Checksum(ctx, "no/such key")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		_, err = s.Hash(ctx, "no/such key")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		_, err = s.Stat(ctx, "no/such key")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		require.NoError(t, s.Delete(ctx, "no/such key"), "deleting a missing object is not an error")

		data := RandomBytes(5, 10)
		_, err = s.Put(ctx, "del/me", bytes.NewReader(data), 10, blobstore.PutAttrs{})
		require.NoError(t, err)
		require.NoError(t, s.Delete(ctx, "del/me"))
		require.NoError(t, s.Delete(ctx, "del/me"), "second delete is idempotent")
		_, err = s.Head(ctx, "del/me")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		_, err = s.Checksum(ctx, "del/me")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		var keys []string
		for i := range 35 {
			k := fmt.Sprintf("page/k%02d", i)
			keys = append(keys, k)
			_, err := s.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k)), blobstore.PutAttrs{})
			require.NoError(t, err)
		}
		_, err := s.Put(ctx, "other/x", strings.NewReader("x"), 1, blobstore.PutAttrs{})
		require.NoError(t, err)

		var sizes []int
		var listed []string
		require.NoError(t, s.List(ctx, blobstore.ListOptions{Prefix: "page/", PageSize: 10}, func(page []blobstore.Object) error {
			sizes = append(sizes, len(page))
			for _, o := range page {
				listed = append(listed, o.Key)
				assert.Equal(t, int64(len(o.Key)), o.Size)
			}
			return nil
		}))
		assert.Equal(t, []int{10, 10, 10, 5}, sizes)
		assert.Equal(t, keys, listed, "all keys, in order")

		// Stop after the second page, resume from the last key seen.
		stop := errors.New("stop")
		var seen []string
		err = s.List(ctx, blobstore.ListOptions{Prefix: "page/", PageSize: 10}, func(page []blobstore.Object) error {
			for _, o := range page {
				seen = append(seen, o.Key)
			}
			if len(seen) == 20 {
				return stop
			}
			return nil
		})
		require.ErrorIs(t, err, stop)
		require.NoError(t, s.List(ctx, blobstore.ListOptions{Prefix: "page/", PageSize: 10, StartAfter: seen[len(seen)-1]},
			func(page []blobstore.Object) error {
				for _, o := range page {
					seen = append(seen, o.Key)
				}
				return nil
			}))
		assert.Equal(t, keys, seen, "resumed listing continues exactly after StartAfter")
	})
}

// RunCopy checks Copy between two stores made by newPair (typically two
// endpoints standing for two regions). Both buckets must start empty.
func RunCopy(t *testing.T, newPair func(t *testing.T) (src, dst *blobstore.Store)) {
	t.Run("CopyPreservesAttributes", func(t *testing.T) {
		t.Parallel()
		src, dst := newPair(t)
		ctx := t.Context()
		for i, key := range OddKeys {
			data := RandomBytes(100+uint64(i), 2000)
			attrs := blobstore.PutAttrs{ContentType: "application/vnd.test+" + fmt.Sprint(i), Metadata: map[string]string{"owner": "geo", "idx": fmt.Sprint(i)}}
			_, err := src.Put(ctx, key, bytes.NewReader(data), int64(len(data)), attrs)
			require.NoError(t, err)

			res, err := blobstore.Copy(ctx, src, dst, key)
			require.NoError(t, err, key)
			assert.Equal(t, sha(data), res.SHA256, key)
			assert.Equal(t, int64(len(data)), res.Source.Size)
			assert.NotEmpty(t, res.Source.ETag)

			got, obj := readAll(t, dst, key)
			assert.Equal(t, sha(data), sha(got), key)
			assert.Equal(t, attrs.ContentType, obj.ContentType, key)
			assert.Equal(t, attrs.Metadata, obj.Metadata, key)
			sum, err := dst.Checksum(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, sha(data), sum)
		}
	})

	t.Run("CopyLarge", func(t *testing.T) {
		t.Parallel()
		src, dst := newPair(t)
		ctx := t.Context()
		size := src.Options().MultipartThreshold*2 + 777
		want := RandomSHA256(7, size)
		_, err := src.Put(ctx, "big/blob", Random(7, size), size, blobstore.PutAttrs{ContentType: "application/octet-stream", Metadata: map[string]string{"k": "v"}})
		require.NoError(t, err)
		res, err := blobstore.Copy(ctx, src, dst, "big/blob")
		require.NoError(t, err)
		assert.Equal(t, want, res.SHA256)
		obj, err := dst.Head(ctx, "big/blob")
		require.NoError(t, err)
		assert.Equal(t, size, obj.Size)
		assert.Equal(t, map[string]string{"k": "v"}, obj.Metadata)
		sum, err := dst.Checksum(ctx, "big/blob")
		require.NoError(t, err)
		assert.Equal(t, want, sum)
	})

	t.Run("CopyMissingSource", func(t *testing.T) {
		t.Parallel()
		src, dst := newPair(t)
		_, err := blobstore.Copy(t.Context(), src, dst, "gone/away")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
		_, err = dst.Head(t.Context(), "gone/away")
		require.ErrorIs(t, err, blobstore.ErrNotFound)
	})
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readAll(t *testing.T, s *blobstore.Store, key string) ([]byte, blobstore.Object) {
	t.Helper()
	body, obj, err := s.Open(context.WithoutCancel(t.Context()), key)
	require.NoError(t, err, key)
	defer body.Close()
	b, err := io.ReadAll(body)
	require.NoError(t, err, key)
	return b, obj
}

// RunAll runs Run, RunMissingBucket and RunCopy on stores over two S3
// clients (two servers, or two regions): every store gets a fresh bucket,
// Run and RunMissingBucket use primary, RunCopy copies from primary to
// secondary.
func RunAll(t *testing.T, primary, secondary *s3.Client) {
	var n atomic.Int64
	storeOn := func(t *testing.T, client *s3.Client) *blobstore.Store {
		bucket := fmt.Sprintf("conf-%d", n.Add(1))
		s3test.CreateBucket(t, client, bucket)
		return blobstore.New(client, bucket, blobstore.Options{})
	}
	Run(t, func(t *testing.T) *blobstore.Store { return storeOn(t, primary) })
	RunMissingBucket(t, func(t *testing.T) (*blobstore.Store, *blobstore.Store) {
		return blobstore.New(primary, "geoblob-no-such-bucket", blobstore.Options{}), storeOn(t, primary)
	})
	RunCopy(t, func(t *testing.T) (*blobstore.Store, *blobstore.Store) {
		return storeOn(t, primary), storeOn(t, secondary)
	})
}

// assertChecksum checks that the checksum tag of key in s is want.
func assertChecksum(t *testing.T, s *blobstore.Store, key, want string) {
	t.Helper()
	sum, err := s.Checksum(t.Context(), key)
	require.NoError(t, err, "checksum tag of %q", key)
	assert.Equal(t, want, sum, "checksum tag of %q", key)
}
