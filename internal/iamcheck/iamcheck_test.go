package iamcheck_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/iamcheck"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
)

// TestClassifySDKRequests sends each request shape geoblob uses through the
// real SDK and checks how Classify names it.
func TestClassifySDKRequests(t *testing.T) {
	var got iamcheck.Call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = iamcheck.Classify(r, func(b string) string { return map[string]string{"bkt": iamcheck.Secondary}[b] })
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	c := s3test.Client(t.Context(), srv.URL, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	b, k, v := aws.String("bkt"), aws.String("a/b c+d.bin"), aws.String("v1")
	ctx := t.Context()
	cases := []struct {
		call func()
		want iamcheck.Call
	}{
		{func() {
			_, _ = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("x"), Tagging: aws.String("geoblob-sha256=00")})
		}, iamcheck.Call{Operation: "PutObject", Tagging: true}},
		{func() { _, _ = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("x")}) }, iamcheck.Call{Operation: "PutObject"}},
		{func() {
			_, _ = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, VersionId: v, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}})
		}, iamcheck.Call{Operation: "PutObjectTagging", VersionID: true}},
		{func() { _, _ = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k, VersionId: v}) }, iamcheck.Call{Operation: "HeadObject", VersionID: true}},
		{func() {
			_, _ = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k, ChecksumMode: s3types.ChecksumModeEnabled})
		}, iamcheck.Call{Operation: "HeadObject", ChecksumMode: true}},
		{func() { _, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k, VersionId: v}) }, iamcheck.Call{Operation: "DeleteObject", VersionID: true}},
		{func() { _, _ = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b}) }, iamcheck.Call{Operation: "ListObjectsV2"}},
		{func() { _, _ = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b}) }, iamcheck.Call{Operation: "HeadBucket"}},
		{func() { _, _ = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k}) }, iamcheck.Call{Operation: "CreateMultipartUpload"}},
		{func() {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: aws.String("u")})
		}, iamcheck.Call{Operation: "AbortMultipartUpload"}},
		{func() { _, _ = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k}) }, iamcheck.Call{Operation: "GetObjectTagging"}},
		{func() {
			_, _ = c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, ObjectAttributes: []s3types.ObjectAttributes{s3types.ObjectAttributesChecksum}})
		}, iamcheck.Call{Operation: "GetObjectAttributes"}},
		{func() {
			_, _ = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: k, CopySource: aws.String("other/x")})
		}, iamcheck.Call{Operation: "CopyObject"}},
	}
	for _, tc := range cases {
		got = iamcheck.Call{}
		tc.call()
		tc.want.Bucket = iamcheck.Secondary
		assert.Equal(t, tc.want, got)
	}
}

// TestRequired pins the rows issue 9 is about, against AWS's documentation
// (the sources are cited in actions.go).
func TestRequired(t *testing.T) {
	needs := func(c iamcheck.Call, encrypted bool) []iamcheck.Need {
		c.Bucket = iamcheck.Secondary
		n, err := iamcheck.Required(c, encrypted)
		require.NoError(t, err)
		return n
	}
	o, b, k := iamcheck.ObjectResource(iamcheck.Secondary), iamcheck.BucketResource(iamcheck.Secondary), iamcheck.KeyResource(iamcheck.Secondary)
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:PutObject", o}, {"s3:PutObjectTagging", o}, {"kms:GenerateDataKey", k}},
		needs(iamcheck.Call{Operation: "PutObject", Tagging: true}, true))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:PutObjectTagging", o}, {"s3:PutObjectVersionTagging", o}},
		needs(iamcheck.Call{Operation: "PutObjectTagging", VersionID: true}, true))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:DeleteObject", o}, {"s3:DeleteObjectVersion", o}},
		needs(iamcheck.Call{Operation: "DeleteObject", VersionID: true}, true))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:GetObjectVersion", o}, {"s3:ListBucket", b}},
		needs(iamcheck.Call{Operation: "HeadObject", VersionID: true}, true))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:GetObject", o}, {"s3:ListBucket", b}, {"kms:Decrypt", k}},
		needs(iamcheck.Call{Operation: "HeadObject", ChecksumMode: true}, true))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:GetObject", o}, {"s3:ListBucket", b}},
		needs(iamcheck.Call{Operation: "GetObject"}, false))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:PutObject", o}, {"kms:Decrypt", k}},
		needs(iamcheck.Call{Operation: "UploadPart"}, true))
	assert.ElementsMatch(t, []iamcheck.Need{{"s3:ListBucket", b}}, needs(iamcheck.Call{Operation: "ListObjectsV2"}, true))
	_, err := iamcheck.Required(iamcheck.Call{Operation: "Unknown object request POST ?select"}, false)
	assert.ErrorContains(t, err, "add it to the table")
}

// TestMinIOPolicy maps symbolic resources to local bucket ARNs and drops KMS.
func TestMinIOPolicy(t *testing.T) {
	doc, dropped, err := iamcheck.MinIOPolicy([]iamcheck.Statement{
		{Sid: "W", Actions: []string{"s3:PutObject"}, Resources: []string{"secondary/*"}},
		{Sid: "L", Actions: []string{"s3:ListBucket"}, Resources: []string{"secondary"}},
		{Sid: "K", Actions: []string{"kms:Decrypt"}, Resources: []string{"kms:secondary"}},
	}, map[string]string{iamcheck.Secondary: "dr"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"Version":"2012-10-17","Statement":[
		{"Sid":"W","Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::dr/*"]},
		{"Sid":"L","Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::dr"]}]}`, string(doc))
	assert.Equal(t, []string{"kms:Decrypt on [kms:secondary]"}, dropped)
	_, _, err = iamcheck.MinIOPolicy([]iamcheck.Statement{{Actions: []string{"s3:GetObject"}, Resources: []string{"other/*"}}}, nil)
	assert.Error(t, err)
}
