package blobstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3API is the subset of *s3.Client that Store uses.
type S3API interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	PutObjectTagging(ctx context.Context, in *s3.PutObjectTaggingInput, opts ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error)
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// Defaults applied by New to zero Options fields.
const (
	DefaultMultipartThreshold int64 = 16 << 20
	DefaultPartSize           int64 = 8 << 20
	DefaultConcurrency              = 4
	DefaultListPageSize       int32 = 1000
)

// S3 limits that shape multipart uploads.
const (
	// MaxParts is the largest number of parts S3 accepts in one upload.
	MaxParts = 10000
	// MinPartSize is the smallest part S3 accepts (except for the last part).
	MinPartSize int64 = 5 << 20
	// MaxSinglePutSize is the largest object a single PutObject may write.
	MaxSinglePutSize int64 = 5 << 30
	// MaxObjectSize is the largest object S3 stores (5 TiB).
	MaxObjectSize int64 = 5 << 40
)

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// MultipartThreshold: objects of at most this many bytes are written
	// with one PutObject (held in a buffer of exactly their size); larger
	// ones by multipart upload. Default 16 MiB; capped at 5 GiB.
	MultipartThreshold int64
	// PartSize is the multipart part size. Default 8 MiB, at least 5 MiB.
	// It grows for very large objects so that no upload needs more than
	// 10,000 parts.
	PartSize int64
	// Concurrency is the number of parts uploaded at once. Default 4.
	// Memory held by one multipart Put is at most
	// max(PartSize*Concurrency, adapted part size).
	Concurrency int
	// Logger receives debug and warning logs. Default slog.Default().
	Logger *slog.Logger
}

// Store reads and writes objects in one bucket. It is safe for concurrent
// use.
type Store struct {
	client S3API
	bucket string
	opts   Options
	log    *slog.Logger
	// hashBufs holds *[]byte read buffers of Hash (hashBufSize).
	hashBufs sync.Pool
}

// Source is what Copy reads from; *Store satisfies it.
type Source interface {
	// Open returns the object's content and attributes, or an error
	// wrapping ErrNotFound when it does not exist.
	Open(ctx context.Context, key string) (io.ReadCloser, Object, error)
}

// Sink is what Copy writes to; *Store satisfies it.
type Sink interface {
	// Put writes exactly size bytes read from body under key, or fails
	// leaving no partial object behind.
	Put(ctx context.Context, key string, body io.Reader, size int64, attrs PutAttrs) (PutResult, error)
}

var (
	_ Source = (*Store)(nil)
	_ Sink   = (*Store)(nil)
)

// New returns a Store over bucket. Zero option fields take the defaults.
func New(client S3API, bucket string, opts Options) *Store {
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = DefaultMultipartThreshold
	}
	opts.MultipartThreshold = min(opts.MultipartThreshold, MaxSinglePutSize)
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	opts.PartSize = max(opts.PartSize, MinPartSize)
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Store{
		client: client,
		bucket: bucket,
		opts:   opts,
		log:    opts.Logger.With("bucket", bucket),
	}
}

// Options returns the effective options (defaults applied).
func (s *Store) Options() Options { return s.opts }

// Bucket returns the bucket the store writes to.
func (s *Store) Bucket() string { return s.bucket }

// Head returns the object's attributes, an error wrapping ErrNotFound when
// the object does not exist, or one wrapping ErrNoSuchBucket when the bucket
// does not. (A HEAD response has no body, so S3 answers both with a bare
// 404; a HeadBucket, only on that path, tells them apart.)
func (s *Store) Head(ctx context.Context, key string) (Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Object{}, s.objectError(ctx, "head", key, err)
	}
	return object(key, out.ContentLength, out.ETag, out.VersionId, out.ContentType, out.Metadata, out.LastModified), nil
}

// objectError maps the error of an object operation whose 404 may not say
// whether the key or the bucket is missing (HEAD has no body; some servers
// answer NoSuchKey for a missing bucket): a not-found is checked with
// HeadBucket and becomes ErrNoSuchBucket when the bucket is gone.
func (s *Store) objectError(ctx context.Context, op, key string, err error) error {
	oerr := opError(op, s.bucket, key, err)
	if errors.Is(oerr, ErrNotFound) && errors.Is(s.HeadBucket(ctx), ErrNoSuchBucket) {
		return &Error{Op: op, Bucket: s.bucket, Key: key, Kind: ErrNoSuchBucket, Err: err, retryable: true}
	}
	return oerr
}

