// Package s3admin holds the S3 calls that only local tooling and tests make
// and that no function ever makes: creating and removing buckets, turning
// versioning and event notifications on, and uploading objects the way a
// package registry does (a plain PutObject or multipart upload, without the
// checksum tag geoblob's own writes carry). Everything a function does goes
// through shared/blobstore, the one S3 adapter; this package builds its
// client with blobstore.NewClient and hands out blobstore stores, so it adds
// calls, never a second way to reach S3. It lives in internal/ so that none
// of these calls is linked into a Lambda binary or needs an IAM grant.
package s3admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/geoblob/geoblob/shared/blobstore"
)

// Upload sizes: bodies of at most SinglePutMax bytes are one PutObject,
// larger ones a multipart upload of PartSize parts (as the aws CLI does).
const (
	SinglePutMax int64 = 16 << 20
	PartSize     int64 = 8 << 20
)

// Bucket is one bucket with the client that reaches it.
type Bucket struct {
	name   string
	client *s3.Client
}

// Open returns loc's bucket with a client from blobstore.NewClient; optFns
// adjust the client (retries, HTTP client).
func Open(ctx context.Context, loc blobstore.Location, optFns ...func(*s3.Options)) (*Bucket, error) {
	c, err := blobstore.NewClient(ctx, loc, optFns...)
	if err != nil {
		return nil, fmt.Errorf("s3admin: %w", err)
	}
	return &Bucket{name: loc.Bucket, client: c}, nil
}

// New returns the bucket name reached with client (one built by
// blobstore.NewClient or blobstore.ClientFromConfig).
func New(client *s3.Client, name string) *Bucket { return &Bucket{name: name, client: client} }

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Store returns the bucket's blob store over the same client (its logs
// discarded): reads, hashes, listings and deletes go through it.
func (b *Bucket) Store() *blobstore.Store {
	return blobstore.New(b.client, b.name, blobstore.Options{Logger: slog.New(slog.DiscardHandler)})
}

// Sizes lists every key of the bucket with its size (through its blob
// store).
func (b *Bucket) Sizes(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := b.Store().List(ctx, blobstore.ListOptions{}, func(page []blobstore.Object) error {
		for _, o := range page {
			out[o.Key] = o.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("s3admin: %w", err)
	}
	return out, nil
}

// Create creates the bucket; a bucket that exists already is not an error.
func (b *Bucket) Create(ctx context.Context) error {
	_, err := b.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.name)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("s3admin: create bucket %s: %w", b.name, err)
	}
	return nil
}

// Remove deletes the (empty) bucket.
func (b *Bucket) Remove(ctx context.Context) error {
	if _, err := b.client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b.name)}); err != nil {
		return fmt.Errorf("s3admin: delete bucket %s: %w", b.name, err)
	}
	return nil
}

// EnableVersioning turns the bucket's versioning on.
func (b *Bucket) EnableVersioning(ctx context.Context) error {
	_, err := b.client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(b.name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	})
	if err != nil {
		return fmt.Errorf("s3admin: enable versioning of %s: %w", b.name, err)
	}
	return nil
}

// NotifyQueue replaces the bucket's notification configuration with one
// queue target (id, queueARN) receiving events. The error is the server's,
// wrapped, so a caller can inspect its code (smithy.APIError).
func (b *Bucket) NotifyQueue(ctx context.Context, id, queueARN string, events ...string) error {
	evs := make([]types.Event, len(events))
	for i, e := range events {
		evs[i] = types.Event(e)
	}
	return b.putNotifications(ctx, &types.NotificationConfiguration{
		QueueConfigurations: []types.QueueConfiguration{{Id: aws.String(id), QueueArn: aws.String(queueARN), Events: evs}},
	})
}

// ClearNotifications turns every event notification of the bucket off.
func (b *Bucket) ClearNotifications(ctx context.Context) error {
	return b.putNotifications(ctx, &types.NotificationConfiguration{})
}

func (b *Bucket) putNotifications(ctx context.Context, cfg *types.NotificationConfiguration) error {
	_, err := b.client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(b.name), NotificationConfiguration: cfg,
	})
	if err != nil {
		return fmt.Errorf("s3admin: notifications of %s: %w", b.name, err)
	}
	return nil
}

// Uploaded is what an upload stored.
type Uploaded struct {
	ETag      string // as the server returned it (quoted)
	VersionID string
}

// Put uploads body under key as a package registry would: one PutObject up
// to SinglePutMax bytes, a multipart upload above. contentType may be "".
func (b *Bucket) Put(ctx context.Context, key string, body []byte, contentType string) (Uploaded, error) {
	return b.upload(ctx, key, bytes.NewReader(body), int64(len(body)), contentType)
}

// PutFile uploads the local file under key and returns its size.
func (b *Bucket) PutFile(ctx context.Context, key, file string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("s3admin: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("s3admin: %w", err)
	}
	if _, err := b.upload(ctx, key, f, st.Size(), ""); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// PutChecksummed uploads body with one PutObject that asks the server to
// validate and store a checksum of it, as `aws s3 cp --checksum-algorithm`
// does: algorithm "SHA256" sends the full-object SHA-256 of body
// (x-amz-checksum-sha256), any other (e.g. "CRC32") lets the SDK compute
// that algorithm's checksum.
func (b *Bucket) PutChecksummed(ctx context.Context, key string, body []byte, algorithm string) (Uploaded, error) {
	in := &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(key), Body: bytes.NewReader(body)}
	if algorithm == string(types.ChecksumAlgorithmSha256) {
		sum := sha256.Sum256(body)
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	} else {
		in.ChecksumAlgorithm = types.ChecksumAlgorithm(algorithm)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		return Uploaded{}, fmt.Errorf("s3admin: put %s/%s (%s): %w", b.name, key, algorithm, err)
	}
	return Uploaded{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}, nil
}

func (b *Bucket) upload(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) (Uploaded, error) {
	in := &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(key), Body: body}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if size <= SinglePutMax {
		out, err := b.client.PutObject(ctx, in)
		if err != nil {
			return Uploaded{}, fmt.Errorf("s3admin: put %s/%s: %w", b.name, key, err)
		}
		return Uploaded{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}, nil
	}
	up := manager.NewUploader(b.client, func(u *manager.Uploader) { u.PartSize = PartSize })
	out, err := up.Upload(ctx, in)
	if err != nil {
		return Uploaded{}, fmt.Errorf("s3admin: upload %s/%s: %w", b.name, key, err)
	}
	return Uploaded{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionID)}, nil
}

// MaxAttempts is a client option capping the SDK's attempts per request at
// n (1: no retries); n <= 0 keeps the default.
func MaxAttempts(n int) func(*s3.Options) {
	return func(o *s3.Options) {
		if n > 0 {
			o.RetryMaxAttempts = n
		}
	}
}
