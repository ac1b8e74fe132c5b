package backfill_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
)

// bytesInventory serves a fuzzed inventory: the manifest at manifestKey and
// the same CSV data for every file the manifest lists. It is the parser's
// input, not a stand-in for S3 (the inventory tests use a real S3 API).
type bytesInventory struct {
	manifest, data []byte
}

const manifestKey = "inv/2026-01-01T00-00Z/manifest.json"

func (b bytesInventory) Open(_ context.Context, key string) (io.ReadCloser, blobstore.Object, error) {
	body := b.data
	if key == manifestKey {
		body = b.manifest
	}
	return io.NopCloser(bytes.NewReader(body)), blobstore.Object{Key: key, Size: int64(len(body))}, nil
}

func (b bytesInventory) List(_ context.Context, _ blobstore.ListOptions, fn func([]blobstore.Object) error) error {
	return fn([]blobstore.Object{{Key: manifestKey}})
}

var (
	_ backfill.ObjectReader = bytesInventory{}
	_ backfill.ObjectLister = bytesInventory{}
)

// FuzzInventory feeds manifests and CSV data files to ReadManifest and
// ScanInventory: they must not panic; errors wrap ErrInventory; every entry
// delivered has a key that is valid UTF-8 without NUL of 1 to 1,024 bytes
// and a size that is not negative; every rejected row wraps ErrInvalidRow;
// positions never go backwards; a manifest is accepted only for the bucket
// it names.
func FuzzInventory(f *testing.F) {
	const schema = `{"sourceBucket":"primary","fileFormat":"CSV","fileSchema":"Bucket, Key, Size, ETag","creationTimestamp":"1767225600000","files":[{"key":"inv/data/1.csv","size":1}]}`
	f.Add([]byte(schema), []byte("\"primary\",\"generic%2Fa+b.bin\",\"12\",\"e1\"\n"))
	f.Add([]byte(schema), []byte("primary,generic%2Fnul%00.bin,1,e\nprimary,generic%2Fok.bin,-3,e\nprimary,generic%2F%FF.bin,1,e\n"))
	f.Add([]byte(schema), []byte("primary,k,notanumber,e\nprimary,%zz,1,e\nprimary\n"))
	f.Add([]byte(`{"sourceBucket":"primary","fileFormat":"CSV","fileSchema":"Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size","files":[{"key":"a.csv"},{"key":"b.csv"}]}`),
		[]byte("b,k,v1,true,false,1\nb,k,v0,false,false,2\nb,d,v2,true,true,\n"))
	f.Add([]byte(`{"sourceBucket":"other","fileFormat":"ORC","files":[]}`), []byte(""))
	f.Add([]byte(`{"fileSchema":"Size","files":[{"key":"x.csv.gz"}]}`), []byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, manifest, data []byte) {
		ctx := t.Context()
		store := bytesInventory{manifest: manifest, data: data}
		m, err := backfill.ReadManifest(ctx, store, "inv/")
		if err != nil {
			if !errors.Is(err, backfill.ErrInventory) {
				t.Fatalf("manifest error does not wrap ErrInventory: %v", err)
			}
			return
		}
		if m.SourceBucket != "primary" && m.CheckSource("primary") == nil {
			t.Fatalf("manifest of bucket %q accepted for the primary", m.SourceBucket)
		}
		var last backfill.InventoryPosition
		err = backfill.ScanInventory(ctx, store, m, backfill.InventoryPosition{}, 2,
			func(batch []backfill.InventoryEntry, next backfill.InventoryPosition) error {
				for _, e := range batch {
					if e.Key == "" || len(e.Key) > 1024 || !utf8.ValidString(e.Key) || strings.IndexByte(e.Key, 0) >= 0 {
						t.Fatalf("entry with unusable key %q", e.Key)
					}
					if e.Size < 0 {
						t.Fatalf("entry %q with negative size %d", e.Key, e.Size)
					}
				}
				if next.File < last.File || next.File == last.File && next.Line < last.Line {
					t.Fatalf("position went back from %+v to %+v", last, next)
				}
				last = next
				return nil
			},
			func(r backfill.InventoryRejection) {
				if !errors.Is(r.Err, backfill.ErrInvalidRow) {
					t.Fatalf("rejection without ErrInvalidRow: %v", r.Err)
				}
			})
		if err != nil && !errors.Is(err, backfill.ErrInventory) && !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("scan error does not wrap ErrInventory: %v", err)
		}
	})
}
