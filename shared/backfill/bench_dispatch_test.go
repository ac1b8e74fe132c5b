package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
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
// counts requests and, in its own goroutines (as the workers would, on
// their own database connections), takes them off the window. Mode
// "sync" (the default) does for each batch what the workers' registry
// writes amount to at the least: it ends the requests' leases and marks
// the rows synced (one row update per request, on this machine's cores).
// Mode "release" only ends the leases (the requests were taken by workers
// whose row writes run elsewhere, as they do on Aurora in AWS): the
// dispatcher's own cost, nothing else.
type finishingSink struct {
	mu      sync.Mutex
	seen    map[string]bool // rows sent
	unique  int64           // requests for rows not sent before
	repeats int64           // requests for rows sent before
	last    time.Time       // when the last request for a new row was sent
	work    chan []events.SyncRequest
	done    chan struct{}
}

// sinkStatements are the finishingSink modes: $1 data types, $2 keys.
var sinkStatements = map[string]string{
	"sync": `WITH u AS (SELECT * FROM unnest($1::text[], $2::text[]) AS u(t, k)),
		lease AS (DELETE FROM sync_dispatch_lease l USING blob_registry b, u
			WHERE b.data_type = u.t AND b.object_key = u.k AND l.row_id = b.id)
		UPDATE blob_registry r SET state = 2 FROM u
		WHERE r.data_type = u.t AND r.object_key = u.k AND r.state IN (0, 3)`,
	"release": `DELETE FROM sync_dispatch_lease l USING blob_registry b,
			unnest($1::text[], $2::text[]) AS u(t, k)
		WHERE b.data_type = u.t AND b.object_key = u.k AND l.row_id = b.id`,
}

func newFinishingSink(b *testing.B, pool *pgxpool.Pool, mode string) *finishingSink {
	stmt, ok := sinkStatements[mode]
	require.True(b, ok, "BENCH_DISPATCH_SINK: sync, release or both (release,sync)")
	s := &finishingSink{seen: map[string]bool{}, work: make(chan []events.SyncRequest, 64), done: make(chan struct{})}
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
				if _, err := pool.Exec(context.Background(), stmt, types, keys); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(s.done) }()
	return s
}

// SendSync encodes each request as the SQS dispatcher does (one message
// each), counts it (a row sent again, after a release sink ended its
// lease and the scan came round, is a repeat, not counted in the rate),
// and hands the batch to the finisher.
func (s *finishingSink) SendSync(_ context.Context, reqs []events.SyncRequest) error {
	for _, r := range reqs {
		if _, err := events.EncodeSyncRequests([]events.SyncRequest{r}); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, r := range reqs {
		k := r.DataType + "\x00" + r.Key
		if s.seen[k] {
			s.repeats++
			continue
		}
		s.seen[k] = true
		s.unique++
		s.last = time.Now()
	}
	s.mu.Unlock()
	s.work <- slices.Clone(reqs)
	return nil
}

func (s *finishingSink) close() { close(s.work); <-s.done }

// dispatchRegistry is one registry BenchmarkDispatch dispatches from.
type dispatchRegistry struct {
	name    string
	rows    int64
	pool    *pgxpool.Pool
	catalog *datatype.Catalog
}

// BenchmarkDispatch: sync requests dispatched per second by one backfill
// sync phase (read due rows fair across types by keyset, lease each
// request, count the work in flight, encode one message per request) for
// BENCH_DISPATCH_TIME (default 5s) from registries of
// BENCH_DISPATCH_ROWS pending rows (throwaway clusters, loaded per run)
// and, with BENCH_DISPATCH_DSN, from that kept database too (for a 10M-row
// registry, which takes 40 minutes to load: its rows are left as they are,
// apart from started rows of earlier runs, which are put back to synced,
// and its leases, which are cleared; it is vacuumed first; its data types
// are read from it).
// Window 10,000 requests, 1,000 rows per round, 4 loops. BENCH_DISPATCH_SINK
// (default sync) lists what stands in for the workers (see finishingSink),
// one sub-benchmark each per registry, in that order: release leaves the
// rows due, sync marks the rows it is sent synced.
func BenchmarkDispatch(b *testing.B) {
	budget := os.Getenv("BENCH_DISPATCH_TIME")
	if budget == "" {
		budget = "5s"
	}
	sinkModes := os.Getenv("BENCH_DISPATCH_SINK")
	if sinkModes == "" {
		sinkModes = "sync"
	}
	var regs []func(b *testing.B) dispatchRegistry
	for _, rows := range benchRows(b, "100000,1000000") {
		if rows <= 0 {
			continue // BENCH_DISPATCH_ROWS=0: only the kept database
		}
		regs = append(regs, func(b *testing.B) dispatchRegistry {
			pool := registrytest.NewPool(b)
			fillPending(b, pool, rows)
			cat, err := datatype.BuiltinCatalog()
			require.NoError(b, err)
			return dispatchRegistry{name: fmt.Sprintf("rows=%d", rows), rows: int64(rows), pool: pool, catalog: cat}
		})
	}
	if dsn := os.Getenv("BENCH_DISPATCH_DSN"); dsn != "" {
		regs = append(regs, func(b *testing.B) dispatchRegistry { return keptRegistry(b, dsn) })
	}
	for _, open := range regs {
		reg := open(b)
		for _, mode := range strings.Split(sinkModes, ",") {
			b.Run(reg.name+"/sink="+mode, func(b *testing.B) {
				store := registry.New(reg.pool, registry.Options{})
				for b.Loop() {
					sink := newFinishingSink(b, reg.pool, mode)
					r, err := backfill.New(backfill.Options{
						Config: backfill.Config{Budget: time.Hour, ClaimSize: 1000, Window: 10_000},
						Pool:   reg.pool, Registry: store, Engine: nopEngine{}, Catalog: reg.catalog, Primary: nopPrimary{},
						Dispatcher: sink, PollInterval: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
					})
					require.NoError(b, err)
					start := time.Now()
					rep, err := r.Run(b.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseSync}, Budget: budget})
					require.NoError(b, err)
					sink.close()
					// Rows sent up to the last new one: the pass ends with
					// parking exhausted rows, which is not dispatching, and a
					// small registry may be gone round before the budget ends.
					require.Equal(b, rep.Sync.Dispatched, sink.unique+sink.repeats)
					b.ReportMetric(float64(sink.unique)/sink.last.Sub(start).Seconds(), "requests/s")
					b.ReportMetric(float64(sink.repeats), "repeats")
					b.ReportMetric(float64(rep.Sync.WindowWaits), "window-waits")
				}
			})
		}
	}
}

