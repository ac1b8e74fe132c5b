// Package blobstore reads and writes blobs in S3-compatible buckets through
// aws-sdk-go-v2: streaming, multipart above a threshold, SHA-256 computed in
// the same pass, provider errors mapped to this package's sentinels.
package blobstore

import (
	"errors"
	"time"
)

// Sentinel errors; provider errors are mapped to these at the edge.
var (
	// ErrNotFound: the object does not exist (its bucket does).
	ErrNotFound = errors.New("blobstore: not found")
	// ErrNoSuchBucket: the bucket itself does not exist (deleted, renamed,
	// misconfigured). It is never a missing object: callers must not count
	// it as one (no "missing on primary", no delete propagated); it is
	// retryable (the bucket may come back) and alarmed.
	ErrNoSuchBucket = errors.New("blobstore: bucket does not exist")
	// ErrSizeMismatch: the bytes written or read differ from the expected size.
	ErrSizeMismatch = errors.New("blobstore: size mismatch")
)

// ChecksumTag is the object tag under which geoblob stores the hex SHA-256 of
// the content it wrote.
const ChecksumTag = "geoblob-sha256"

// Object describes a stored object.
type Object struct {
	Key          string
	Size         int64
	ETag         string
	VersionID    string
	ContentType  string
	Metadata     map[string]string // user metadata (x-amz-meta-*), keys lower-case
	LastModified time.Time
}

// PutAttrs are the attributes written with an object.
type PutAttrs struct {
	ContentType string
	Metadata    map[string]string
}

// PutResult is what Put wrote.
type PutResult struct {
	Size      int64
	SHA256    string // hex SHA-256 of the bytes written
	ETag      string
	VersionID string
}

// CopyResult is what Copy replicated.
type CopyResult struct {
	Source Object // the primary object as read (its version id, etag, size)
	PutResult
}
