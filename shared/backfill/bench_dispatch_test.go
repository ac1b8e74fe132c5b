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

// fillPending inserts n pending rows spread over the 7 built-in types,
// then VACUUM ANALYZE (as autovacuum would have done).
func fillPending(b *testing.B, pool *pgxpool.Pool, n int) {
	ctx := context.Background()
	types := datatype.Builtin()
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.Name
	}
	for start := 0; start < n; start += 1_000_000 {
		_, err := pool.Exec(ctx, `
			INSERT INTO blob_registry (data_type, object_key, size, etag, created_at, updated_at)
			SELECT ($3::text[])[1 + i % cardinality($3::text[])], 'packages/' || (i % 1000) || '/' || i || '.tgz',
				102400, md5(i::text), now(), now() - make_interval(secs => ($2::int - i) / 1000.0)
			FROM generate_series($1::int, $2::int) AS i`, start+1, min(start+1_000_000, n), names)
		require.NoError(b, err)
	}
	_, err := pool.Exec(ctx, "VACUUM ANALYZE blob_registry")
	require.NoError(b, err)
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

// BenchmarkClaimContention: 64 claimers call ClaimDue (50 rows each)
// concurrently on a registry of 1,000,000 pending rows until it is
// drained: claimed rows/s overall and the p50/p99 latency of one claim.
func BenchmarkClaimContention(b *testing.B) {
	const claimers, limit = 64, 50
	rows := benchRows(b, "1000000")[0]
	if v := os.Getenv("BENCH_CLAIM_ROWS"); v != "" {
		var err error
		rows, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	base := registrytest.NewPool(b)
	cfg := base.Config().Copy()
	cfg.MaxConns = claimers + 2
	pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
	require.NoError(b, err)
	defer pool.Close()
	reg := registry.New(pool, registry.Options{})
	for b.Loop() {
		b.StopTimer()
		_, err := pool.Exec(b.Context(), "TRUNCATE blob_registry")
		require.NoError(b, err)
		fillPending(b, pool, rows)
		b.StartTimer()
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
		b.ReportMetric(float64(claimed.Load())/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	}
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
