package blobstore

import (
	"context"
	"fmt"
)

// Copy streams the object key from src to dst under the same key: one GET
// on src piped into dst.Put with the source's size, content type and user
// metadata, so the SHA-256 in the result is that of the bytes actually
// read from src. Memory is bounded as for Put. When the source object is
// missing the error wraps ErrNotFound; when the source body ends early or
// runs long (it changed during the copy) it wraps ErrSizeMismatch and dst
// holds no partial object. src and dst may be in different regions or on
// different endpoints (no server-side CopyObject is used).
func Copy(ctx context.Context, src Source, dst Sink, key string) (CopyResult, error) {
	body, obj, err := src.Open(ctx, key)
	if err != nil {
		return CopyResult{}, fmt.Errorf("blobstore: copy %q: %w", key, err)
	}
	defer body.Close()
	res, err := dst.Put(ctx, key, body, obj.Size, PutAttrs{ContentType: obj.ContentType, Metadata: obj.Metadata})
	if err != nil {
		return CopyResult{}, fmt.Errorf("blobstore: copy %q: %w", key, err)
	}
	return CopyResult{Source: obj, PutResult: res}, nil
}
