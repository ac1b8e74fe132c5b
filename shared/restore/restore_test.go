package restore_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
	"github.com/geoblob/geoblob/shared/restore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	primaryBucket   = rt.PrimaryBucket
	secondaryBucket = rt.SecondaryBucket
)

// world: one MinIO holding an unversioned primary and a versioned
// secondary, a registry, the replication engine and backfill.
type world struct {
	t         *testing.T
	pool      *pgxpool.Pool
	reg       *registry.Store
	s3        map[string]*s3admin.Bucket // direct, by name
	primary   *blobstore.Store
	secondary *blobstore.Store
	catalog   *datatype.Catalog
	engine    *replication.Engine
	restorer  *restore.Restorer
}

func newWorld(t *testing.T) *world {
	w := &world{t: t}
	srv := s3test.NewMinio(t)
	re := rt.NewEnv(t, rt.EnvOptions{PrimaryServer: srv.Endpoint(), SecondaryServer: srv.Endpoint()})
	require.NoError(t, re.SecondaryS3.EnableVersioning(t.Context()))
	w.pool, w.reg, w.catalog, w.engine = re.Pool, re.Registry, re.Catalog, re.Engine
	w.primary, w.secondary = re.Primary, re.Secondary
	w.s3 = map[string]*s3admin.Bucket{primaryBucket: re.PrimaryS3, secondaryBucket: re.SecondaryS3}
	w.restorer = &restore.Restorer{Registry: w.reg, Primary: w.primary, Secondary: w.secondary, Catalog: w.catalog}
	return w
}

