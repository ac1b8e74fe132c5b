package verify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3API is the subset of *s3.Client that Bucket uses.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	// HeadBucket tells a missing bucket from a missing key after a bare
	// 404 (IAM: s3:ListBucket, which verify has on both buckets).
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// Digest is what a deep read of one object found.
type Digest struct {
	SHA256    string // lower-case hex of the bytes read
	Size      int64  // bytes read (exactly one read of the object)
	ETag      string
	VersionID string
}

// Stored is the checksum an S3 server stores with an object (fast mode).
type Stored struct {
	// SHA256 is the lower-case hex full-object SHA-256 the server stores and
	// validated on upload; "" when the object carries none (no checksum, a
	// different algorithm, or a composite multipart checksum).
	SHA256    string
	Size      int64
	ETag      string
	VersionID string
}

// Hasher computes the SHA-256 of one side's objects by reading their bytes.
type Hasher interface {
	// Hash reads the object once and returns its SHA-256, or an error
	// wrapping ErrObjectNotFound when it does not exist.
	Hash(ctx context.Context, key string) (Digest, error)
}

// StatReader returns the checksum a server stores with an object without
// reading its bytes.
type StatReader interface {
	// Stat returns the stored checksum (Stored.SHA256 "" when there is no
	// usable one), or an error wrapping ErrObjectNotFound.
	Stat(ctx context.Context, key string) (Stored, error)
}

// Side is one bucket as verification sees it: deep reads and stored checksums.
type Side interface {
	Hasher
	StatReader
}

// Bucket reads one S3 bucket for verification. It is safe for concurrent use.
type Bucket struct {
	client S3API
	name   string
	bufs   sync.Pool // *[]byte of hashBufSize
}

var _ Side = (*Bucket)(nil)

// hashBufSize is the read size of deep verification: large enough that the
// per-read overhead vanishes next to SHA-256, small enough to stay in L2.
const hashBufSize = 256 << 10

// NewBucket returns a Bucket over the named bucket.
func NewBucket(client S3API, name string) *Bucket {
	return &Bucket{client: client, name: name}
}

// Name returns the bucket name.
func (b *Bucket) Name() string { return b.name }

// noResponseValidation stops the SDK from hashing the body a second time
// (its default validates any checksum the server returns): deep verification
// computes the SHA-256 itself, once.
func noResponseValidation(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// Hash implements Hasher: one GetObject, every byte through SHA-256 once.
func (b *Bucket) Hash(ctx context.Context, key string) (Digest, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.name, Key: &key}, noResponseValidation)
	if err != nil {
		return Digest{}, b.opError(ctx, "hash", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := b.copyHash(h, out.Body)
	if err != nil {
		return Digest{}, fmt.Errorf("verify: hash %s/%s: read after %d bytes: %w", b.name, key, n, err)
	}
	if want := aws.ToInt64(out.ContentLength); out.ContentLength != nil && want != n {
		return Digest{}, fmt.Errorf("verify: hash %s/%s: %w: content-length %d, read %d", b.name, key, ErrShortRead, want, n)
	}
	return Digest{
		SHA256:    hex.EncodeToString(h.Sum(nil)),
		Size:      n,
		ETag:      aws.ToString(out.ETag),
		VersionID: aws.ToString(out.VersionId),
	}, nil
}

func (b *Bucket) copyHash(h hash.Hash, r io.Reader) (int64, error) {
	bp, _ := b.bufs.Get().(*[]byte)
	if bp == nil {
		buf := make([]byte, hashBufSize)
		bp = &buf
	}
	defer b.bufs.Put(bp)
	return HashReader(h, r, *bp)
}

// HashReader feeds r into h through buf until EOF and returns the number of
// bytes read. It is the deep-verification inner loop (no extra copy).
func HashReader(h hash.Hash, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			h.Write(buf[:m]) // hash.Hash.Write never fails
			n += int64(m)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Stat implements StatReader with HeadObject in checksum mode.
func (b *Bucket) Stat(ctx context.Context, key string) (Stored, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &b.name, Key: &key, ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return Stored{}, b.opError(ctx, "stat", key, err)
	}
	return Stored{
		SHA256:    fullObjectSHA256(out.ChecksumSHA256, out.ChecksumType),
		Size:      aws.ToInt64(out.ContentLength),
		ETag:      aws.ToString(out.ETag),
		VersionID: aws.ToString(out.VersionId),
	}, nil
}

// fullObjectSHA256 returns the hex form of a stored base64 SHA-256 only
// when the server says it covers the whole object (x-amz-checksum-type
// FULL_OBJECT, as S3 and MinIO return for single-part uploads). A value
// without that type is not trusted: gofakes3, for one, echoes the header it
// was sent without validating it and keeps it across overwrites. A
// composite multipart checksum ("<base64>-<parts>") never qualifies.
// Anything else gives "".
func fullObjectSHA256(v *string, typ types.ChecksumType) string {
	s := aws.ToString(v)
	if s == "" || typ != types.ChecksumTypeFullObject || strings.Contains(s, "-") {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != sha256.Size {
		return ""
	}
	return hex.EncodeToString(raw)
}

// opError maps a read error. A missing bucket is never a missing object
// (HEAD answers both with a bare 404, so a HeadBucket decides): it is
// ErrBucketMissing, an error the row records and retries, not "missing".
func (b *Bucket) opError(ctx context.Context, op, key string, err error) error {
	if isNotFound(err) {
		if _, berr := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.name}); berr != nil && (isNotFound(berr) || isNoSuchBucket(berr)) {
			return fmt.Errorf("verify: %s %s/%s: %w: %w", op, b.name, key, ErrBucketMissing, err)
		}
		return fmt.Errorf("verify: %s %s/%s: %w: %w", op, b.name, key, ErrObjectNotFound, err)
	}
	if isNoSuchBucket(err) {
		return fmt.Errorf("verify: %s %s/%s: %w: %w", op, b.name, key, ErrBucketMissing, err)
	}
	return fmt.Errorf("verify: %s %s/%s: %w", op, b.name, key, err)
}

// isNotFound maps provider errors to ErrObjectNotFound: typed S3 error codes
// or a bare HTTP 404 (HEAD responses carry no body).
func isNotFound(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 404 && !isNoSuchBucket(err)
}

func isNoSuchBucket(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket"
}
