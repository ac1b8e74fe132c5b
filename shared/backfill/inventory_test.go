package backfill_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/backfill/backfilltest"
	"github.com/geoblob/geoblob/shared/blobstore"
)

const inventoryBucket = "inventory"

// writeInventory writes an inventory of the primary's current objects.
func (e *env) writeInventory(created time.Time, perFile int) string {
	e.t.Helper()
	objs := s3test.Contents(e.t, e.primaryS3)
	key, err := backfilltest.WriteInventory(primaryBucket, "inv/primary/all", created, perFile,
		func(yield func(backfill.InventoryEntry) bool) {
			for _, k := range keysOf(objs) {
				if !yield(backfill.InventoryEntry{Key: k, Size: int64(len(objs[k]))}) {
					return
				}
			}
		},
		func(key string, content []byte) error {
			s3test.Put(e.t, s3test.Bucket(e.t, e.pEndpoint, inventoryBucket), key, content)
			return nil
		})
	require.NoError(e.t, err)
	return key
}

// Reconcile from an S3 Inventory: registers what the inventory lists,
// propagates deletes of rows it does not list, resumes across budget-cut
// invocations and does not redo a reconciled manifest.
func TestInventoryReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s3test.Bucket(t, e.pEndpoint, inventoryBucket)
	gone := typedKey(99)
	e.put(gone, []byte("registered, then deleted without an event"))
	e.run(backfill.Request{})
	e.del(e.primaryS3, gone)
	const n = 60
	e.putTyped(n, func(i int) int { return 10 + i })
	created := time.Now().Add(time.Second) // the inventory is taken after the row of gone
	e.writeInventory(created, 17)

	e.cfg.Inventory = &backfill.S3URL{Bucket: inventoryBucket, Key: "inv/primary/all/"}
	e.opts.Inventory = blobstore.New(s3test.Client(t.Context(), e.pproxy.Endpoint()), inventoryBucket, blobstore.Options{})
	e.cfg.BatchSize = 10
	e.opts.Clock = steppingClock(time.Second)
	e.cfg.Budget = 4 * time.Second

	var listed int64
	runs := 0
	for ; runs < 50; runs++ {
		rep := e.run(backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
		require.Equal(t, "inventory", rep.Reconcile.Source)
		require.Empty(t, rep.Reconcile.Skipped)
		listed += rep.Reconcile.Listed
		if rep.Reconcile.PassComplete {
			break
		}
	}
	assert.Greater(t, runs, 1, "the budget cut the pass")
	assert.EqualValues(t, n, listed, "each inventory row was read once")
	rows := e.rows(false)
	assert.Len(t, rows, n)
	assert.NotContains(t, rows, gone)

	e.cfg.Budget = time.Hour
	rep := e.run(backfill.Request{})
	assert.Equal(t, "inventory already reconciled", rep.Reconcile.Skipped)
	assert.EqualValues(t, n, rep.Sync.Synced)
	e.requireConverged()
}

// ScanInventory reads S3's CSV dialect: quoted fields, URL-encoded keys,
// versioned inventories (old versions and delete markers skipped) and
// resumes mid-file.
func TestScanInventoryVersionedAndResume(t *testing.T) {
	t.Parallel()
	bucket := s3test.Bucket(t, s3test.NewGofakes3(t), inventoryBucket)
	store := bucket.Store()

	csvText := `"b","generic%2Fa+b%2Bc.bin","v2","true","false","12","2026-01-01T00:00:00.000Z","e1"
"b","generic%2Fa+b%2Bc.bin","v1","false","false","10","2025-01-01T00:00:00.000Z","e0"
"b","generic%2Fdeleted.bin","v3","true","true","","2026-01-01T00:00:00.000Z",""
"b","generic%2F%E2%82%AC.bin","v1","true","false","3","2026-01-01T00:00:00.000Z","e2"
`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(csvText))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	s3test.Put(t, bucket, "inv/2026-01-02T00-00Z/data/1.csv.gz", gz.Bytes())
	m := map[string]any{
		"sourceBucket": "b", "fileFormat": "CSV", "creationTimestamp": "1767312000000",
		"fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
		"files":      []map[string]any{{"key": "inv/2026-01-02T00-00Z/data/1.csv.gz", "size": gz.Len()}},
	}
	js, err := json.Marshal(m)
	require.NoError(t, err)
	s3test.Put(t, bucket, "inv/2026-01-01T00-00Z/manifest.json", []byte(`{"fileFormat":"CSV","files":[]}`))
	s3test.Put(t, bucket, "inv/2026-01-02T00-00Z/manifest.json", js)

	man, err := backfill.ReadManifest(t.Context(), store, "inv/")
	require.NoError(t, err)
	assert.Equal(t, "inv/2026-01-02T00-00Z/manifest.json", man.Key, "the newest manifest")
	assert.Equal(t, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), man.Created())

	scan := func(from backfill.InventoryPosition) ([]backfill.InventoryEntry, []backfill.InventoryPosition) {
		var (
			got []backfill.InventoryEntry
			pos []backfill.InventoryPosition
		)
		require.NoError(t, backfill.ScanInventory(t.Context(), store, man, from, 1, func(b []backfill.InventoryEntry, next backfill.InventoryPosition) error {
			got = append(got, b...)
			pos = append(pos, next)
			return nil
		}, func(r backfill.InventoryRejection) { t.Errorf("unexpected rejection: %v", r.Err) }))
		return got, pos
	}
	got, pos := scan(backfill.InventoryPosition{})
	assert.Equal(t, []backfill.InventoryEntry{
		{Key: "generic/a b+c.bin", Size: 12, ETag: "e1"},
		{Key: "generic/€.bin", Size: 3, ETag: "e2"},
	}, got)
	assert.Equal(t, backfill.InventoryPosition{File: 0, Line: 1}, pos[0])

	got, _ = scan(backfill.InventoryPosition{File: 0, Line: 1})
	assert.Equal(t, []backfill.InventoryEntry{{Key: "generic/€.bin", Size: 3, ETag: "e2"}}, got, "resumed after the first row")
	got, _ = scan(backfill.InventoryPosition{File: 1})
	assert.Empty(t, got)
}

