package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/shared/registry"
)

// benchUploads is the number of uploads one measurement makes, whatever b.N.
const benchUploads = 1000

// benchRate paces the uploads (per second) so the benchmark measures the
// latency of the pipeline, not the length of a backlog.
const benchRate = 20

// BenchmarkEndToEndLatency measures PUT on the primary -> registry row
// synced (the secondary copy written and checksummed), over 1,000 uploads
// of mixed data types and sizes (1-64 KiB) paced at 20/s, through real
// MinIO notifications (webhook without MinIO's queue, synchronous events),
// the receiver's spool, SQS-event batches and the handler. Latency runs
// from just before the PUT is sent to the row's last_synced_at. It reports p50/p99/max in ms, plus the handler's own
// time per invocation a message took part in (handler-p50/p99-ms). One measurement per call: b.N is
// ignored, and a run takes ~55 s, so the framework calls it once.
func BenchmarkEndToEndLatency(b *testing.B) {
	ctx := b.Context()
	tag := fmt.Sprintf("bench%d", time.Now().UnixNano())
	keys := faultKeys(b, tag, benchUploads)
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		bodies[i] = content(b, k, 1<<10+(i*7919)%(63<<10))
	}
	primary := fx.settings.Bucket(devstack.Primary)
	firstDelivery := fx.rec.len()

	b.ResetTimer()
	start := time.Now()
	sent := make([]time.Time, len(keys))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	tick := time.NewTicker(time.Second / benchRate)
	idx := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				sent[i] = time.Now()
				if err := primary.Put(ctx, keys[i], bodies[i], samples.ContentType(keys[i])); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range keys {
		<-tick.C
		idx <- i
	}
	close(idx)
	wg.Wait()
	tick.Stop()
	require.Empty(b, errs)

	// Wait for every row to be synced, reading the registry in pages.
	synced := map[string]time.Time{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(synced) < len(keys) {
		require.False(b, time.Now().After(deadline), "only %d of %d synced after 3 minutes", len(synced), len(keys))
		var after int64
		for {
			rows, err := fx.reg.List(ctx, registry.ListOptions{AfterID: after, Limit: 1000})
			if err != nil {
				break // e.g. a connection lost; poll again
			}
			for _, r := range rows {
				if strings.Contains(r.ObjectKey, "/"+tag+"-") && r.State == registry.StateSynced && r.LastSyncedAt != nil {
					synced[r.ObjectKey] = *r.LastSyncedAt
				}
			}
			if len(rows) < 1000 {
				break
			}
			after = rows[len(rows)-1].ID
		}
		time.Sleep(200 * time.Millisecond)
	}
	total := time.Since(start)
	b.StopTimer()

	lat := make([]float64, len(keys))
	for i, k := range keys {
		lat[i] = float64(synced[k].Sub(sent[i])) / float64(time.Millisecond)
	}
	var handler []float64
	for _, d := range fx.rec.since(firstDelivery) {
		if d.Err == nil && strings.Contains(string(d.Body), tag) {
			handler = append(handler, float64(d.At.Sub(d.Received))/float64(time.Millisecond))
		}
	}
	b.ReportMetric(percentile(lat, 50), "p50-ms")
	b.ReportMetric(percentile(lat, 99), "p99-ms")
	b.ReportMetric(percentile(lat, 100), "max-ms")
	b.ReportMetric(percentile(handler, 50), "handler-p50-ms")
	b.ReportMetric(percentile(handler, 99), "handler-p99-ms")
	b.ReportMetric(float64(len(keys))/total.Seconds(), "synced/s")
	b.ReportMetric(0, "ns/op")
}

// percentile returns the p-th percentile (nearest rank) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(rank, 0), len(s)-1)]
}
