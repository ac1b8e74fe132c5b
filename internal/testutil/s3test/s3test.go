// Package s3test provides real S3 APIs over HTTP for tests: an in-process
// gofakes3 server, MinIO processes, SDK clients for them, and a
// fault-injecting reverse proxy. Nothing here mocks the S3 API.
package s3test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
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
// region us-east-1 and path-style addressing. It reads no environment or
// shared config, so tests are hermetic. optFns adjust the client (e.g.
// o.RetryMaxAttempts = 1 to see the first failure).
func Client(_ context.Context, endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		// Our code checks SHA-256 itself; silence the SDK's per-GET notice.
		DisableLogOutputChecksumValidationSkipped: true,
	}, optFns...)
}

// CreateBucket creates bucket and fails the test if it cannot.
func CreateBucket(t testing.TB, client *s3.Client, name string) {
	t.Helper()
	_, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	require.NoError(t, err, "s3test: create bucket %q", name)
}