// keptRegistry prepares the kept database dsn for BenchmarkDispatch (see
// there); it is named by its row count (planner estimate).
func keptRegistry(b *testing.B, dsn string) dispatchRegistry {
	ctx := b.Context()
	pool := pgtest.Connect(b, dsn)
	require.NoError(b, registry.Migrate(ctx, pool))
	for _, q := range []string{
		"UPDATE blob_registry SET state = 2 WHERE state = 1",
		// What autovacuum does in production: earlier runs' synced rows
		// leave dead entries at the head of each type's pending range,
		// which the first scan of a pass would walk (1.5M after a few
		// runs: the first second of a 3 s run).
		"VACUUM ANALYZE blob_registry",
		"TRUNCATE sync_dispatch_lease",
		"ANALYZE sync_dispatch_lease", // empty: the worst case for the lease check's plan
	} {
		_, err := pool.Exec(ctx, q)
		require.NoError(b, err, q)
	}
	var rows int64
	require.NoError(b, pool.QueryRow(ctx, "SELECT reltuples::bigint FROM pg_class WHERE oid = 'blob_registry'::regclass").Scan(&rows))
	typeRows, err := pool.Query(ctx, `WITH RECURSIVE t(data_type) AS (
			(SELECT data_type FROM blob_registry ORDER BY data_type LIMIT 1)
			UNION ALL
			SELECT (SELECT b.data_type FROM blob_registry b WHERE b.data_type > t.data_type ORDER BY b.data_type LIMIT 1)
			FROM t WHERE t.data_type IS NOT NULL)
		SELECT data_type FROM t WHERE data_type IS NOT NULL`)
	require.NoError(b, err)
	names, err := pgx.CollectRows(typeRows, pgx.RowTo[string])
	require.NoError(b, err)
	var types []datatype.Type
	for _, n := range names {
		types = append(types, datatype.Type{Name: n, Patterns: []string{"^" + regexp.QuoteMeta(n) + "/"}})
	}
	cat, err := datatype.NewCatalog(types...)
	require.NoError(b, err)
	return dispatchRegistry{name: fmt.Sprintf("rows=%d(kept)", rows), rows: rows, pool: pool, catalog: cat}
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
