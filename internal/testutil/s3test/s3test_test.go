package s3test_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
)

func TestGofakes3Tagging(t *testing.T) {
	t.Parallel()
	c := s3test.Client(t.Context(), s3test.NewGofakes3(t))
	s3test.CreateBucket(t, c, "tags")
	ctx := t.Context()
	key := aws.String("a b/c+d%.txt")
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tags"), Key: key, Body: bytes.NewReader([]byte("body")), Tagging: aws.String("x=1&y=two")})
	require.NoError(t, err)
	got, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("tags"), Key: key})
	require.NoError(t, err)
	assert.ElementsMatch(t, []types.Tag{{Key: aws.String("x"), Value: aws.String("1")}, {Key: aws.String("y"), Value: aws.String("two")}}, got.TagSet)

	_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("tags"), Key: key,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("z"), Value: aws.String("3")}}}})
	require.NoError(t, err)
	got, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("tags"), Key: key})
	require.NoError(t, err)
	assert.Equal(t, []types.Tag{{Key: aws.String("z"), Value: aws.String("3")}}, got.TagSet)

	// Tagging must not touch the content (plain gofakes3 would overwrite it).
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("tags"), Key: key})
	require.NoError(t, err)
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(obj.Body)
	assert.Equal(t, "body", buf.String())

	// An overwrite without tags drops them.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tags"), Key: key, Body: bytes.NewReader([]byte("new"))})
	require.NoError(t, err)
	got, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("tags"), Key: key})
	require.NoError(t, err)
	assert.Empty(t, got.TagSet)

	_, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("tags"), Key: aws.String("missing")})
	var apiErr smithy.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "NoSuchKey", apiErr.ErrorCode())
}

func TestFaultProxy(t *testing.T) {
	t.Parallel()
	endpoint := s3test.NewGofakes3(t)
	s3test.CreateBucket(t, s3test.Client(t.Context(), endpoint), "proxied")
	p := s3test.NewFaultProxy(t, endpoint, s3test.FailNth(s3test.OpPutObject, 2, s3test.Fault{Status: http.StatusServiceUnavailable}))
	c := s3test.Client(t.Context(), p.Endpoint(), func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	put := func(k string) error {
		_, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("proxied"), Key: aws.String(k), Body: bytes.NewReader([]byte("x"))})
		return err
	}
	require.NoError(t, put("one"))
	err := put("two")
	var apiErr smithy.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "SlowDown", apiErr.ErrorCode())
	require.NoError(t, put("three"))
	_, err = c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String("proxied"), Key: aws.String("one")})
	require.NoError(t, err, "requests pass through, SigV4 included")

	assert.Equal(t, int64(3), p.OpCount(s3test.OpPutObject))
	assert.Equal(t, int64(1), p.OpCount(s3test.OpHeadObject))
	assert.Equal(t, int64(1), p.Injected())
	assert.Equal(t, int64(4), p.Requests())
}

func TestFaultProxyMinioSignature(t *testing.T) {
	t.Parallel()
	srv := s3test.NewMinio(t)
	p := s3test.NewFaultProxy(t, srv.Endpoint(), nil)
	c := s3test.Client(t.Context(), p.Endpoint())
	s3test.CreateBucket(t, c, "through-proxy")
	_, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("through-proxy"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))})
	require.NoError(t, err, "MinIO verifies the signature made for the proxy's Host")
}
