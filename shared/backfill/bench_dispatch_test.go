package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/replication"
)

// benchRows are the registry sizes of BenchmarkDispatch:
// BENCH_DISPATCH_ROWS=100000,10000000 (default 100000,1000000).
func benchRows(b *testing.B, def string) []int {
	v := os.Getenv("BENCH_DISPATCH_ROWS")
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		require.NoError(b, err, "BENCH_DISPATCH_ROWS")
		out = append(out, n)
	}
	return out
}

// fillPending inserts n pending rows spread over the 7 built-in types
// (registrytest.BulkLoad: one INSERT ... generate_series per million rows,
// secondary indexes rebuilt after, VACUUM ANALYZE).
func fillPending(b *testing.B, pool *pgxpool.Pool, n int) {
	types := datatype.Builtin()
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.Name
	}
	require.NoError(b, registrytest.BulkLoad(context.Background(), pool, n, `
		INSERT INTO blob_registry (data_type, object_key, size, etag, created_at, updated_at)
		SELECT ($3::text[])[1 + i % cardinality($3::text[])], 'packages/' || (i % 1000) || '/' || i || '.tgz',
			102400, md5(i::text), now(), now() - make_interval(secs => ($2 - i) / 1000.0)
		FROM generate_series($1::bigint, $2::bigint) AS i`, names))
}

// finishingSink is a Dispatcher standing in for SQS plus the workers: it
// counts requests and, in its own goroutine (as the workers would, on
// their own database connections), marks them synced, so the claims in
// flight stay near the window as they do in production.
type finishingSink struct {
	pool *pgxpool.Pool
	sent atomic.Int64
	work chan []events.SyncRequest
	done chan struct{}
}

func newFinishingSink(pool *pgxpool.Pool) *finishingSink {
	s := &finishingSink{pool: pool, work: make(chan []events.SyncRequest, 64), done: make(chan struct{})}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reqs := range s.work {
				types, keys := make([]string, len(reqs)), make([]string, len(reqs))
				for i, r := range reqs {
					types[i], keys[i] = r.DataType, r.Key
				}
				_, _ = pool.Exec(context.Background(), `UPDATE blob_registry r SET state = 2
					FROM unnest($1::text[], $2::text[]) AS u(t, k)
					WHERE r.data_type = u.t AND r.object_key = u.k AND r.state = 1`, types, keys)
			}
		}()
	}
	go func() { wg.Wait(); close(s.done) }()
	return s
}

// SendSync encodes each request as the SQS dispatcher does (one message
// each) and hands the batch to the finisher.
func (s *finishingSink) SendSync(_ context.Context, reqs []events.SyncRequest) error {
	for _, r := range reqs {
		if _, err := events.EncodeSyncRequests([]events.SyncRequest{r}); err != nil {
			return err
		}
	}
	s.sent.Add(int64(len(reqs)))
	s.work <- slices.Clone(reqs)
	return nil
}

func (s *finishingSink) close() { close(s.work); <-s.done }

// BenchmarkDispatch: sync requests dispatched per second by one backfill
// sync phase (claim due rows fair across types with SKIP LOCKED, count the
// claims in flight, encode one message per request) from registries of
// BENCH_DISPATCH_ROWS pending rows, for BENCH_DISPATCH_TIME (default 5s)
// each. Window 10,000 claims, 1,000 rows per claim, 4 claim loops.
func BenchmarkDispatch(b *testing.B) {
	budget := os.Getenv("BENCH_DISPATCH_TIME")
	if budget == "" {
		budget = "5s"
	}
	for _, rows := range benchRows(b, "100000,1000000") {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			pool := registrytest.NewPool(b)
			fillPending(b, pool, rows)
			reg := registry.New(pool, registry.Options{})
			cat, err := datatype.BuiltinCatalog()
			require.NoError(b, err)
			for b.Loop() {
				sink := newFinishingSink(pool)
				r, err := backfill.New(backfill.Options{
					Config: backfill.Config{Budget: time.Hour, ClaimSize: 1000, Window: 10_000},
					Pool:   pool, Registry: reg, Engine: nopEngine{}, Catalog: cat, Primary: nopPrimary{},
					Dispatcher: sink, PollInterval: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
				})
				require.NoError(b, err)
				start := time.Now()
				rep, err := r.Run(b.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseSync}, Budget: budget})
				elapsed := time.Since(start)
				require.NoError(b, err)
				sink.close()
				b.ReportMetric(float64(rep.Sync.Dispatched)/elapsed.Seconds(), "requests/s")
				b.ReportMetric(float64(rep.Sync.WindowWaits), "window-waits")
			}
		})
	}
}

