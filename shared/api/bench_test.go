package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// The operator surface's speed targets, measured with
//
//	GEOBLOB_BENCH_ROWS=10000000 go test -run '^$' -bench . -benchtime 200x -timeout 3h ./shared/api/
//
// (the figures in docs/BENCHMARKS.md); without GEOBLOB_BENCH_ROWS the
// registry has 100,000 rows. Rows are spread over 10 data types (one
// million per type at 10M): per type 90 % synced (half of them verified),
// 4 % pending, 1 % started, 5 % failed (a fifth of those quarantined);
// 1 % missing on primary, 0.5 % checksum mismatch.

const benchTypes = 10

// benchLoad builds rows $1..$2 with one INSERT ... generate_series
// (registrytest.BulkLoad drops and rebuilds the secondary indexes around it).
const benchLoad = `
INSERT INTO blob_registry (data_type, object_key, state, started_at, retry_at, retry_count,
	last_sync_failure, last_synced_at, size, primary_sha256, secondary_sha256, missing_on_primary,
	checksum_mismatch, quarantined_at, verification_state, verified_at, created_at, updated_at)
SELECT t, format('pkg/%s/%s/%s/file-%s.bin', t, j % 97, j % 1013, i), s,
	CASE WHEN s = 1 THEN ts END, CASE WHEN s = 3 THEN ts + interval '1 hour' END, (s = 3)::int * 3,
	CASE WHEN s = 3 THEN 'copy failed: connection reset by peer' END,
	CASE WHEN s = 2 THEN ts - make_interval(secs => j % 86400) END, 1000 + j % 100000,
	repeat('a', 64), CASE WHEN s = 2 THEN repeat('a', 64) ELSE '' END,
	j % 100 = 7, j % 200 = 11, CASE WHEN s = 3 AND j % 5 = 0 THEN ts END,
	CASE WHEN s = 2 THEN CASE WHEN j % 2 = 0 THEN 2 ELSE 0 END ELSE 4 END,
	CASE WHEN s = 2 AND j % 2 = 0 THEN ts - make_interval(secs => j % 7200) END,
	ts, ts - make_interval(secs => j % 3600)
FROM generate_series($1::bigint, $2::bigint) i,
	LATERAL (SELECT format('bench_type_%s', lpad((i % 10)::text, 2, '0')) AS t,
		-- j drives every other property: independent of the type (i % 10),
		-- so each type has the same mix of states
		(i / 10) * 7919 % 1000003 AS j) ty,
	LATERAL (SELECT CASE WHEN j % 100 < 90 THEN 2 WHEN j % 100 < 94 THEN 0 WHEN j % 100 < 95 THEN 1 ELSE 3 END AS s) st,
	(SELECT '2026-03-01 12:00:00+00'::timestamptz AS ts) c`

