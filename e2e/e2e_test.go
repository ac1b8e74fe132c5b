package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/pgcluster"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/registry"
)

// op is one change to the primary.
type op struct {
	key  string
	body []byte // nil: delete
}

// apply runs ops against the primary with a few workers (keys must be
// distinct within one call so the final state is well defined) and records
// them in m.
func apply(t testing.TB, m *model, ops []op) {
	t.Helper()
	ctx := t.Context()
	primary := fx.settings.Bucket(devstack.Primary)
	var g errgroup.Group
	g.SetLimit(8)
	for _, o := range ops {
		g.Go(func() error {
			if o.body == nil {
				return primary.Delete(ctx, o.key)
			}
			return primary.Put(ctx, o.key, o.body, samples.ContentType(o.key))
		})
	}
	require.NoError(t, g.Wait())
	for _, o := range ops {
		if o.body == nil {
			m.del(o.key)
		} else {
			m.put(o.key, o.body)
		}
	}
}

func content(t testing.TB, key string, size int) []byte {
	t.Helper()
	b, err := samples.Content(key, size)
	require.NoError(t, err)
	return b
}

// TestReplicationEndToEnd uploads package files of every data type and of
// mixed sizes (one above the multipart threshold) to the primary, overwrites
// and deletes some, and checks that MinIO's notifications alone make the
// secondary a byte-for-byte copy with a registry that agrees. It then
// re-delivers every captured webhook body twice, shuffled, through the same
// handler path and checks that duplicates and reordering change nothing.
func TestReplicationEndToEnd(t *testing.T) {
	ctx := t.Context()
	first := fx.rec.len()
	files, err := samples.ForCatalog(fx.catalog, samples.Set{ExtraPerType: 7, BigSize: 20 << 20, Odd: true})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 60)
	sizes := []int{0, 1 << 10, 5 << 10, 64 << 10, 200 << 10, 1 << 20, 3 << 20}
	for i := range files {
		if files[i].Size == 0 {
			files[i].Size = sizes[i%len(sizes)]
		}
	}
	big := false
	for _, f := range files {
		big = big || f.Size > 16<<20
	}
	require.True(t, big, "one file above GEOBLOB_MULTIPART_THRESHOLD's default (16 MiB)")

	m := newModel()
	var ops []op
	for _, f := range files {
		ops = append(ops, op{key: f.Key, body: content(t, f.Key, f.Size)})
	}
	apply(t, m, ops)

	// Overwrite every 6th file with different content, delete every 9th
	// (some of them overwritten first), delete a key that never existed.
	ops = ops[:0]
	for i, f := range files {
		if i%6 == 1 {
			ops = append(ops, op{key: f.Key, body: content(t, f.Key, f.Size+4321)})
		}
	}
	apply(t, m, ops)
	ops = ops[:0]
	for i, f := range files {
		if i%9 == 1 && f.Size < 16<<20 {
			ops = append(ops, op{key: f.Key})
		}
	}
	require.NoError(t, fx.settings.Bucket(devstack.Primary).Delete(ctx, "generic/never/1.0.0/never-existed.bin"))
	apply(t, m, ops)
	t.Logf("%d live keys, %d deleted", len(m.live), len(m.deleted))

	waitConverged(t, m, 3*time.Minute)
	assertBuckets(t, m)

	// Replay: every body MinIO posted, twice, in random order, through the
	// receiver's Invoke (lambda.NewHandler's JSON path), four at a time.
	captured := fx.rec.since(first)
	require.GreaterOrEqual(t, len(captured), len(files), "one delivery per change at least")
	var bodies [][]byte
	for _, d := range captured {
		bodies = append(bodies, d.Body, d.Body)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	rec := fx.runner.Receiver()
	require.NotNil(t, rec)
	var g errgroup.Group
	g.SetLimit(4)
	for _, b := range bodies {
		g.Go(func() error {
			_, err := rec.Invoke(ctx, b)
			return err
		})
	}
	require.NoError(t, g.Wait(), "replayed deliveries must succeed")

	waitConverged(t, m, time.Minute)
	assertBuckets(t, m)
	for key := range m.deleted {
		row, err := fx.row(ctx, key)
		require.NoError(t, err)
		assert.True(t, row.Tombstoned(), "late create resurrected %q", key)
	}
}

// faultKeys derives n keys of mixed data types for tag from the catalog's
// examples ("maven/<tag>-3/com/example/...").
func faultKeys(t testing.TB, tag string, n int) []string {
	t.Helper()
	var examples []string
	for _, typ := range fx.catalog.Types() {
		examples = append(examples, typ.Examples...)
	}
	var keys []string
	for i := 0; len(keys) < n && i < 10*n; i++ {
		ex := examples[i%len(examples)]
		top, rest, _ := strings.Cut(ex, "/")
		key := fmt.Sprintf("%s/%s-%d/%s", top, tag, i, rest)
		want, _ := fx.catalog.Match(ex)
		if got, ok := fx.catalog.Match(key); ok && got.Name == want.Name {
			keys = append(keys, key)
		}
	}
	require.Len(t, keys, n)
	return keys
}

