// Package s3test provides real S3 APIs over HTTP for tests: an in-process
// gofakes3 server, MinIO processes, SDK clients for them, and a
// fault-injecting reverse proxy. Nothing here mocks the S3 API.
package s3test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/shared/blobstore"
)

// Credentials and region shared by every test server and client here.
const (
	AccessKey = "geoblob-test"
	SecretKey = "geoblob-test-secret"
	Region    = "us-east-1"
)

// NewGofakes3 starts an in-process gofakes3 server over plain HTTP (over
// TLS gofakes3 stores the SDK's aws-chunked framing as data) and returns its
// endpoint URL. The server is closed when the test ends.
//
// gofakes3 v1.2.0 has no object tagging: it would treat PUT ?tagging as an
// overwrite of the object with the XML body. The server returned here adds
// Put/Get/DeleteObjectTagging and the x-amz-tagging header of PutObject
// in front of gofakes3 (see tagging.go); everything else is gofakes3's.
func NewGofakes3(t testing.TB) string {
	t.Helper()
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewServer(newTaggingShim(faker.Server()))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Client returns an S3 client for endpoint with the test credentials,
// region us-east-1 and path-style addressing (built by
// blobstore.ClientFromConfig). It reads no environment or shared config, so
// tests are hermetic. optFns adjust the client (e.g. o.RetryMaxAttempts = 1
// to see the first failure).
func Client(_ context.Context, endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	return blobstore.ClientFromConfig(aws.Config{}, Location(endpoint, ""), optFns...)
}

// Location is bucket on endpoint with the test credentials, region and
// path-style addressing.
func Location(endpoint, bucket string) blobstore.Location {
	return blobstore.Location{
		Bucket:      bucket,
		Region:      Region,
		Endpoint:    endpoint,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	}
}

// CreateBucket creates bucket and fails the test if it cannot.
func CreateBucket(t testing.TB, client *s3.Client, name string) {
	t.Helper()
	require.NoError(t, s3admin.New(client, name).Create(t.Context()), "s3test")
}

// Bucket creates bucket on endpoint and returns it for arranging and
// asserting (plain uploads, versioning, its blob store).
func Bucket(t testing.TB, endpoint, bucket string) *s3admin.Bucket {
	t.Helper()
	b := s3admin.New(Client(t.Context(), endpoint), bucket)
	require.NoError(t, b.Create(t.Context()), "s3test")
	return b
}

// Keys lists the keys in bucket (through its blob store), sorted.
func Keys(t testing.TB, bucket *s3admin.Bucket) []string {
	t.Helper()
	sizes, err := bucket.Sizes(t.Context())
	require.NoError(t, err, "s3test")
	return slices.Sorted(maps.Keys(sizes))
}

// NoRetry is a client option that turns the SDK's retries off, so a test
// sees the first failure.
func NoRetry(o *s3.Options) { s3admin.MaxAttempts(1)(o) }

// Read returns the object under key in bucket (through its blob store),
// and false when there is none.
func Read(t testing.TB, bucket *s3admin.Bucket, key string) ([]byte, bool) {
	t.Helper()
	r, _, err := bucket.Store().Open(t.Context(), key)
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, false
	}
	require.NoError(t, err, "s3test: read %s/%s", bucket.Name(), key)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err, "s3test: read %s/%s", bucket.Name(), key)
	return b, true
}

// Put uploads body under key in bucket as a package registry would and
// returns the object's ETag (unquoted).
func Put(t testing.TB, bucket *s3admin.Bucket, key string, body []byte) string {
	t.Helper()
	up, err := bucket.Put(t.Context(), key, body, "")
	require.NoError(t, err, "s3test: put %s/%s", bucket.Name(), key)
	return strings.Trim(up.ETag, `"`)
}

// Contents returns every object of bucket with its bytes (through its blob
// store).
func Contents(t testing.TB, bucket *s3admin.Bucket) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range Keys(t, bucket) {
		b, ok := Read(t, bucket, k)
		require.True(t, ok, "s3test: %s/%s listed but gone", bucket.Name(), k)
		out[k] = b
	}
	return out
}
