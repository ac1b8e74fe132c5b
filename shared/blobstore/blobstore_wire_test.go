package blobstore_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/blobstore/blobstoretest"
)

// TestWireIntegrity pins what Put sends: a single PutObject carries the
// SHA-256 of the body in x-amz-checksum-sha256 and is not hashed a second
// time for SigV4 (UNSIGNED-PAYLOAD); every UploadPart carries a CRC32
// checksum header, also with UNSIGNED-PAYLOAD.
func TestWireIntegrity(t *testing.T) {
	t.Parallel()
	endpoint := s3test.NewGofakes3(t)
	s3test.CreateBucket(t, s3test.Client(t.Context(), endpoint), "wire")
	var (
		mu   sync.Mutex
		seen = map[string][]http.Header{}
	)
	p := s3test.NewFaultProxy(t, endpoint, func(r *http.Request) s3test.Fault {
		mu.Lock()
		defer mu.Unlock()
		seen[s3test.Op(r)] = append(seen[s3test.Op(r)], r.Header.Clone())
		return s3test.Fault{}
	})
	s := blobstore.New(s3test.Client(t.Context(), p.Endpoint()), "wire", faultOpts)

	small := blobstoretest.RandomBytes(1, 1000)
	_, err := s.Put(t.Context(), "small", blobstoretest.Random(1, 1000), 1000, blobstore.PutAttrs{})
	require.NoError(t, err)
	_, err = s.Put(t.Context(), "large", blobstoretest.Random(2, multipartSize), multipartSize, blobstore.PutAttrs{})
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen[s3test.OpPutObject], 1)
	put := seen[s3test.OpPutObject][0]
	sum := sha256.Sum256(small)
	assert.Equal(t, base64.StdEncoding.EncodeToString(sum[:]), put.Get("X-Amz-Checksum-Sha256"))
	assert.Equal(t, "UNSIGNED-PAYLOAD", put.Get("X-Amz-Content-Sha256"))
	assert.Contains(t, put.Get("X-Amz-Tagging"), blobstore.ChecksumTag+"=")

	require.Len(t, seen[s3test.OpUploadPart], 4)
	for _, h := range seen[s3test.OpUploadPart] {
		assert.NotEmpty(t, h.Get("X-Amz-Checksum-Crc32"))
		assert.Equal(t, "UNSIGNED-PAYLOAD", h.Get("X-Amz-Content-Sha256"))
	}
	assert.Len(t, seen[s3test.OpPutObjectTagging], 1)
}