func putOps(t testing.TB, keys []string, size int) []op {
	ops := make([]op, len(keys))
	for i, k := range keys {
		ops[i] = op{key: k, body: content(t, k, size+i)}
	}
	return ops
}

// TestPostgresRestartLosesNothing stops the registry's PostgreSQL while
// objects are uploaded, overwritten and deleted, starts it again, restarts
// it once more between events, and checks that every change still reaches
// the secondary: the handler reports the messages as batch item failures
// while the database is down, and the spool keeps them and delivers them
// again after the visibility timeout.
func TestPostgresRestartLosesNothing(t *testing.T) {
	ctx := t.Context()
	pg := fx.stack.Postgres()
	m := newModel()
	before := faultKeys(t, "before", 10)
	apply(t, m, putOps(t, before, 2000))
	waitConverged(t, m, time.Minute)

	first := fx.rec.len()
	require.NoError(t, pg.Stop(ctx))
	down := faultKeys(t, "down", 10)
	ops := putOps(t, down, 3000)
	ops = append(ops, op{key: before[0]}, op{key: before[1]}, op{key: before[2], body: content(t, before[2], 777)})
	apply(t, m, ops)
	// Let MinIO deliver (and fail) for a while: at least two retry rounds.
	require.Eventually(t, func() bool {
		n := 0
		for _, d := range fx.rec.since(first) {
			if d.Err != nil {
				n++
			}
		}
		return n >= 2
	}, 30*time.Second, 100*time.Millisecond, "deliveries must fail while PostgreSQL is down")

	_, err := pgcluster.Start(ctx, pgcluster.Options{Dir: pg.Dir(), Port: pg.Port(), FsyncOff: true})
	require.NoError(t, err)
	waitConverged(t, m, 2*time.Minute)

	// A restart between events: wait for the first group to be handled.
	// (A restart during a sync is covered deterministically by
	// shared/replication's TestDatabaseRestartDuringCopyStillRecordsResult;
	// a claim whose commit reply is lost stays `started` until backfill's
	// recover phase, after GEOBLOB_SYNC_TIMEOUT, which is too slow for here.)
	apply(t, m, putOps(t, faultKeys(t, "restart-a", 5), 1500))
	waitConverged(t, m, time.Minute)
	require.NoError(t, pg.Restart(ctx))
	apply(t, m, append(putOps(t, faultKeys(t, "restart-b", 5), 1500), op{key: down[0]}))
	waitConverged(t, m, 2*time.Minute)
	assertBuckets(t, m)

	failed := 0
	for _, d := range fx.rec.since(first) {
		if d.Err != nil {
			failed++
		}
	}
	t.Logf("deliveries since PostgreSQL stopped: %d, failed and retried from the spool: %d", len(fx.rec.since(first)), failed)
	row, err := fx.row(ctx, before[0])
	require.NoError(t, err)
	assert.True(t, row.Tombstoned())
	assert.Equal(t, registry.StateSynced, row.State)
}

// TestDeliveryFailureIsRetried is the contract the stack relies on, checked
// on the real handler: a body whose handling fails is reported as failed
// (so the spool keeps it), and the same body succeeds once the cause is
// gone.
func TestDeliveryFailureIsRetried(t *testing.T) {
	ctx := t.Context()
	m := newModel()
	keys := faultKeys(t, "retry", 1)
	first := fx.rec.len()
	apply(t, m, putOps(t, keys, 100))
	waitConverged(t, m, time.Minute)
	var body []byte
	for _, d := range fx.rec.since(first) {
		if strings.Contains(string(d.Body), "ObjectCreated") {
			body = d.Body
		}
	}
	require.NotNil(t, body)
	pg := fx.stack.Postgres()
	require.NoError(t, pg.Stop(ctx))
	t.Cleanup(func() {
		_, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: pg.Dir(), Port: pg.Port(), FsyncOff: true})
		require.NoError(t, err)
	})
	_, err := fx.runner.Receiver().Invoke(ctx, body)
	require.ErrorIs(t, err, sqsspool.ErrHandler)
	_, err = pgcluster.Start(ctx, pgcluster.Options{Dir: pg.Dir(), Port: pg.Port(), FsyncOff: true})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := fx.runner.Receiver().Invoke(ctx, body)
		return err == nil
	}, 30*time.Second, 200*time.Millisecond)
}
