package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/blobstore/blobstoretest"
)

// Small parts keep the multipart cases fast: 5 MiB parts, multipart above 5 MiB.
var faultOpts = blobstore.Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20, Concurrency: 2}

const (
	singleSize    int64 = 1 << 20
	multipartSize int64 = 17 << 20 // 4 parts
)

// quickRetries keeps the SDK's 3 attempts but without backoff delays or a
// retry quota, so persistent faults fail fast and deterministically.
func quickRetries(o *s3.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = 3
		so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
		so.RateLimiter = ratelimit.None
	})
}

func part(n string, f s3test.Fault) func(*http.Request) s3test.Fault {
	return func(r *http.Request) s3test.Fault {
		if s3test.Op(r) == s3test.OpUploadPart && r.URL.Query().Get("partNumber") == n {
			return f
		}
		return s3test.Fault{}
	}
}

type faultCase struct {
	name     string
	size     int64
	rule     func(*http.Request) s3test.Fault
	previous bool // an older object exists under the key and must survive
}

func faultCases() []faultCase {
	e500 := s3test.Fault{Status: http.StatusInternalServerError}
	e503 := s3test.Fault{Status: http.StatusServiceUnavailable}
	cut := s3test.Fault{Cut: true, CutAfter: 256 << 10}
	return []faultCase{
		{"single/500", singleSize, s3test.FailOp(s3test.OpPutObject, e500), false},
		{"single/503", singleSize, s3test.FailOp(s3test.OpPutObject, e503), false},
		{"single/cut", singleSize, s3test.FailOp(s3test.OpPutObject, cut), false},
		{"single/cut-keeps-previous", singleSize, s3test.FailOp(s3test.OpPutObject, cut), true},
		{"single/503-keeps-previous", singleSize, s3test.FailOp(s3test.OpPutObject, e503), true},
		{"multipart/part2-500", multipartSize, part("2", e500), false},
		{"multipart/part2-503", multipartSize, part("2", e503), false},
		{"multipart/part3-cut", multipartSize, part("3", cut), false},
		{"multipart/part4-cut-keeps-previous", multipartSize, part("4", cut), true},
		{"multipart/create-503", multipartSize, s3test.FailOp(s3test.OpCreateMultipartUpload, e503), false},
		{"multipart/complete-500", multipartSize, s3test.FailOp(s3test.OpCompleteMultipartUpload, e500), false},
		{"multipart/complete-500-keeps-previous", multipartSize, s3test.FailOp(s3test.OpCompleteMultipartUpload, e500), true},
		{"multipart/tagging-503", multipartSize, s3test.FailOp(s3test.OpPutObjectTagging, e503), false},
	}
}

// backend is a secondary S3 API to put behind the fault proxy.
type backend struct {
	name     string
	endpoint func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{"gofakes3", func(t *testing.T) string { return s3test.NewGofakes3(t) }},
		{"minio", func(t *testing.T) string { return s3test.NewMinio(t).Endpoint() }},
	}
}

// TestPutFaults: whatever fails on the way to the secondary, Put returns a
// retryable error and the secondary holds either no object or the previous
// one, never a partial object, and no multipart upload lingers.
func TestPutFaults(t *testing.T) {
	t.Parallel()
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			endpoint := be.endpoint(t)
			direct := s3test.Client(t.Context(), endpoint)
			for i, c := range faultCases() {
				t.Run(c.name, func(t *testing.T) {
					bucket := "fault-" + string(rune('a'+i))
					s3test.CreateBucket(t, direct, bucket)
					ctx := t.Context()
					const key = "blobs/fault target+1 ü.bin"
					verify := blobstore.New(direct, bucket, faultOpts)
					var prevSHA string
					if c.previous {
						res, err := verify.Put(ctx, key, blobstoretest.Random(99, c.size/2), c.size/2, blobstore.PutAttrs{})
						require.NoError(t, err)
						prevSHA = res.SHA256
					}

					proxy := s3test.NewFaultProxy(t, endpoint, c.rule)
					store := blobstore.New(s3test.Client(ctx, proxy.Endpoint(), quickRetries), bucket, faultOpts)
					_, err := store.Put(ctx, key, blobstoretest.Random(uint64(i), c.size), c.size, blobstore.PutAttrs{})
					require.Error(t, err)
					assert.True(t, blobstore.IsRetryable(err), "transport/5xx failures are retryable: %v", err)
					assert.Positive(t, proxy.Injected(), "the fault fired")

					assertNoPartial(t, direct, verify, bucket, key, prevSHA)
				})
			}
		})
	}
}

