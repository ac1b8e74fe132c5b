package backfill

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/events"
)

// ObjectReader opens objects by key; *blobstore.Store satisfies it. The
// inventory reader uses it for manifest.json and the gzipped CSV files.
type ObjectReader interface {
	Open(ctx context.Context, key string) (io.ReadCloser, blobstore.Object, error)
}

// ObjectLister pages through a bucket in key order; *blobstore.Store
// satisfies it.
type ObjectLister interface {
	List(ctx context.Context, opts blobstore.ListOptions, fn func(page []blobstore.Object) error) error
}

var (
	_ ObjectReader = (*blobstore.Store)(nil)
	_ ObjectLister = (*blobstore.Store)(nil)
)

// Manifest is the part of an S3 Inventory manifest.json that backfill uses.
type Manifest struct {
	// Key is the manifest's own object key in the inventory bucket.
	Key          string `json:"-"`
	SourceBucket string `json:"sourceBucket"`
	FileFormat   string `json:"fileFormat"`
	FileSchema   string `json:"fileSchema"`
	// CreationTimestamp is milliseconds since the epoch, as a string.
	CreationTimestamp string         `json:"creationTimestamp"`
	Files             []ManifestFile `json:"files"`
}

// ManifestFile is one data file listed by a manifest.
type ManifestFile struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// Created returns the manifest's creation time (zero when absent or invalid).
func (m Manifest) Created() time.Time {
	ms, err := strconv.ParseInt(m.CreationTimestamp, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// InventoryEntry is one live object listed by an inventory.
type InventoryEntry struct {
	Key  string // URL-decoded
	Size int64
	ETag string
}

// InventoryRejection is a row ScanInventory skipped because it can never be
// registered; Err wraps ErrInvalidRow.
type InventoryRejection struct {
	File string // data file key
	Line int64  // 1-based line in the file
	Err  error
}

// CheckSource refuses a manifest that does not describe bucket (the
// primary): reconciling another bucket's listing against the registry
// would register foreign keys and take every primary key for deleted.
func (m Manifest) CheckSource(bucket string) error {
	if m.SourceBucket != bucket {
		return fmt.Errorf("%w: manifest %s lists bucket %q, not the primary %q", ErrInventory, m.Key, m.SourceBucket, bucket)
	}
	return nil
}

// InventoryPosition locates a row in an inventory: the next row to read is
// row Line (0-based, counting data rows) of file File.
type InventoryPosition struct {
	File int   `json:"file"`
	Line int64 `json:"line"`
}

// ReadManifest reads and validates the manifest at key. When key does not
// end in "manifest.json" it is taken as a prefix (an inventory
// configuration's destination prefix) and the newest manifest below it is
// used: inventory folders are named by their UTC timestamp, so the
// lexicographically greatest ".../manifest.json" is the newest.
func ReadManifest(ctx context.Context, store interface {
	ObjectReader
	ObjectLister
}, key string) (Manifest, error) {
	if !strings.HasSuffix(key, "manifest.json") {
		newest, err := newestManifest(ctx, store, key)
		if err != nil {
			return Manifest{}, err
		}
		key = newest
	}
	body, _, err := store.Open(ctx, key)
	if err != nil {
		return Manifest{}, fmt.Errorf("backfill: open inventory manifest %s: %w", key, err)
	}
	defer body.Close()
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(body, 64<<20)).Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest %s: %v", ErrInventory, key, err)
	}
	m.Key = key
	if m.FileFormat != "" && !strings.EqualFold(m.FileFormat, "CSV") {
		return Manifest{}, fmt.Errorf("%w: manifest %s: file format %q is not supported (use CSV)", ErrInventory, key, m.FileFormat)
	}
	if _, err := m.schema(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func newestManifest(ctx context.Context, store ObjectLister, prefix string) (string, error) {
	var newest string
	err := store.List(ctx, blobstore.ListOptions{Prefix: prefix}, func(page []blobstore.Object) error {
		for _, o := range page {
			if strings.HasSuffix(o.Key, "/manifest.json") && o.Key > newest {
				newest = o.Key
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("backfill: list inventory manifests under %q: %w", prefix, err)
	}
	if newest == "" {
		return "", fmt.Errorf("%w: no manifest.json under %q", ErrInventory, prefix)
	}
	return newest, nil
}

// csvSchema holds the column indexes of the fields backfill reads (-1 when
// absent).
type csvSchema struct {
	key, size, etag, isLatest, isDeleteMarker int
}

// schema resolves column indexes from fileSchema; without one the columns
// are taken to be Bucket, Key, Size.
func (m Manifest) schema() (csvSchema, error) {
	s := csvSchema{key: 1, size: 2, etag: -1, isLatest: -1, isDeleteMarker: -1}
	if strings.TrimSpace(m.FileSchema) == "" {
		return s, nil
	}
	s = csvSchema{key: -1, size: -1, etag: -1, isLatest: -1, isDeleteMarker: -1}
	for i, f := range strings.Split(m.FileSchema, ",") {
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "key":
			s.key = i
		case "size":
			s.size = i
		case "etag":
			s.etag = i
		case "islatest":
			s.isLatest = i
		case "isdeletemarker":
			s.isDeleteMarker = i
		}
	}
	if s.key < 0 {
		return s, fmt.Errorf("%w: manifest %s: fileSchema %q has no Key column", ErrInventory, m.Key, m.FileSchema)
	}
	return s, nil
}

// ScanInventory streams the live objects of the manifest's files from
// position from, calling fn with batches of at most batchSize entries and
// the position just after the batch's last row. Rows of old versions and
// delete markers (versioned inventories) are skipped but still advance the
// position. Rows that can never be registered (see ErrInvalidRow) are
// passed to reject (which must not be nil) and skipped; they advance the
// position too. An error from fn stops the scan and is returned as is.
//
// Resuming at a position re-reads (decompresses) the rows of that file
// before it, but never a file before it.
func ScanInventory(ctx context.Context, store ObjectReader, m Manifest, from InventoryPosition, batchSize int,
	fn func(batch []InventoryEntry, next InventoryPosition) error, reject func(InventoryRejection),
) error {
	sch, err := m.schema()
	if err != nil {
		return err
	}
	if batchSize <= 0 {
		batchSize = 10_000
	}
	batch := make([]InventoryEntry, 0, batchSize)
	for fi := from.File; fi < len(m.Files); fi++ {
		skip := int64(0)
		if fi == from.File {
			skip = from.Line
		}
		err := scanFile(ctx, store, m.Files[fi].Key, sch, skip, reject, func(e InventoryEntry, line int64, live bool) error {
			if live {
				batch = append(batch, e)
			}
			if len(batch) == batchSize {
				if err := fn(batch, InventoryPosition{File: fi, Line: line + 1}); err != nil {
					return err
				}
				batch = batch[:0]
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Flush at each file end so positions never point into a file
		// whose rows were already delivered.
		if err := fn(batch, InventoryPosition{File: fi + 1}); err != nil {
			return err
		}
		batch = batch[:0]
	}
	return nil
}

// errStop ends a scan early without being an error.
var errStop = errors.New("backfill: stop")

func scanFile(ctx context.Context, store ObjectReader, key string, sch csvSchema, skip int64,
	reject func(InventoryRejection), row func(e InventoryEntry, line int64, live bool) error,
) error {
	body, _, err := store.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("backfill: open inventory file %s: %w", key, err)
	}
	defer body.Close()
	var r io.Reader = body
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return fmt.Errorf("%w: inventory file %s: %v", ErrInventory, key, err)
		}
		defer zr.Close()
		r = zr
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	for line := int64(0); ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: inventory file %s: %v", ErrInventory, key, err)
		}
		if line < skip {
			continue
		}
		if line&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("backfill: inventory file %s: %w", key, err)
			}
		}
		e, live, err := parseRecord(rec, sch)
		if errors.Is(err, ErrInvalidRow) {
			reject(InventoryRejection{File: key, Line: line + 1, Err: err})
			live = false
		} else if err != nil {
			return fmt.Errorf("%w: inventory file %s line %d: %v", ErrInventory, key, line+1, err)
		}
		if err := row(e, line, live); err != nil {
			return err
		}
	}
}

// parseRecord reads one data row. A row too short to hold the key is an
// error of the file; a row whose key or size can never be registered is an
// ErrInvalidRow.
func parseRecord(rec []string, sch csvSchema) (InventoryEntry, bool, error) {
	field := func(i int) string {
		if i < 0 || i >= len(rec) {
			return ""
		}
		return rec[i]
	}
	if sch.key >= len(rec) {
		return InventoryEntry{}, false, fmt.Errorf("%d fields, key is field %d", len(rec), sch.key+1)
	}
	key, err := url.QueryUnescape(rec[sch.key])
	if err != nil {
		return InventoryEntry{}, false, fmt.Errorf("%w: key %q: %v", ErrInvalidRow, rec[sch.key], err)
	}
	if err := events.ValidKey(key); err != nil {
		return InventoryEntry{}, false, fmt.Errorf("%w: key %q: %v", ErrInvalidRow, rec[sch.key], err)
	}
	e := InventoryEntry{Key: key, ETag: field(sch.etag)}
	if s := field(sch.size); s != "" {
		if e.Size, err = strconv.ParseInt(s, 10, 64); err != nil {
			return InventoryEntry{}, false, fmt.Errorf("%w: key %q: size %q: %v", ErrInvalidRow, key, s, err)
		}
		if err := events.ValidSize(e.Size); err != nil {
			return InventoryEntry{}, false, fmt.Errorf("%w: key %q: %v", ErrInvalidRow, key, err)
		}
	}
	live := !strings.EqualFold(field(sch.isLatest), "false") && !strings.EqualFold(field(sch.isDeleteMarker), "true")
	return e, live, nil
}
