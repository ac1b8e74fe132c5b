package backfill_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/backfill/backfilltest"
)

// BenchmarkInventoryRegister1M registers 1,000,000 primary objects from an
// S3 Inventory manifest (CSV, gzipped, 100,000 rows a file) written in the
// benchmark's temporary directory. It reports objects/s and the peak Go
// heap, which must not grow with the object count (batches of
// GEOBLOB_BACKFILL_BATCH_SIZE rows are streamed).
func BenchmarkInventoryRegister1M(b *testing.B) {
	n := benchN()
	dir := b.TempDir()
	key, err := backfilltest.WriteInventory(primaryBucket, "inv", time.Now().Add(time.Minute), 100_000,
		func(yield func(backfill.InventoryEntry) bool) {
			for i := range n {
				if !yield(backfill.InventoryEntry{Key: typedKey(i), Size: int64(4096 + i%60000), ETag: "0123456789abcdef0123456789abcdef"}) {
					return
				}
			}
		},
		func(key string, content []byte) error {
			p := filepath.Join(dir, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p, content, 0o644)
		})
	require.NoError(b, err)

	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, envOptions{})
		e.cfg.Inventory = &backfill.S3URL{Bucket: "local", Key: key}
		e.opts.Inventory = backfilltest.DirStore{Root: dir}
		e.cfg.Budget = time.Hour
		if os.Getenv("BENCH_DEBUG") != "" {
			e.opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		r := e.runner()
		peak := sampleHeap()
		b.StartTimer()
		start := time.Now()
		rep, err := r.Run(b.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
		elapsed := time.Since(start)
		b.StopTimer()
		heap := peak()
		require.NoError(b, err)
		require.EqualValues(b, n, rep.Reconcile.Registered)
		require.True(b, rep.Reconcile.PassComplete)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "objects/s")
		b.ReportMetric(elapsed.Seconds(), "s/1M")
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		b.StartTimer()
	}
}

// sampleHeap samples HeapInuse every 20 ms until the returned func is
// called, which returns the peak.
func sampleHeap() func() uint64 {
	var (
		peak atomic.Uint64
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak.Load()
	}
}

func benchN() int {
	if os.Getenv("BENCH_N") == "100k" {
		return 100_000
	}
	return 1_000_000
}