// BenchmarkClaimContention: BENCH_CLAIM_CLAIMERS (default 64) claimers
// call ClaimDue (50 rows each, SKIP LOCKED) concurrently on a registry of
// BENCH_CLAIM_ROWS (default 1,000,000) pending rows until it is drained,
// after a baseline of 1 claimer draining the same registry (reloaded) in
// the same run: claimed rows/s and p50/p99 latency of one claim for each,
// and the ratio of the two rates. Every row is claimed exactly once.
func BenchmarkClaimContention(b *testing.B) {
	const limit = 50
	rows, claimers := envInt(b, "BENCH_CLAIM_ROWS", 1_000_000), envInt(b, "BENCH_CLAIM_CLAIMERS", 64)
	base := registrytest.NewPool(b)
	cfg := base.Config().Copy()
	cfg.MaxConns = int32(claimers + 2)
	pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
	require.NoError(b, err)
	defer pool.Close()
	reg := registry.New(pool, registry.Options{})
	for b.Loop() {
		b.StopTimer()
		one := drainClaims(b, pool, reg, rows, 1, limit)
		many := drainClaims(b, pool, reg, rows, claimers, limit)
		b.StartTimer()
		b.ReportMetric(one.rate, "rows/s-1")
		b.ReportMetric(one.p99, "p99-ms-1")
		b.ReportMetric(many.rate, "rows/s")
		b.ReportMetric(many.p50, "p50-ms")
		b.ReportMetric(many.p99, "p99-ms")
		b.ReportMetric(many.rate/one.rate, "x-baseline")
	}
}

// claimRun is what one drain of the registry measured.
type claimRun struct{ rate, p50, p99 float64 }

// drainClaims reloads rows pending rows and lets claimers goroutines call
// ClaimDue until none is left.
func drainClaims(b *testing.B, pool *pgxpool.Pool, reg *registry.Store, rows, claimers, limit int) claimRun {
	_, err := pool.Exec(b.Context(), "TRUNCATE blob_registry")
	require.NoError(b, err)
	fillPending(b, pool, rows)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		claimed   atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				t0 := time.Now()
				cs, err := reg.ClaimDue(context.Background(), registry.ClaimOptions{Limit: limit})
				mine = append(mine, time.Since(t0))
				if err != nil {
					b.Error(err)
					return
				}
				if len(cs) == 0 {
					break
				}
				claimed.Add(int64(len(cs)))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.EqualValues(b, rows, claimed.Load(), "every row claimed exactly once")
	slices.Sort(latencies)
	ms := func(q int) float64 { return float64(latencies[len(latencies)*q/100].Microseconds()) / 1000 }
	return claimRun{rate: float64(claimed.Load()) / elapsed.Seconds(), p50: ms(50), p99: ms(99)}
}

// envInt reads a positive integer from the environment (def when unset).
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(b, err, name)
	require.Positive(b, n, name)
	return n
}

// nopEngine and nopPrimary satisfy the Runner's options in a dispatch-only
// benchmark (the sync phase never copies in process when dispatching).
type nopEngine struct{}

func (nopEngine) SyncClaim(context.Context, registry.Claim) (replication.Outcome, error) {
	return replication.OutcomeFailed, errors.New("nopEngine")
}

func (nopEngine) Apply(context.Context, events.ObjectEvent) (replication.Outcome, error) {
	return replication.OutcomeFailed, errors.New("nopEngine")
}

func (nopEngine) Concurrency() int { return 1 }

type nopPrimary struct{}

func (nopPrimary) List(context.Context, blobstore.ListOptions, func([]blobstore.Object) error) error {
	return errors.New("nopPrimary")
}

func (nopPrimary) Head(context.Context, string) (blobstore.Object, error) {
	return blobstore.Object{}, errors.New("nopPrimary")
}
