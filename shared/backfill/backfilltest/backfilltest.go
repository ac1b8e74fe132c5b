// Package backfilltest holds what backfill's tests and benchmarks need and
// the Lambda binaries must not link: an S3 Inventory writer and a directory
// served as an inventory bucket.
package backfilltest

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
)

// DirStore serves the files below a directory as objects (key = slash
// path relative to the directory), so a locally written S3 Inventory can be
// reconciled without a bucket (benchmarks).
type DirStore struct {
	Root string
}

var _ backfill.InventoryStore = DirStore{}

// Open opens the file of key; a missing file gives an error wrapping
// blobstore.ErrNotFound.
func (d DirStore) Open(_ context.Context, key string) (io.ReadCloser, blobstore.Object, error) {
	f, err := os.Open(filepath.Join(d.Root, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, blobstore.Object{}, fmt.Errorf("backfill: dir store %s: %w", key, blobstore.ErrNotFound)
	}
	if err != nil {
		return nil, blobstore.Object{}, fmt.Errorf("backfill: dir store: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, blobstore.Object{}, fmt.Errorf("backfill: dir store: %w", err)
	}
	return f, blobstore.Object{Key: key, Size: st.Size(), LastModified: st.ModTime()}, nil
}

// List calls fn once with every file whose key starts with opts.Prefix and
// sorts after opts.StartAfter, in key order.
func (d DirStore) List(_ context.Context, opts blobstore.ListOptions, fn func(page []blobstore.Object) error) error {
	var page []blobstore.Object
	err := filepath.WalkDir(d.Root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(d.Root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, opts.Prefix) && key > opts.StartAfter {
			info, err := e.Info()
			if err != nil {
				return err
			}
			page = append(page, blobstore.Object{Key: key, Size: info.Size(), LastModified: info.ModTime()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("backfill: dir store list: %w", err)
	}
	sort.Slice(page, func(i, j int) bool { return page[i].Key < page[j].Key })
	if len(page) == 0 {
		return nil
	}
	return fn(page)
}

// WriteInventory writes a CSV inventory (Bucket, Key, Size, ETag; keys
// URL-encoded like S3's) of the given entries as gzipped files of at most
// perFile rows plus a manifest, through put (key, content). It returns the
// manifest key. Tests and benchmarks have no S3 Inventory service.
func WriteInventory(bucket, prefix string, created time.Time, perFile int, entries func(yield func(backfill.InventoryEntry) bool),
	put func(key string, content []byte) error,
) (string, error) {
	if perFile <= 0 {
		perFile = 100_000
	}
	dir := strings.TrimSuffix(prefix, "/") + "/" + created.UTC().Format("2006-01-02T15-04Z")
	m := backfill.Manifest{
		SourceBucket:      bucket,
		FileFormat:        "CSV",
		FileSchema:        "Bucket, Key, Size, ETag",
		CreationTimestamp: strconv.FormatInt(created.UnixMilli(), 10),
	}
	var (
		buf  strings.Builder
		n    int
		perr error
	)
	flush := func() bool {
		if n == 0 {
			return true
		}
		var gz strings.Builder
		zw := gzip.NewWriter(&gz)
		if _, err := io.WriteString(zw, buf.String()); err != nil {
			perr = err
			return false
		}
		if err := zw.Close(); err != nil {
			perr = err
			return false
		}
		key := fmt.Sprintf("%s/data/%05d.csv.gz", dir, len(m.Files))
		if err := put(key, []byte(gz.String())); err != nil {
			perr = err
			return false
		}
		m.Files = append(m.Files, backfill.ManifestFile{Key: key, Size: int64(gz.Len())})
		buf.Reset()
		n = 0
		return true
	}
	cw := csv.NewWriter(&buf)
	entries(func(e backfill.InventoryEntry) bool {
		if err := cw.Write([]string{bucket, url.QueryEscape(e.Key), strconv.FormatInt(e.Size, 10), e.ETag}); err != nil {
			perr = err
			return false
		}
		n++
		if n == perFile {
			cw.Flush()
			return flush()
		}
		return true
	})
	if perr != nil {
		return "", fmt.Errorf("backfill: write inventory: %w", perr)
	}
	cw.Flush()
	if !flush() {
		return "", fmt.Errorf("backfill: write inventory: %w", perr)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Key < m.Files[j].Key })
	js, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("backfill: write inventory manifest: %w", err)
	}
	key := dir + "/manifest.json"
	if err := put(key, js); err != nil {
		return "", fmt.Errorf("backfill: write inventory manifest: %w", err)
	}
	return key, nil
}