// writeInventoryOf writes an inventory of bucket listing entries.
func (e *env) writeInventoryOf(bucket string, created time.Time, entries []backfill.InventoryEntry) {
	e.t.Helper()
	_, err := backfilltest.WriteInventory(bucket, "inv/primary/all", created, 100,
		func(yield func(backfill.InventoryEntry) bool) {
			for _, en := range entries {
				if !yield(en) {
					return
				}
			}
		},
		func(key string, content []byte) error {
			s3test.Put(e.t, s3test.Bucket(e.t, e.pEndpoint, inventoryBucket), key, content)
			return nil
		})
	require.NoError(e.t, err)
}

func (e *env) useInventory() {
	e.t.Helper()
	s3test.Bucket(e.t, e.pEndpoint, inventoryBucket)
	e.cfg.Inventory = &backfill.S3URL{Bucket: inventoryBucket, Key: "inv/primary/all/"}
	e.opts.Inventory = blobstore.New(s3test.Client(e.t.Context(), e.pproxy.Endpoint()), inventoryBucket, blobstore.Options{})
}

// TestInventoryRejectsInvalidRowsOneByOne: rows whose key holds NUL or is
// not UTF-8, or whose size is negative, can never be registered; the scan
// skips and counts them and registers the other rows, instead of failing
// the whole pass on every run.
func TestInventoryRejectsInvalidRowsOneByOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.useInventory()
	good := []string{typedKey(1), typedKey(2)}
	for _, k := range good {
		e.put(k, samples.Bytes(k, 10))
	}
	e.writeInventoryOf(primaryBucket, time.Now(), []backfill.InventoryEntry{
		{Key: good[0], Size: 10},
		{Key: "generic/bad/nul\x00.bin", Size: 1},
		{Key: "generic/bad/latin1-\xff.bin", Size: 1},
		{Key: typedKey(3), Size: -1},
		{Key: good[1], Size: 10},
	})
	rep := e.run(backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
	assert.True(t, rep.Reconcile.PassComplete)
	assert.EqualValues(t, 3, rep.Reconcile.Rejected)
	assert.EqualValues(t, 2, rep.Reconcile.Registered)
	rows := e.rows(false)
	assert.Len(t, rows, 2)
	for _, k := range good {
		assert.Contains(t, rows, k)
	}
}

// TestInventoryOfAnotherBucketIsRefused: a manifest whose sourceBucket is
// not the primary is refused before any row is read (it would register
// foreign keys and take every primary key for deleted).
func TestInventoryOfAnotherBucketIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.put(typedKey(1), samples.Bytes(typedKey(1), 10))
	e.run(backfill.Request{})
	require.Len(t, e.rows(false), 1)
	e.useInventory()

	e.writeInventoryOf("some-other-bucket", time.Now().Add(time.Second), []backfill.InventoryEntry{{Key: typedKey(7), Size: 3}})
	_, err := e.runner().Run(t.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
	require.ErrorIs(t, err, backfill.ErrInventory)
	assert.ErrorContains(t, err, "some-other-bucket")
	rows := e.rows(false)
	assert.Len(t, rows, 1, "nothing registered, nothing taken for deleted")
	assert.Contains(t, rows, typedKey(1))
}