// assertNoPartial checks that key holds the previous object (prevSHA) or
// nothing, and that no multipart upload is left in the bucket.
func assertNoPartial(t *testing.T, direct *s3.Client, verify *blobstore.Store, bucket, key, prevSHA string) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	if prevSHA == "" {
		_, err := verify.Head(ctx, key)
		assert.ErrorIs(t, err, blobstore.ErrNotFound, "no object may be left under the key")
	} else {
		body, _, err := verify.Open(ctx, key)
		require.NoError(t, err, "the previous object must survive")
		got, err := blobstoretest.SHA256(body)
		require.NoError(t, err)
		_ = body.Close()
		assert.Equal(t, prevSHA, got, "the previous object is untouched")
	}
	ups, err := direct.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload" {
		return // gofakes3 answers NoSuchUpload for a bucket that has no upload at all
	}
	require.NoError(t, err)
	assert.Empty(t, ups.Uploads, "multipart uploads must be aborted")
}

// TestPutTransientFaults: a fault that hits one attempt only is absorbed
// by the SDK's retry, and the object written is complete and correct.
func TestPutTransientFaults(t *testing.T) {
	t.Parallel()
	endpoint := s3test.NewGofakes3(t)
	direct := s3test.Client(t.Context(), endpoint)
	s3test.CreateBucket(t, direct, "transient")
	cases := []struct {
		name string
		size int64
		rule func(*http.Request) s3test.Fault
	}{
		{"single/cut-once", singleSize, s3test.FailNth(s3test.OpPutObject, 1, s3test.Fault{Cut: true, CutAfter: 1000})},
		{"single/503-once", singleSize, s3test.FailNth(s3test.OpPutObject, 1, s3test.Fault{Status: 503})},
		{"multipart/part-cut-once", multipartSize, s3test.FailNth(s3test.OpUploadPart, 2, s3test.Fault{Cut: true, CutAfter: 4096})},
		{"multipart/part-500-once", multipartSize, s3test.FailNth(s3test.OpUploadPart, 3, s3test.Fault{Status: 500})},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proxy := s3test.NewFaultProxy(t, endpoint, c.rule)
			store := blobstore.New(s3test.Client(t.Context(), proxy.Endpoint(), quickRetries), "transient", faultOpts)
			key := "t/" + c.name
			res, err := store.Put(t.Context(), key, blobstoretest.Random(uint64(i), c.size), c.size, blobstore.PutAttrs{})
			require.NoError(t, err)
			assert.Equal(t, int64(1), proxy.Injected())
			want := blobstoretest.RandomSHA256(uint64(i), c.size)
			assert.Equal(t, want, res.SHA256)

			body, _, err := blobstore.New(direct, "transient", faultOpts).Open(t.Context(), key)
			require.NoError(t, err)
			got, err := blobstoretest.SHA256(body)
			require.NoError(t, err)
			_ = body.Close()
			assert.Equal(t, want, got)
		})
	}
}

