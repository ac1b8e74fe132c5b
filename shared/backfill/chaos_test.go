package backfill_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
)

// Convergence under chaos: a seeded workload of creates, overwrites and
// deletes whose events are dropped, duplicated and reordered, fed through
// the real engine while both S3 endpoints fail a share of requests; then
// backfill runs until quiet and the secondary must equal the primary.
func TestConvergenceUnderChaos(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 7, 42, 2026} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runChaos(t, seed)
		})
	}
}

func runChaos(t *testing.T, seed uint64) {
	fast := registry.GeoBackoff{Base: time.Millisecond, Cap: time.Millisecond, MissingCap: time.Millisecond}
	e := newEnv(t, envOptions{regOpts: registry.Options{Retry: fast}, sdkAttempts: 1, concurrency: 4})
	e.cfg.MaxAttempts = 1000
	e.cfg.ClaimSize = 16
	e.opts.ListPageSize = 25

	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var faultMu sync.Mutex
	faultRng := rand.New(rand.NewPCG(seed+1, seed))
	faulty := func(r *http.Request) s3test.Fault {
		faultMu.Lock()
		defer faultMu.Unlock()
		if faultRng.Float64() < 0.12 {
			return s3test.Fault{Status: http.StatusServiceUnavailable}
		}
		return s3test.Fault{}
	}
	e.setRules(faulty, faulty)

	const keys, ops = 50, 220
	var (
		seq     uint64
		pending []events.ObjectEvent
		stats   struct{ dropped, duplicated, delivered int }
	)
	deliver := func() {
		rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		for _, ev := range pending {
			_, _ = e.engine.Apply(t.Context(), ev) // failures are left to backfill
			stats.delivered++
		}
		pending = pending[:0]
	}
	notify := func(ev events.ObjectEvent) {
		switch x := rng.Float64(); {
		case x < 0.25:
			stats.dropped++
			return
		case x < 0.40:
			stats.duplicated++
			pending = append(pending, ev)
		}
		pending = append(pending, ev)
	}
	exists := map[string]bool{}
	for i := range ops {
		k := typedKey(rng.IntN(keys))
		seq++
		sequencer := fmt.Sprintf("%016X", seq)
		if exists[k] && rng.Float64() < 0.3 {
			e.del(e.primaryS3, k)
			delete(exists, k)
			notify(events.ObjectEvent{Kind: events.KindRemoved, EventName: "ObjectRemoved:Delete", Bucket: primaryBucket,
				Key: k, Sequencer: sequencer, EventTime: time.Now()})
		} else {
			body := samples.Bytes(fmt.Sprintf("%d/%d", seed, i), 1+rng.IntN(6000))
			etag := s3test.Put(t, e.primaryS3, k, body)
			exists[k] = true
			notify(events.ObjectEvent{Kind: events.KindCreated, EventName: "ObjectCreated:Put", Bucket: primaryBucket,
				Key: k, Size: int64(len(body)), ETag: etag, Sequencer: sequencer, EventTime: time.Now()})
		}
		if rng.Float64() < 0.1 {
			deliver()
		}
	}
	deliver()
	t.Logf("seed %d: %d events delivered, %d dropped, %d duplicated", seed, stats.delivered, stats.dropped, stats.duplicated)
	require.Positive(t, stats.dropped)

	// A few passes while the faults go on; their errors are expected.
	for range 3 {
		_, _ = e.runner().Run(t.Context(), backfill.Request{})
	}
	e.setRules(nil, nil)
	r := e.runner()
	var quiet bool
	for pass := 0; pass < 40 && !quiet; pass++ {
		rep, err := r.Run(t.Context(), backfill.Request{})
		require.NoError(t, err)
		quiet = backfill.Quiet(rep)
		if !quiet {
			time.Sleep(5 * time.Millisecond) // failed rows become due (1 ms backoff)
		}
	}
	require.True(t, quiet, "backfill did not go quiet")
	require.Positive(t, e.pproxy.Injected()+e.sproxy.Injected(), "faults were injected")
	e.requireConverged()
}
