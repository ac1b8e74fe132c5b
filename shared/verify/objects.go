package verify

import (
	"context"

	"github.com/geoblob/geoblob/shared/blobstore"
)

// Digest is what a deep read of one object found (blobstore.Store.Hash).
type Digest = blobstore.Digest

// Stored is the checksum an S3 server stores with an object (fast mode;
// blobstore.Store.Stat).
type Stored = blobstore.Stored

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

// Side is one bucket as verification sees it: deep reads and stored
// checksums. *blobstore.Store, the one S3 adapter, is the implementation.
type Side interface {
	Hasher
	StatReader
}

var _ Side = (*blobstore.Store)(nil)