func (w *world) backfill() backfill.Report {
	w.t.Helper()
	cfg := backfill.DefaultConfig()
	cfg.RelistInterval = time.Nanosecond // every pass lists the primary
	r, err := backfill.New(backfill.Options{
		Config: cfg, Pool: w.pool, Registry: w.reg, Engine: w.engine, Catalog: w.catalog,
		Primary: w.primary, PrimaryBucket: primaryBucket, Secondary: w.secondary, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(w.t, err)
	rep, err := r.Run(w.t.Context(), backfill.Request{})
	require.NoError(w.t, err)
	return rep
}

func (w *world) put(bucket, key string, body []byte) {
	w.t.Helper()
	s3test.Put(w.t, w.s3[bucket], key, body)
}

func (w *world) contents(bucket string) map[string][]byte {
	w.t.Helper()
	return s3test.Contents(w.t, w.s3[bucket])
}

// versionCount counts every version and delete marker on the secondary.
func (w *world) versionCount() int {
	n := 0
	require.NoError(w.t, w.secondary.ListVersions(w.t.Context(), "", func(page []blobstore.Version) error {
		n += len(page)
		return nil
	}))
	return n
}

// generations snapshots every row's generation and state.
func (w *world) generations() map[string]string {
	out := map[string]string{}
	var after int64
	for {
		rows, err := w.reg.List(w.t.Context(), registry.ListOptions{AfterID: after, IncludeTombstones: true})
		require.NoError(w.t, err)
		if len(rows) == 0 {
			return out
		}
		for _, r := range rows {
			out[r.ObjectKey] = fmt.Sprintf("%d/%s/%v", r.Generation, r.State, r.Tombstoned())
		}
		after = rows[len(rows)-1].ID
	}
}

func key(i int) string { return fmt.Sprintf("npm/pkg%d/-/pkg%d-1.0.%d.tgz", i, i, i) }

// tick separates phases on S3's LastModified clock.
func tick() { time.Sleep(1100 * time.Millisecond) }

func TestRestoreDeletedWindowAndAsOf(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	const n = 100
	for i := range n {
		w.put(primaryBucket, key(i), []byte(fmt.Sprintf("original bytes of %s %d", key(i), i*7919)))
	}
	w.backfill()
	original := w.contents(primaryBucket)
	require.Len(t, original, n)
	require.Equal(t, original, w.contents(secondaryBucket))

	// Wipe 30 % of the primary; backfill propagates the deletes (no brake).
	tick()
	t1 := time.Now()
	var wiped []string
	for i := 0; i < n; i += 10 {
		for _, j := range []int{i, i + 3, i + 7} {
			wiped = append(wiped, key(j))
			err := w.s3[primaryBucket].Store().Delete(ctx, key(j))
			require.NoError(t, err)
		}
	}
	rep := w.backfill()
	require.EqualValues(t, len(wiped), rep.Reconcile.DeletesQueued, "%+v", rep)
	t2 := time.Now()
	require.Len(t, w.contents(secondaryBucket), n-len(wiped), "the deletes reached the (versioned) secondary")

	// Dry run: the plan lists exactly the wiped objects and their bytes.
	plan, err := w.restorer.Plan(ctx, restore.Selector{DeletedFrom: t1, DeletedTo: t2})
	require.NoError(t, err)
	require.Equal(t, len(wiped), plan.Objects)
	var want int64
	for _, k := range wiped {
		want += int64(len(original[k]))
	}
	assert.Equal(t, want, plan.Bytes)
	assert.Len(t, w.contents(primaryBucket), n-len(wiped), "planning writes nothing")

	// Execute, interrupted after 10 objects, then resumed from the journal.
	var journal bytes.Buffer
	short := plan
	short.Items = plan.Items[:10]
	res, err := w.restorer.Execute(ctx, short, restore.ExecOptions{Journal: &journal, Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, 10, res.Restored)
	var progress int
	res, err = w.restorer.Execute(ctx, plan, restore.ExecOptions{Journal: bytes.NewBuffer(journal.Bytes()), Actor: "test",
		Progress: func(restore.Progress) { progress++ }})
	require.NoError(t, err)
	assert.Equal(t, len(wiped)-10, res.Restored)
	assert.Equal(t, 10, res.Skipped, "resumed after the journal")
	assert.Equal(t, len(wiped)-10, progress)
	assert.Equal(t, original, w.contents(primaryBucket), "byte-for-byte as before the wipe")

	// Ransomware: overwrite 10 objects with garbage; it replicates.
	tick()
	asOf := time.Now()
	tick()
	var overwritten []string
	for i := 5; i < n; i += 10 {
		overwritten = append(overwritten, key(i))
		w.put(primaryBucket, key(i), []byte("encrypted garbage "+key(i)))
	}
	w.backfill()
	for _, k := range overwritten {
		require.Equal(t, "encrypted garbage "+k, string(w.contents(secondaryBucket)[k]))
	}
	plan, err = w.restorer.Plan(ctx, restore.Selector{AsOf: asOf})
	require.NoError(t, err)
	require.Equal(t, len(overwritten), plan.Objects, "only the objects changed after T: %+v", plan.Skipped)
	for _, it := range plan.Items {
		assert.False(t, it.Current, "%s: the version current at T is an older one", it.Key)
	}
	_, err = w.restorer.Execute(ctx, plan, restore.ExecOptions{Actor: "test"})
	require.NoError(t, err)
	assert.Equal(t, original, w.contents(primaryBucket), "the old bytes are back on the primary")
	assert.Equal(t, original, w.contents(secondaryBucket), "and current on the secondary")

	// The restored PUTs' own events find their rows in the right state.
	versions := w.versionCount()
	for i, k := range append(append([]string{}, wiped...), overwritten...) {
		head, err := w.primary.Head(ctx, k)
		require.NoError(t, err)
		out, err := w.engine.Apply(ctx, events.ObjectEvent{Kind: events.KindCreated, EventName: "ObjectCreated:Put",
			Source: events.SourceS3, Bucket: primaryBucket, Key: k, Size: head.Size, ETag: head.ETag,
			Sequencer: fmt.Sprintf("%020X", time.Now().UnixNano()+int64(i)), EventTime: time.Now()})
		require.NoError(t, err)
		assert.Equal(t, replication.OutcomeStale, out, "%s: the restore's event must not copy again", k)
	}

	// Stable: two backfill passes copy and delete nothing.
	gens := w.generations()
	for range 2 {
		rep := w.backfill()
		assert.Zero(t, rep.Sync.Claimed+rep.Reconcile.Registered+rep.Reconcile.Changed+rep.Reconcile.DeletesQueued, "%+v", rep)
	}
	assert.Equal(t, versions, w.versionCount(), "no new secondary versions: nothing copied back and forth")
	assert.Equal(t, gens, w.generations(), "registry unchanged")
	assert.Equal(t, original, w.contents(primaryBucket))
	assert.Equal(t, original, w.contents(secondaryBucket))
	for _, k := range overwritten {
		row, err := w.reg.Get(ctx, "npm_package_file", k)
		require.NoError(t, err)
		assert.Equal(t, registry.StateSynced, row.State)
		assert.False(t, row.Tombstoned())
	}
	audit, err := w.reg.Audit(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, "restore", audit[0].Action)
}

// An overwrite on the versioned secondary leaves the old bytes recoverable
// by version id.
func TestSecondaryOverwriteKeepsOldVersion(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.put(secondaryBucket, key(1), []byte("old bytes"))
	w.put(secondaryBucket, key(1), []byte("ransom"))
	var old []blobstore.Version
	require.NoError(t, w.secondary.ListVersions(ctx, key(1), func(page []blobstore.Version) error {
		for _, v := range page {
			if !v.IsLatest {
				old = append(old, v)
			}
		}
		return nil
	}))
	require.Len(t, old, 1)
	body, _, err := w.secondary.OpenVersion(ctx, key(1), old[0].VersionID)
	require.NoError(t, err)
	defer body.Close()
	b, err := io.ReadAll(body)
	require.NoError(t, err)
	assert.Equal(t, "old bytes", string(b))
}

// Failback: objects written to the secondary during an outage (the registry
// ran on it) are copied to the primary and not copied back.
func TestFailbackWrittenAfter(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.put(primaryBucket, key(1), []byte("before the outage"))
	w.backfill()
	tick()
	outage := time.Now()
	tick()
	w.put(secondaryBucket, key(2), []byte("written during the outage"))
	w.put(secondaryBucket, key(3), []byte("also during the outage"))
	plan, err := w.restorer.Plan(ctx, restore.Selector{WrittenAfter: outage})
	require.NoError(t, err)
	require.Equal(t, 2, plan.Objects)
	_, err = w.restorer.Execute(ctx, plan, restore.ExecOptions{Actor: "test"})
	require.NoError(t, err)
	versions := w.versionCount()
	rep := w.backfill()
	assert.Zero(t, rep.Sync.Claimed+rep.Reconcile.Registered+rep.Reconcile.Changed, "%+v", rep)
	assert.Equal(t, versions, w.versionCount())
	assert.Equal(t, w.contents(secondaryBucket), w.contents(primaryBucket))
}