var bench struct {
	once sync.Once
	dsn  string
	rows int
	err  error
}

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("GEOBLOB_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func benchTypeName(i int) string { return fmt.Sprintf("bench_type_%02d", i) }

// benchDB returns the DSN of the benchmark registry, built once per test
// binary.
//
// GEOBLOB_BENCH_DSN names a database to use instead (kept between runs: a
// 10M-row load takes half an hour on a busy machine): it is migrated and
// loaded only when it holds fewer than GEOBLOB_BENCH_ROWS rows, and rows a
// previous BenchmarkBulkResync left pending are put back first.
func benchDB(b *testing.B) string {
	bench.once.Do(func() {
		bench.rows = benchRows()
		if dsn := os.Getenv("GEOBLOB_BENCH_DSN"); dsn != "" {
			bench.dsn = dsn
			bench.err = reuseBench(context.Background(), dsn, bench.rows)
			return
		}
		bench.dsn = pgtest.NewDBFrom(b, "registry", migrateDSN)
		bench.err = loadBench(context.Background(), bench.dsn, bench.rows)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.dsn
}

func migrateDSN(ctx context.Context, dsn string) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	return registry.Migrate(ctx, pool)
}

// putBackResynced undoes a bulk resync of benchmark rows: resync keeps
// last_synced_at, and rows loaded pending never had one.
const putBackResynced = `UPDATE blob_registry SET state = 2, last_synced_at = created_at
	WHERE state = 0 AND last_synced_at IS NOT NULL AND object_key LIKE 'pkg/%'`

// reuseBench prepares a kept benchmark database (see benchDB).
func reuseBench(ctx context.Context, dsn string, rows int) error {
	if err := migrateDSN(ctx, dsn); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var have int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM blob_registry WHERE object_key LIKE 'pkg/%'").Scan(&have); err != nil {
		return err
	}
	if have == 0 {
		return loadBench(ctx, dsn, rows)
	}
	if have != int64(rows) {
		return fmt.Errorf("GEOBLOB_BENCH_DSN holds %d benchmark rows, not GEOBLOB_BENCH_ROWS=%d: use an empty database", have, rows)
	}
	// undo what earlier runs changed: event rows, resynced types
	for _, q := range []string{
		"DELETE FROM blob_registry WHERE object_key NOT LIKE 'pkg/%'",
		putBackResynced,
		"VACUUM ANALYZE blob_registry",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench registry: reusing %d rows\n", have)
	return nil
}

func loadBench(ctx context.Context, dsn string, rows int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	start := time.Now()
	// types interleave (as events of all types do)
	if err := registrytest.BulkLoad(ctx, conn, rows, benchLoad); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench registry: %d rows loaded and indexed in %s\n", rows, time.Since(start).Round(time.Second))
	return nil
}

func benchServer(b *testing.B) (*httptest.Server, *registry.Store, *pgxpool.Pool) {
	return benchServerWith(b, registry.BulkOptions{})
}

// benchServerWith is benchServer whose bulk operations run with bulk
// (in a goroutine of the benchmark; zero = the API's own runner).
func benchServerWith(b *testing.B, bulk registry.BulkOptions) (*httptest.Server, *registry.Store, *pgxpool.Pool) {
	b.Helper()
	pool := pgtest.Connect(b, benchDB(b))
	store := registry.New(pool, registry.Options{})
	o := api.Options{Registry: store, ActionsEnabled: true}
	if bulk != (registry.BulkOptions{}) {
		var wg sync.WaitGroup
		b.Cleanup(wg.Wait)
		o.RunBulk = func(ctx context.Context, id int64) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := store.RunBulk(context.WithoutCancel(ctx), id, bulk); err != nil {
					b.Error(err)
				}
			}()
		}
	}
	h, err := api.New(o)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(func() { srv.Close(); h.Wait() })
	return srv, store, pool
}

// timed runs b.N requests of next() and reports p50/p99/max latency in ms.
func timed(b *testing.B, srv *httptest.Server, next func(i int) string) {
	b.Helper()
	timedN(b, srv, b.N, next)
}

