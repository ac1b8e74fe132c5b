package backfill_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// putN uploads n objects, the i-th of size(i) bytes (keys of every data
// type), with 16 uploads at once and returns the total bytes.
func putN(b *testing.B, bucket *s3admin.Bucket, n int, size func(i int) int) int64 {
	var (
		g     errgroup.Group
		total atomic.Int64
	)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			body := samples.Bytes(typedKey(i), size(i))
			if _, err := bucket.Put(context.Background(), typedKey(i), body, ""); err != nil {
				return fmt.Errorf("upload %s: %w", typedKey(i), err)
			}
			total.Add(int64(len(body)))
			return nil
		})
	}
	require.NoError(b, g.Wait())
	return total.Load()
}

// rawCopy copies the n objects with plain GetObject + PutObject at
// concurrency c: the servers' ceiling for the same job.
func rawCopy(b *testing.B, src *s3admin.Bucket, dstEndpoint, dstBucket string, n, c int) time.Duration {
	dst := s3test.Bucket(b, dstEndpoint, dstBucket)
	var wg sync.WaitGroup
	work := make(chan int)
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r, _, err := src.Store().Open(context.Background(), typedKey(i))
				if err != nil {
					b.Error(err)
					continue
				}
				body, err := io.ReadAll(r)
				_ = r.Close()
				if err == nil {
					_, err = dst.Put(context.Background(), typedKey(i), body, "")
				}
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}

// BenchmarkLocalScaling: initial replication of BENCH_SCALING_N (default
// 20,000) small objects (BENCH_SCALING_SIZE bytes, default 8 KiB) between
// two MinIO processes through the dispatch path (reconcile registers,
// backfill dispatches sync requests, 1, 2 or 4 concurrent worker
// invocations of 8 copies each run the onCreate handler on SQS-shaped
// batches of 10), against plain GET+PUT of the same objects at 32
// (= 4 x 8) in the same run. Also reports this process's CPU per object
// and per MiB (the PostgreSQL and MinIO servers are other processes).
func BenchmarkLocalScaling(b *testing.B) {
	n, size := 20_000, 8<<10
	if v, err := strconv.Atoi(os.Getenv("BENCH_SCALING_N")); err == nil {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_SCALING_SIZE")); err == nil {
		size = v
	}
	const perWorker = 8
	src, dst := s3test.NewMinio(b), s3test.NewMinio(b)
	srcS3 := s3test.Bucket(b, src.Endpoint(), primaryBucket)
	total := putN(b, srcS3, n, func(int) int { return size })
	mib := float64(total) / (1 << 20)
	quiet := slog.New(slog.DiscardHandler)
	cat, err := datatype.BuiltinCatalog()
	require.NoError(b, err)

	for b.Loop() {
		raw := rawCopy(b, srcS3, dst.Endpoint(), fmt.Sprintf("raw-%d", time.Now().UnixNano()), n, 4*perWorker)
		b.ReportMetric(float64(n)/raw.Seconds(), "raw-32-objects/s")
		b.Logf("%d objects, %.1f MiB: raw GET+PUT at 32: %s (%.0f objects/s)", n, mib, raw.Round(time.Millisecond), float64(n)/raw.Seconds())
		for _, workers := range []int{1, 2, 4} {
			bucket := fmt.Sprintf("w%d-%d", workers, time.Now().UnixNano())
			pool := registrytest.NewPool(b)
			e := &env{t: b, pool: pool, reg: registry.New(pool, registry.Options{}), catalog: cat,
				primary: srcS3.Store(), secondary: s3test.Bucket(b, dst.Endpoint(), bucket).Store()}
			ctx, cancel := context.WithCancel(b.Context())
			f := newFleet(b, 10)
			for range workers {
				f.addWorker(e, perWorker, e.secondary, 0)
			}
			f.start(ctx)
			r, err := backfill.New(backfill.Options{
				Config: backfill.Config{Budget: time.Hour, ClaimSize: 100, Window: workers * perWorker, BatchSize: 2000},
				Pool:   pool, Registry: e.reg, Engine: nopEngine{}, Catalog: cat, Primary: e.primary,
				Dispatcher: f, PollInterval: 2 * time.Millisecond, Logger: quiet,
			})
			require.NoError(b, err)
			cpu0, start := cpuTime(), time.Now()
			rep, err := r.Run(ctx, backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile, backfill.PhaseSync}})
			require.NoError(b, err)
			f.idle(ctx)
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			cancel()
			close(f.stopSampling)
			require.EqualValues(b, n, rep.Reconcile.Registered)
			require.EqualValues(b, n, f.syncsDone.Load())
			rate := float64(n) / elapsed.Seconds()
			b.ReportMetric(rate, fmt.Sprintf("w%d-objects/s", workers))
			b.ReportMetric(rate/(float64(n)/raw.Seconds()), fmt.Sprintf("w%d-vs-raw", workers))
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), fmt.Sprintf("w%d-cpu-us/object", workers))
			b.Logf("%d workers x %d copies: %s (%.0f objects/s, %.2f of raw), process CPU %s (%.0f µs/object, %.1f ms/MiB), peak copies in flight %d",
				workers, perWorker, elapsed.Round(time.Millisecond), rate, rate/(float64(n)/raw.Seconds()), cpu.Round(time.Millisecond),
				float64(cpu.Microseconds())/float64(n), float64(cpu.Milliseconds())/mib, f.maxInFlight.Load())
		}
	}
}