// HeadBucket checks that the bucket exists and is reachable (IAM:
// s3:ListBucket on the bucket). A missing bucket gives an error wrapping
// ErrNoSuchBucket with an empty Key.
func (s *Store) HeadBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	return opError(opHeadBucket, s.bucket, "", err)
}

// Open starts reading the object. The caller must close the returned body.
// The returned Object describes exactly the version being read. Missing
// objects give an error wrapping ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	return s.OpenVersion(ctx, key, "")
}

// object describes key from the attributes of a HEAD or GET response.
func object(key string, size *int64, etag, versionID, contentType *string, meta map[string]string, modified *time.Time) Object {
	return Object{
		Key:          key,
		Size:         aws.ToInt64(size),
		ETag:         aws.ToString(etag),
		VersionID:    aws.ToString(versionID),
		ContentType:  aws.ToString(contentType),
		Metadata:     lowerKeys(meta),
		LastModified: aws.ToTime(modified),
	}
}

// Delete removes the object. Deleting a missing object succeeds; a missing
// bucket gives an error wrapping ErrNoSuchBucket.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && isNotFound(err) && !isNoSuchBucket(err) {
		return nil
	}
	return opError("delete", s.bucket, key, err)
}

// ListOptions select and page a listing.
type ListOptions struct {
	// Prefix limits the listing to keys starting with it.
	Prefix string
	// StartAfter resumes a listing after this key (exclusive).
	StartAfter string
	// PageSize is the number of objects per page (1..1000). Default 1000.
	PageSize int32
}

// List calls fn with each page of objects whose key starts with
// opts.Prefix and sorts after opts.StartAfter, in key order. Objects in a
// page carry Key, Size, ETag and LastModified only. A page is never empty.
// An error from fn stops the listing and is returned as is; resuming
// with StartAfter = last key seen continues where it stopped.
func (s *Store) List(ctx context.Context, opts ListOptions, fn func(page []Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket}
	if opts.Prefix != "" {
		in.Prefix = &opts.Prefix
	}
	if opts.StartAfter != "" {
		in.StartAfter = &opts.StartAfter
	}
	in.MaxKeys = aws.Int32(DefaultListPageSize)
	if opts.PageSize > 0 {
		in.MaxKeys = aws.Int32(min(opts.PageSize, DefaultListPageSize))
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return opError("list", s.bucket, opts.Prefix, err)
		}
		if len(out.Contents) == 0 {
			continue
		}
		page := make([]Object, 0, len(out.Contents))
		for _, o := range out.Contents {
			page = append(page, Object{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				ETag:         aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
		if err := fn(page); err != nil {
			return err
		}
	}
	return nil
}

// Checksum returns the hex SHA-256 stored in the object's ChecksumTag by
// Put, "" when the object has no such tag, or an error wrapping
// ErrNotFound when the object does not exist.
func (s *Store) Checksum(ctx context.Context, key string) (string, error) {
	out, err := s.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return "", s.objectError(ctx, "checksum", key, err)
	}
	return tagValue(out.TagSet, ChecksumTag), nil
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// cleanupTimeout bounds best-effort cleanup (abort, delete) done after the
// caller's context may already be cancelled.
const cleanupTimeout = 30 * time.Second

// cleanupContext returns a context that survives the cancellation of ctx
// (keeping its values) but expires after cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// readFull reads into buf until it is full or the reader fails. Unlike
// io.ReadFull it returns the reader's own error (io.EOF for a clean end,
// io.ErrUnexpectedEOF when a transport cut the body short).
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			if n == len(buf) && errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

// expectEOF checks that r holds no more bytes. It returns (true, nil) at a
// clean end, (false, nil) when there are extra bytes and (false, err) when
// the reader fails.
func expectEOF(r io.Reader) (bool, error) {
	var one [1]byte
	for range 100 {
		n, err := r.Read(one[:])
		if n > 0 {
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, io.ErrNoProgress
}