// TestCopyFaults: Copy between two endpoints fails cleanly when the
// secondary fails or the primary's download breaks half way.
func TestCopyFaults(t *testing.T) {
	t.Parallel()
	srcEndpoint, dstEndpoint := s3test.NewGofakes3(t), s3test.NewGofakes3(t)
	srcDirect, dstDirect := s3test.Client(t.Context(), srcEndpoint), s3test.Client(t.Context(), dstEndpoint)
	s3test.CreateBucket(t, srcDirect, "primary")
	s3test.CreateBucket(t, dstDirect, "secondary")
	src := blobstore.New(srcDirect, "primary", faultOpts)
	dstVerify := blobstore.New(dstDirect, "secondary", faultOpts)
	for i, size := range []int64{singleSize, multipartSize} {
		key := "copy/" + []string{"single", "multipart"}[i]
		_, err := src.Put(t.Context(), key, blobstoretest.Random(uint64(i), size), size, blobstore.PutAttrs{ContentType: "x/y"})
		require.NoError(t, err)
	}
	cases := []struct {
		name      string
		key       string
		srcRule   func(*http.Request) s3test.Fault
		dstRule   func(*http.Request) s3test.Fault
		sizeError bool
	}{
		{"dst-put-503", "copy/single", nil, s3test.FailOp(s3test.OpPutObject, s3test.Fault{Status: 503}), false},
		{"dst-part-cut", "copy/multipart", nil, part("2", s3test.Fault{Cut: true, CutAfter: 1 << 20}), false},
		{"src-download-cut/single", "copy/single", s3test.FailOp(s3test.OpGetObject, s3test.Fault{CutResponse: true, CutAfter: 300 << 10}), nil, true},
		{"src-download-cut/multipart", "copy/multipart", s3test.FailOp(s3test.OpGetObject, s3test.Fault{CutResponse: true, CutAfter: 11 << 20}), nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srcProxy := s3test.NewFaultProxy(t, srcEndpoint, c.srcRule)
			dstProxy := s3test.NewFaultProxy(t, dstEndpoint, c.dstRule)
			from := blobstore.New(s3test.Client(t.Context(), srcProxy.Endpoint(), quickRetries), "primary", faultOpts)
			to := blobstore.New(s3test.Client(t.Context(), dstProxy.Endpoint(), quickRetries), "secondary", faultOpts)

			_, err := blobstore.Copy(t.Context(), from, to, c.key)
			require.Error(t, err)
			assert.True(t, blobstore.IsRetryable(err), "%v", err)
			if c.sizeError {
				assert.ErrorIs(t, err, blobstore.ErrSizeMismatch)
			}
			assert.Positive(t, srcProxy.Injected()+dstProxy.Injected())
			assertNoPartial(t, dstDirect, dstVerify, "secondary", c.key, "")
		})
	}
}

// TestPutNonRetryable: a client error (403 Access Denied) is permanent and
// not a missing object. (A missing bucket is retryable: see
// blobstoretest.RunMissingBucket.)
func TestPutNonRetryable(t *testing.T) {
	t.Parallel()
	endpoint := s3test.NewGofakes3(t)
	s3test.CreateBucket(t, s3test.Client(t.Context(), endpoint), "denied")
	proxy := s3test.NewFaultProxy(t, endpoint, func(*http.Request) s3test.Fault { return s3test.Fault{Status: http.StatusForbidden} })
	store := blobstore.New(s3test.Client(t.Context(), proxy.Endpoint()), "denied", blobstore.Options{})
	_, err := store.Put(t.Context(), "k", bytes.NewReader([]byte("x")), 1, blobstore.PutAttrs{})
	require.Error(t, err)
	assert.False(t, errors.Is(err, blobstore.ErrNotFound))
	assert.False(t, errors.Is(err, blobstore.ErrNoSuchBucket))
	assert.False(t, blobstore.IsRetryable(err))
}

// TestPutCorruptedInTransit: a byte flipped between us and MinIO is caught
// by the signed checksum header (SHA-256 for a single PutObject, CRC32 for
// a part); Put fails and nothing is stored. gofakes3 does not check
// checksums, so this runs on MinIO only.
func TestPutCorruptedInTransit(t *testing.T) {
	t.Parallel()
	endpoint := s3test.NewMinio(t).Endpoint()
	direct := s3test.Client(t.Context(), endpoint)
	s3test.CreateBucket(t, direct, "corrupt")
	verify := blobstore.New(direct, "corrupt", faultOpts)
	flip := s3test.Fault{Corrupt: true, CorruptAt: 12345}
	for i, c := range []struct {
		name string
		size int64
		rule func(*http.Request) s3test.Fault
	}{
		{"single", singleSize, s3test.FailOp(s3test.OpPutObject, flip)},
		{"multipart", multipartSize, part("2", flip)},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy := s3test.NewFaultProxy(t, endpoint, c.rule)
			store := blobstore.New(s3test.Client(t.Context(), proxy.Endpoint(), quickRetries), "corrupt", faultOpts)
			_, err := store.Put(t.Context(), c.name, blobstoretest.Random(uint64(i), c.size), c.size, blobstore.PutAttrs{})
			require.Error(t, err, "the server must refuse corrupted bytes")
			assert.Positive(t, proxy.Injected())
			t.Logf("%s: %v", c.name, err)
			assertNoPartial(t, direct, verify, "corrupt", c.name, "")
		})
	}
}
