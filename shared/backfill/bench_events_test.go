package backfill_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/replication/replicationtest"
)

// BenchmarkEventLatencyDuringBackfill: how long a live upload waits for
// its copy while a dispatched backfill keeps the copy slots busy (issue
// #12: events still synced within seconds meanwhile). BENCH_EVENTS_N
// objects (default 5,000) are backfilled through 4 onCreate instances of
// 4 copies each (window 16) while a new object arrives as an S3 event
// every 20 ms; an event's latency runs from its send to its
// acknowledgement (object copied, row synced). Two layouts:
//   - shared: events and requests on one queue and one pool of instances,
//     the strict case (an event waits behind at most a window of
//     requests);
//   - split: AWS's layout (infra/stacks SyncRequestInstances): 3
//     instances for requests, 1 with a queue of its own for events.
//
// Every object, backfilled or live, must converge, or the benchmark fails.
func BenchmarkEventLatencyDuringBackfill(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("BENCH_EVENTS_N")); err == nil && v > 0 {
		n = v
	}
	const (
		instances = 4
		perWorker = 4
		every     = 20 * time.Millisecond
	)
	for _, layout := range []string{"shared", "split"} {
		b.Run(layout, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				e := newEnv(b, envOptions{})
				e.putTyped(n, func(i int) int { return 64 + i%200 })
				ctx, cancel := context.WithTimeout(b.Context(), 30*time.Minute)
				defer cancel()
				f := newFleet(b, 10)
				requestInstances := instances
				if layout == "split" {
					f.splitEvents()
					f.addEventWorker(e, perWorker)
					requestInstances--
				}
				for range requestInstances {
					f.addWorker(e, perWorker, e.secondary, 0)
				}
				f.start(ctx)
				e.cfg.Window = instances * perWorker
				e.cfg.BatchSize = 500
				e.cfg.DispatchLease = 0
				e.opts.Dispatcher = f
				b.StartTimer()

				start := time.Now()
				stop, live := make(chan struct{}), make(chan int)
				go func() {
					i := 0
					defer func() { live <- i }()
					for {
						select {
						case <-stop:
							return
						case <-time.After(every):
						}
						k := fmt.Sprintf("npm/live%d/-/live%d-1.0.0.tgz", i, i)
						body := replicationtest.Content(k, 100)
						e.put(k, body)
						f.sendEvent(k, int64(len(body)))
						i++
					}
				}()
				dispatchUntilConverged(b, ctx, e, f, 20)
				backfill := time.Since(start)
				close(stop)
				events := <-live
				f.idle(ctx)
				b.StopTimer()
				dispatchUntilConverged(b, ctx, e, f, 5)
				close(f.stopSampling)
				e.requireConverged()
				require.EqualValues(b, events, f.eventsDone.Load())
				require.NotZero(b, events)

				f.latMu.Lock()
				lat := slices.Clone(f.eventLatency)
				f.latMu.Unlock()
				slices.Sort(lat)
				pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
				b.ReportMetric(float64(n)/backfill.Seconds(), "backfill-objects/s")
				b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "event-p50-ms")
				b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "event-p99-ms")
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "event-max-ms")
				b.Logf("%s: %d objects backfilled in %s (%.0f/s); %d live events: p50 %s, p99 %s, max %s",
					layout, n, backfill.Round(time.Millisecond), float64(n)/backfill.Seconds(), events,
					pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
				b.StartTimer()
			}
		})
	}
}
