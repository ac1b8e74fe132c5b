package blobstore

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Digest is what a deep read of one object found.
type Digest struct {
	SHA256    string // lower-case hex of the bytes read
	Size      int64  // bytes read (exactly one read of the object)
	ETag      string
	VersionID string
}

// Stored is the checksum an S3 server stores with an object, read without
// reading its bytes.
type Stored struct {
	// SHA256 is the lower-case hex full-object SHA-256 the server stores and
	// validated on upload; "" when the object carries none (no checksum, a
	// different algorithm, or a composite multipart checksum).
	SHA256    string
	Size      int64
	ETag      string
	VersionID string
}

// hashBufSize is the read size of Hash: large enough that the per-read
// overhead vanishes next to SHA-256, small enough to stay in L2.
const hashBufSize = 256 << 10

// noResponseValidation stops the SDK from hashing the body a second time
// (its default validates any checksum the server returns): Hash computes the
// SHA-256 itself, once.
func noResponseValidation(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// Hash reads the object once (one GetObject, every byte through SHA-256
// once) and returns its digest. A missing object gives an error wrapping
// ErrNotFound, a missing bucket one wrapping ErrNoSuchBucket, a body whose
// length differs from its Content-Length one wrapping ErrSizeMismatch.
func (s *Store) Hash(ctx context.Context, key string) (Digest, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}, noResponseValidation)
	if err != nil {
		return Digest{}, s.objectError(ctx, "hash", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := s.copyHash(h, out.Body)
	if err != nil {
		return Digest{}, &Error{Op: "hash", Bucket: s.bucket, Key: key, Err: fmt.Errorf("read after %d bytes: %w", n, err), retryable: classifyRetryable(err)}
	}
	if want := aws.ToInt64(out.ContentLength); out.ContentLength != nil && want != n {
		return Digest{}, sizeError("hash", s.bucket, key, want, n, nil)
	}
	return Digest{
		SHA256:    hex.EncodeToString(h.Sum(nil)),
		Size:      n,
		ETag:      aws.ToString(out.ETag),
		VersionID: aws.ToString(out.VersionId),
	}, nil
}

func (s *Store) copyHash(h hash.Hash, r io.Reader) (int64, error) {
	bp, _ := s.hashBufs.Get().(*[]byte)
	if bp == nil {
		buf := make([]byte, hashBufSize)
		bp = &buf
	}
	defer s.hashBufs.Put(bp)
	return hashReader(h, r, *bp)
}

// hashReader feeds r into h through buf until EOF and returns the number of
// bytes read (no extra copy).
func hashReader(h hash.Hash, r io.Reader, buf []byte) (int64, error) {
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

// Stat returns the checksum the server stores with the object (HeadObject in
// checksum mode; Stored.SHA256 "" when there is no usable one), or an error
// wrapping ErrNotFound or ErrNoSuchBucket.
func (s *Store) Stat(ctx context.Context, key string) (Stored, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &s.bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return Stored{}, s.objectError(ctx, "stat", key, err)
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
	str := aws.ToString(v)
	if str == "" || typ != types.ChecksumTypeFullObject || strings.Contains(str, "-") {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(str)
	if err != nil || len(raw) != sha256.Size {
		return ""
	}
	return hex.EncodeToString(raw)
}
