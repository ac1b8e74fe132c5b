package backfill_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/backfill/backfilltest"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/verify"
)

// BenchmarkInitialReplication: the initial replication of an existing
// bucket, end to end on local servers, with the time of each phase (issue
// #12). BENCH_INITIAL_N objects (default 100,000) of BENCH_INITIAL_SIZE
// bytes (default 8 KiB) are uploaded to a MinIO process (setup, timed
// apart) with an S3 Inventory of them (CSV.gz files and manifest.json in a
// bucket of that server); then
//   - register: backfill's reconcile reads the inventory into the registry;
//   - copy: backfill's sync phase dispatches one request per row (lease
//     dispatch) to BENCH_INITIAL_WORKERS (default 4) worker invocations of
//     8 copies each, which run the onCreate handler on SQS-shaped batches
//     of 10 and copy to a second MinIO process;
//   - verify: one deep verification pass re-reads every object on both
//     sides and compares its SHA-256 with the registry's.
//
// Every phase must account for every object, or the benchmark fails.
func BenchmarkInitialReplication(b *testing.B) {
	n, size, workers := 100_000, 8<<10, 4
	for name, p := range map[string]*int{"BENCH_INITIAL_N": &n, "BENCH_INITIAL_SIZE": &size, "BENCH_INITIAL_WORKERS": &workers} {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			*p = v
		}
	}
	const perWorker = 8
	ctx := b.Context()
	quiet := slog.New(slog.DiscardHandler)
	cat, err := datatype.BuiltinCatalog()
	require.NoError(b, err)
	src, dst := s3test.NewMinio(b), s3test.NewMinio(b)
	srcS3 := s3test.Bucket(b, src.Endpoint(), primaryBucket)
	invS3 := s3test.Bucket(b, src.Endpoint(), "inventory")

	// setup: the registry's existing bucket and its inventory
	start := time.Now()
	etags := make([]string, n)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			up, err := srcS3.Put(ctx, typedKey(i), samples.Bytes(typedKey(i), size), "")
			etags[i] = strings.Trim(up.ETag, `"`)
			return err
		})
	}
	require.NoError(b, g.Wait())
	upload := time.Since(start)
	manifest, err := backfilltest.WriteInventory(primaryBucket, "inv", time.Now().Add(time.Minute), 100_000,
		func(yield func(backfill.InventoryEntry) bool) {
			for i := range n {
				if !yield(backfill.InventoryEntry{Key: typedKey(i), Size: int64(size), ETag: etags[i]}) {
					return
				}
			}
		},
		func(key string, content []byte) error {
			_, err := invS3.Put(ctx, key, content, "")
			return err
		})
	require.NoError(b, err)
	b.Logf("setup: %d objects of %d bytes uploaded in %s (%.0f/s), inventory %s", n, size,
		upload.Round(time.Millisecond), float64(n)/upload.Seconds(), manifest)

	for b.Loop() {
		pool := registrytest.NewPool(b)
		e := &env{t: b, pool: pool, reg: registry.New(pool, registry.Options{}), catalog: cat,
			primary: srcS3.Store(), secondary: s3test.Bucket(b, dst.Endpoint(), fmt.Sprintf("s-%d", time.Now().UnixNano())).Store()}
		wctx, stopWorkers := context.WithCancel(ctx)
		f := newFleet(b, 10)
		for range workers {
			f.addWorker(e, perWorker, e.secondary, 0)
		}
		f.start(wctx)
		r, err := backfill.New(backfill.Options{
			Config: backfill.Config{Budget: time.Hour, ClaimSize: 100, Window: workers * perWorker, BatchSize: 10_000,
				Inventory: &backfill.S3URL{Bucket: "inventory", Key: manifest}},
			Pool: pool, Registry: e.reg, Engine: nopEngine{}, Catalog: cat, Primary: e.primary, PrimaryBucket: primaryBucket,
			Inventory: invS3.Store(), Dispatcher: f, PollInterval: 2 * time.Millisecond, Logger: quiet,
		})
		require.NoError(b, err)

		t0 := time.Now()
		rep, err := r.Run(ctx, backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
		register := time.Since(t0)
		require.NoError(b, err)
		require.EqualValues(b, n, rep.Reconcile.Registered)

		t1 := time.Now()
		_, err = r.Run(ctx, backfill.Request{Phases: []backfill.Phase{backfill.PhaseSync}})
		require.NoError(b, err)
		f.idle(ctx)
		copied := time.Since(t1)
		stopWorkers()
		close(f.stopSampling)
		require.EqualValues(b, n, f.syncsDone.Load())

		v, err := verify.New(e.reg, e.primary, e.secondary, verify.Options{Concurrency: 32, Budget: time.Hour, Logger: quiet})
		require.NoError(b, err)
		t2 := time.Now()
		vrep, err := v.Run(ctx, verify.RunOptions{})
		verified := time.Since(t2)
		require.NoError(b, err)
		require.EqualValues(b, n, vrep.Secondary.Matched, "%+v", vrep)

		total := register + copied + verified
		for _, m := range []struct {
			name string
			d    time.Duration
		}{{"register", register}, {"copy", copied}, {"verify", verified}, {"total", total}} {
			b.ReportMetric(m.d.Seconds(), m.name+"-s")
			b.ReportMetric(float64(n)/m.d.Seconds(), m.name+"-objects/s")
		}
		b.Logf("%d objects, %d workers x %d copies: register %s (%.0f/s), dispatch+copy %s (%.0f/s, peak copies in flight %d), "+
			"verify %s (%.0f/s; primary matched %d, secondary matched %d), total %s",
			n, workers, perWorker, register.Round(time.Millisecond), float64(n)/register.Seconds(),
			copied.Round(time.Millisecond), float64(n)/copied.Seconds(), f.maxInFlight.Load(),
			verified.Round(time.Millisecond), float64(n)/verified.Seconds(), vrep.Primary.Matched, vrep.Secondary.Matched,
			total.Round(time.Millisecond))
	}
}