// timedN is timed with n requests.
func timedN(b *testing.B, srv *httptest.Server, n int, next func(i int) string) {
	b.Helper()
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := range n {
		path := next(i)
		t0 := time.Now()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		var v json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %d %v %s", path, resp.StatusCode, err, v)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(bench.rows), "rows")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStatus: GET /api/v1/status on the full registry (target p99 <
// 200 ms at 10M rows; it reads the counters, never the table).
func BenchmarkStatus(b *testing.B) {
	srv, _, _ := benchServer(b)
	timed(b, srv, func(int) string { return "/api/v1/status" })
}

// BenchmarkStatusWhileWriting: the same while a writer changes rows (so
// every status folds fresh counter deltas).
func BenchmarkStatusWhileWriting(b *testing.B) {
	srv, store, _ := benchServer(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = store.RecordCreated(ctx, registry.ObjectEvent{DataType: benchTypeName(i % benchTypes), Key: fmt.Sprintf("w/%d", i), Size: 10})
		}
	}()
	timed(b, srv, func(int) string { return "/api/v1/status" })
	cancel()
	wg.Wait()
}

// BenchmarkListPage: pages of the registry list with every index-backed
// filter and sort, first pages and pages starting at random rows of the
// table (target p99 < 100 ms for any page at 10M rows).
func BenchmarkListPage(b *testing.B) {
	srv, _, pool := benchServer(b)
	var maxID int64
	if err := pool.QueryRow(context.Background(), "SELECT max(id) FROM blob_registry").Scan(&maxID); err != nil {
		b.Fatal(err)
	}
	filters := []string{"", "state=failed", "state=pending", "state=started", "state=synced", "verification_state=failed",
		"verification_state=pending", "verification_state=succeeded", "failed_only=true", "missing_on_primary=true",
		"quarantined=true", "checksum_mismatch=true", "key_prefix=pkg/TYPE/42/", "state=failed&missing_on_primary=true",
		"sort=last_synced", "sort=verified_at", "sort=last_synced&order=asc", "state=synced&sort=verified_at"}
	rnd := rand.New(rand.NewPCG(1, 2))
	path := func(f string) string {
		ty := benchTypeName(rnd.IntN(benchTypes))
		q, _ := url.ParseQuery(f)
		if p := q.Get("key_prefix"); p != "" {
			q.Set("key_prefix", "pkg/"+ty+"/42/")
		}
		q.Set("data_type", ty)
		q.Set("limit", "50")
		if q.Get("sort") == "" && rnd.IntN(2) == 0 {
			q.Set("after", registry.IDCursor(rnd.Int64N(maxID)))
		}
		return "/api/v1/rows?" + q.Encode()
	}
	timed(b, srv, func(i int) string { return path(filters[i%len(filters)]) })
	// the slowest request per filter (10 each), to see which filter an
	// index misses
	for _, f := range filters {
		var worst time.Duration
		for range 10 {
			t0 := time.Now()
			resp, err := http.Get(srv.URL + path(f))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			worst = max(worst, time.Since(t0))
		}
		fmt.Fprintf(os.Stderr, "list page max of 10: %-45s %8.1f ms\n", f, float64(worst.Microseconds())/1000)
	}
}

// BenchmarkListContains: the substring filter is not index-backed: a page
// scans until it has 50 matches (fast for common substrings, a full scan
// of the type for absent ones). Reported apart from the target.
func BenchmarkListContains(b *testing.B) {
	srv, _, _ := benchServer(b)
	timedN(b, srv, min(b.N, 20), func(i int) string {
		return "/api/v1/rows?data_type=" + benchTypeName(i%benchTypes) + "&key_contains=file-12345&limit=50"
	})
}

// BenchmarkBulkResync resyncs every row of one data type (1,000,000 at
// 10M) through POST /api/v1/bulk while a writer keeps processing batches
// of 10 events on the other types (upsert, claim, mark synced: the
// engine's registry work per event); it reports the total time, the
// longest batch transaction (commit included) and the event batches' p99
// latency before and during the bulk.
//
// GEOBLOB_BENCH_BULK_WORKERS=n runs the bulk with n workers
// (registry.BulkOptions.Workers) instead of the API's default.
func BenchmarkBulkResync(b *testing.B) {
	var bulk registry.BulkOptions
	if n, err := strconv.Atoi(os.Getenv("GEOBLOB_BENCH_BULK_WORKERS")); err == nil && n > 0 {
		bulk = registry.BulkOptions{Owner: "bench", Workers: n}
	}
	srv, store, pool := benchServerWith(b, bulk)
	ctx := context.Background()
	// one run per invocation (each changes a million rows at 10M): use
	// -benchtime 1x; a run starts by making every row of its type synced
	// (an earlier run resynced them, and the loaded mix has pending,
	// started and failed rows), so the bulk changes all of them
	const n = 0 // the resynced type
	ty := benchTypeName(n)
	if _, err := pool.Exec(ctx, `UPDATE blob_registry SET state = 2, last_synced_at = coalesce(last_synced_at, created_at),
		started_at = NULL, retry_at = NULL, retry_count = 0, last_sync_failure = NULL
		WHERE data_type = $1 AND state <> 2 AND object_key LIKE 'pkg/%'`, ty); err != nil {
		b.Fatal(err)
	}
	// events on the other types, before (baseline) and during the bulk
	evCtx, stopEvents := context.WithCancel(ctx)
	var during atomic.Bool
	var mu sync.Mutex
	var base, busy []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; evCtx.Err() == nil; i++ {
			batch := make([]registry.BatchEvent, 10)
			for j := range batch {
				batch[j] = registry.BatchEvent{Kind: registry.EventCreated, ObjectEvent: registry.ObjectEvent{
					DataType: benchTypeName((n + 1 + j%(benchTypes-1)) % benchTypes), Key: fmt.Sprintf("ev/%d/%d/%d", n, i, j), Size: 5}}
			}
			// what the engine does per event: upsert the row, claim it,
			// mark it synced (the copy itself is not the registry's)
			t0 := time.Now()
			if err := processEvents(evCtx, store, batch); err != nil {
				if evCtx.Err() == nil {
					b.Error(err)
				}
				return
			}
			d := time.Since(t0)
			mu.Lock()
			if during.Load() {
				busy = append(busy, d)
			} else {
				base = append(base, d)
			}
			mu.Unlock()
		}
	}()
	const baseFor = 5 * time.Second
	time.Sleep(baseFor)
	during.Store(true)
	start := time.Now()
	body := fmt.Sprintf(`{"action":"resync","scope":"all","filter":{"data_type":%q}}`, ty)
	resp, err := http.Post(srv.URL+"/api/v1/bulk", "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var op registry.BulkOperation
	if err := json.NewDecoder(resp.Body).Decode(&op); err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	for op.State == registry.BulkRunning {
		time.Sleep(100 * time.Millisecond)
		if op, err = store.BulkOperation(ctx, op.ID); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	during.Store(false)
	stopEvents()
	wg.Wait()
	if op.State != registry.BulkDone || op.Changed != op.Planned {
		b.Fatalf("bulk ended %s, %d of %d", op.State, op.Changed, op.Planned)
	}
	b.ReportMetric(elapsed.Seconds(), "bulk-s")
	b.ReportMetric(float64(op.Changed), "rows-changed")
	b.ReportMetric(float64(op.Changed)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(op.LongestBatchMS, "longest-tx-ms")
	b.ReportMetric(float64(op.Batches), "batches")
	p99 := func(d []time.Duration) float64 {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return float64(d[len(d)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(p99(base), "event-batch-p99-ms-before")
	b.ReportMetric(p99(busy), "event-batch-p99-ms-during")
	b.ReportMetric(float64(len(busy))*10/elapsed.Seconds(), "events/s-during")
	b.ReportMetric(float64(len(base))*10/baseFor.Seconds(), "events/s-before")
	b.ReportMetric(0, "ns/op")
}

// processEvents applies a batch of created events the way the engine
// does: one upsert of the batch, then per event a claim of its key and
// the finish of the copy.
func processEvents(ctx context.Context, store *registry.Store, batch []registry.BatchEvent) error {
	if _, err := store.RecordBatch(ctx, batch); err != nil {
		return err
	}
	for _, ev := range batch {
		c, ok, err := store.ClaimKey(ctx, ev.DataType, ev.Key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("event %s/%s: not claimable", ev.DataType, ev.Key)
		}
		if _, err := store.MarkSynced(ctx, c, registry.SyncResult{Size: ev.Size, SHA256: strings.Repeat("e", 64)}); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkDRReport: GET /api/v1/dr-report on the full registry (figures
// from the counters plus one aggregate over the rows at risk through
// blob_registry_at_risk_idx, and a keyset page of 100 objects at risk:
// first pages, filtered pages and pages after a random key). The bench
// data has 10 % of its rows at risk (a registry in trouble); the cost of
// the aggregate grows with those rows, not with the table.
func BenchmarkDRReport(b *testing.B) {
	srv, _, _ := benchServer(b)
	rnd := rand.New(rand.NewPCG(3, 4))
	queries := []string{"", "category=failed", "category=unsynced", "category=checksum_mismatch", "data_type=TYPE", "after=CURSOR"}
	timed(b, srv, func(i int) string {
		ty := benchTypeName(rnd.IntN(benchTypes))
		q := strings.NewReplacer("TYPE", ty, "CURSOR", registry.RiskCursor(ty,
			fmt.Sprintf("pkg/%s/%d/", ty, rnd.IntN(97)))).Replace(queries[i%len(queries)])
		return "/api/v1/dr-report?" + q
	})
}
