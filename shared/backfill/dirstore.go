package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/geoblob/geoblob/shared/blobstore"
)

// DirStore serves the files below a directory as objects (key = slash
// path relative to the directory). It lets a locally stored S3 Inventory
// (benchmarks, the local stack, an inventory copied down for analysis) be
// reconciled without a bucket.
type DirStore struct {
	Root string
}

var _ InventoryStore = DirStore{}

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
