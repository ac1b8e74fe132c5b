package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	pool  *pgxpool.Pool
	store *registry.Store
	srv   *httptest.Server
	api   *api.Server
}

func newEnv(t *testing.T, mod func(*api.Options)) *env {
	t.Helper()
	store, pool := registrytest.NewStorePool(t, registry.Options{})
	o := api.Options{
		Registry:       store,
		DataTypes:      []string{"npm", "maven", "pypi"},
		ActionsEnabled: true,
		Identity:       func(r *http.Request) string { return "test:" + r.Header.Get("X-User") },
	}
	if mod != nil {
		mod(&o)
	}
	h, err := api.New(o)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Wait() })
	return &env{pool: pool, store: store, srv: srv, api: h}
}

func (e *env) do(t *testing.T, method, path string, body any, hdr ...string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func (e *env) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	code, b := e.do(t, "GET", path, nil)
	require.NoError(t, json.Unmarshal(b, v), string(b))
	return code
}

// rows gets the row list at path (GET /api/v1/rows?...).
func (e *env) rows(t *testing.T, path string) api.ListJSON {
	t.Helper()
	var l api.ListJSON
	e.getJSON(t, path, &l)
	return l
}

type deadLetters struct{ n *int64 }

func (d deadLetters) DeadLetters(context.Context) (int64, string, error) {
	return *d.n, "test queue", nil
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dead int64 = 3
	e := newEnv(t, func(o *api.Options) {
		o.DeadLetters = deadLetters{&dead}
	})
	registrytest.Seed(t, e.pool, 50, "npm", "conan")
	require.NoError(t, e.store.RecordPass(ctx, registry.PassResult{Job: registry.JobBackfill, Started: time.Now(), Finished: time.Now()}))
	require.NoError(t, e.store.RecordPass(ctx, registry.PassResult{Job: registry.JobVerify, Started: time.Now(), Finished: time.Now(), Err: errors.New("bucket gone")}))

	var st api.StatusJSON
	require.Equal(t, 200, e.getJSON(t, "/api/v1/status", &st))
	want, err := e.store.TypeStatus(ctx)
	require.NoError(t, err)
	require.Len(t, st.Types, 4)
	names := []string{}
	for _, ty := range st.Types {
		names = append(names, ty.DataType)
	}
	assert.Equal(t, []string{"npm", "maven", "pypi", "conan"}, names, "enabled types in order, then types only the registry knows")
	assert.True(t, st.Types[0].Enabled)
	assert.False(t, st.Types[3].Enabled)
	assert.Equal(t, registry.TypeStatus{DataType: "maven"}, st.Types[1].TypeStatus)
	for _, w := range want {
		for _, got := range st.Types {
			if got.DataType == w.DataType {
				w.OldestUnsyncedAge, got.OldestUnsyncedAge = 0, 0
				assert.Equal(t, w.Rows, got.Rows)
				assert.Equal(t, w.Failed, got.Failed)
				assert.Equal(t, w.Synced, got.Synced)
				assert.Equal(t, w.Quarantined, got.Quarantined)
				assert.Equal(t, w.BytesPending, got.BytesPending)
				assert.Equal(t, w.OldestUnsyncedAt.UTC(), got.OldestUnsyncedAt.UTC())
			}
		}
	}
	assert.Greater(t, st.Types[0].OldestUnsyncedAgeSeconds, 0.0)
	require.NotNil(t, st.DeadLetters)
	assert.Equal(t, int64(3), *st.DeadLetters)
	assert.Len(t, st.Passes, 2)
	assert.Equal(t, api.Unhealthy, st.Health.Verdict, "failed verify pass and dead letters")
	assert.True(t, st.ActionsEnabled)

	var h health.Report
	assert.Equal(t, http.StatusServiceUnavailable, e.getJSON(t, "/api/v1/health", &h))
	assert.False(t, h.OK)

	// a healthy site
	dead = 0
	require.NoError(t, e.store.RecordPass(ctx, registry.PassResult{Job: registry.JobVerify, Started: time.Now(), Finished: time.Now()}))
	_, err = e.pool.Exec(ctx, "DELETE FROM blob_registry WHERE state <> 2 OR missing_on_primary OR checksum_mismatch OR verification_state = 3")
	require.NoError(t, err)
	require.Equal(t, 200, e.getJSON(t, "/api/v1/health", &h))
	assert.True(t, h.OK, "%+v", h.Checks)
	require.Equal(t, 200, e.getJSON(t, "/api/v1/status", &st))
	assert.Equal(t, api.Healthy, st.Health.Verdict, "%+v", st.Health.Checks)
}

func TestHealthHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) {
		o.Health = func(context.Context) health.Report {
			return health.Report{OK: false, Checks: []health.Result{{Name: health.CheckClockSkew, Status: health.StatusFail, Detail: "90s", Hint: "sync the clock"}}}
		}
	})
	var h health.Report
	require.Equal(t, 503, e.getJSON(t, "/api/v1/health", &h))
	assert.Equal(t, health.CheckClockSkew, h.Checks[0].Name)
}

// TestRowsFilters checks every filter of GET /api/v1/rows against a plain
// SQL count, paging with a small limit.
func TestRowsFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	registrytest.Seed(t, e.pool, 200, "npm", "maven")
	for q, where := range map[string]string{
		"data_type=npm":                            "data_type = 'npm'",
		"data_type=npm&state=failed":               "data_type = 'npm' AND state = 3",
		"data_type=npm&state=pending":              "data_type = 'npm' AND state = 0",
		"data_type=npm&state=started":              "data_type = 'npm' AND state = 1",
		"data_type=npm&state=synced":               "data_type = 'npm' AND state = 2",
		"data_type=npm&verification_state=failed":  "data_type = 'npm' AND verification_state = 3",
		"data_type=npm&failed_only=true":           "data_type = 'npm' AND (state = 3 OR verification_state = 3)",
		"data_type=npm&missing_on_primary=true":    "data_type = 'npm' AND missing_on_primary",
		"data_type=npm&quarantined=true":           "data_type = 'npm' AND quarantined_at IS NOT NULL",
		"data_type=npm&checksum_mismatch=true":     "data_type = 'npm' AND checksum_mismatch",
		"data_type=maven&key_prefix=pkg/maven/7/":  "data_type = 'maven' AND object_key LIKE 'pkg/maven/7/%'",
		"data_type=maven&key_contains=file-1":      "data_type = 'maven' AND object_key LIKE '%file-1%'",
		"state=synced&sort=last_synced":            "state = 2",
		"failed_only=true&sort=last_synced":        "state = 2 AND verification_state = 3",
		"data_type=npm&sort=verified_at&order=asc": "data_type = 'npm' AND verification_state = 2",
	} {
		var want int
		require.NoError(t, e.pool.QueryRow(context.Background(), "SELECT count(*) FROM blob_registry WHERE "+where).Scan(&want))
		got := 0
		next := ""
		for {
			var l api.ListJSON
			path := "/api/v1/rows?limit=7&" + q
			if next != "" {
				path += "&after=" + url.QueryEscape(next)
			}
			require.Equal(t, 200, e.getJSON(t, path, &l), q)
			got += len(l.Rows)
			if l.Next == "" {
				break
			}
			next = l.Next
		}
		assert.Equal(t, want, got, q)
	}
	for _, bad := range []string{"state=done", "sort=size", "limit=0", "limit=5000", "failed_only=maybe", "after=%21",
		"state=failed&sort=last_synced", "verification_state=pending&sort=verified_at"} {
		code, body := e.do(t, "GET", "/api/v1/rows?"+bad, nil)
		assert.Equal(t, 400, code, "%s: %s", bad, body)
	}
}

func TestRowDetailAndActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	_, err := e.store.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: "a/b.tgz", Size: 5})
	require.NoError(t, err)
	claims, err := e.store.ClaimDue(ctx, registry.ClaimOptions{})
	require.NoError(t, err)
	_, err = e.store.MarkFailed(ctx, claims[0], "network down", false)
	require.NoError(t, err)
	id := claims[0].ID

	var row api.RowJSON
	require.Equal(t, 200, e.getJSON(t, fmt.Sprintf("/api/v1/rows/%d", id), &row))
	assert.Equal(t, "failed", row.State)
	assert.Equal(t, "network down", row.LastSyncFailure)
	assert.Equal(t, 1, row.RetryCount)
	code, _ := e.do(t, "GET", "/api/v1/rows/999", nil)
	assert.Equal(t, 404, code)
	code, _ = e.do(t, "GET", "/api/v1/rows/x", nil)
	assert.Equal(t, 400, code)

	code, b := e.do(t, "POST", fmt.Sprintf("/api/v1/rows/%d/resync", id), nil, "X-User", "alice")
	require.Equal(t, 200, code, string(b))
	var res api.ActionJSON
	require.NoError(t, json.Unmarshal(b, &res))
	assert.True(t, res.Changed)
	assert.Equal(t, "pending", res.Row.State)
	ok, err := e.store.MarkSynced(ctx, claims[0], registry.SyncResult{Size: 5})
	require.NoError(t, err)
	assert.False(t, ok, "the copy in flight before the resync can not mark it synced")

	code, b = e.do(t, "POST", fmt.Sprintf("/api/v1/rows/%d/reverify", id), nil, "X-User", "alice")
	require.Equal(t, 200, code, string(b))
	require.NoError(t, json.Unmarshal(b, &res))
	assert.False(t, res.Changed, "a pending row has nothing to verify")
	code, _ = e.do(t, "POST", "/api/v1/rows/999/resync", nil)
	assert.Equal(t, 404, code)

	var audit struct{ Entries []registry.AuditEntry }
	require.Equal(t, 200, e.getJSON(t, "/api/v1/audit", &audit))
	require.Len(t, audit.Entries, 2)
	assert.Equal(t, "test:alice", audit.Entries[1].Actor)
	assert.Equal(t, "resync", audit.Entries[1].Action)
	assert.Equal(t, int64(1), audit.Entries[1].Rows)
}

func TestBulk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	registrytest.Seed(t, e.pool, 500, "npm", "maven")
	for _, req := range []api.BulkRequest{
		{Action: "resync", Scope: "failed", Filter: registry.Filter{DataType: "npm"}},
		{Action: "reverify", Scope: "failed", Filter: registry.Filter{DataType: "maven"}},
		{Action: "resync", Scope: "filter", Filter: registry.Filter{DataType: "maven", MissingOnPrimary: true}},
		{Action: "reverify", Scope: "all", Filter: registry.Filter{DataType: "npm"}},
		{Action: "resync", Scope: "all"},
	} {
		req.DryRun = true
		code, b := e.do(t, "POST", "/api/v1/bulk", req)
		require.Equal(t, 200, code, string(b))
		var dry api.DryRunJSON
		require.NoError(t, json.Unmarshal(b, &dry))
		require.NotZero(t, dry.Rows, "%+v", req)

		req.DryRun = false
		code, b = e.do(t, "POST", "/api/v1/bulk", req, "X-User", "bob")
		require.Equal(t, 202, code, string(b))
		var op registry.BulkOperation
		require.NoError(t, json.Unmarshal(b, &op))
		assert.Equal(t, dry.Rows, op.Planned)
		require.Eventually(t, func() bool {
			e.getJSON(t, fmt.Sprintf("/api/v1/bulk/%d", op.ID), &op)
			return op.State != registry.BulkRunning
		}, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, registry.BulkDone, op.State)
		assert.Equal(t, dry.Rows, op.Changed, "dry-run count equals the rows changed: %+v", req)
		assert.Equal(t, "test:bob", op.Actor)

		req.DryRun = true
		_, b = e.do(t, "POST", "/api/v1/bulk", req)
		require.NoError(t, json.Unmarshal(b, &dry))
		assert.Zero(t, dry.Rows, "nothing left after the bulk action")
	}
	var list struct{ Operations []registry.BulkOperation }
	require.Equal(t, 200, e.getJSON(t, "/api/v1/bulk", &list))
	assert.Len(t, list.Operations, 5)
	var audit struct{ Entries []registry.AuditEntry }
	e.getJSON(t, "/api/v1/audit", &audit)
	require.Len(t, audit.Entries, 5)
	assert.Equal(t, "bulk_resync", audit.Entries[0].Action)

	for _, bad := range []string{`{"action":"delete","scope":"all"}`, `{"action":"resync","scope":"some"}`, `{"action":"resync","bogus":1}`, `nope`} {
		req, err := http.NewRequest("POST", e.srv.URL+"/api/v1/bulk", strings.NewReader(bad))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 400, resp.StatusCode, bad)
	}
	code, _ := e.do(t, "GET", "/api/v1/bulk/999", nil)
	assert.Equal(t, 404, code)
}

func TestActionsDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) { o.ActionsEnabled = false })
	registrytest.Seed(t, e.pool, 5, "npm")
	l := e.rows(t, "/api/v1/rows?data_type=npm&state=failed")
	require.NotEmpty(t, l.Rows)
	for _, p := range []string{fmt.Sprintf("/api/v1/rows/%d/resync", l.Rows[0].ID), fmt.Sprintf("/api/v1/rows/%d/reverify", l.Rows[0].ID)} {
		code, _ := e.do(t, "POST", p, nil)
		assert.Equal(t, 403, code, p)
	}
	code, _ := e.do(t, "POST", "/api/v1/bulk", api.BulkRequest{Action: "resync", Scope: "all", DryRun: true})
	assert.Equal(t, 403, code)
	var row api.RowJSON
	e.getJSON(t, fmt.Sprintf("/api/v1/rows/%d", l.Rows[0].ID), &row)
	assert.Equal(t, "failed", row.State, "nothing changed")
	code, page := e.do(t, "GET", "/types/npm", nil)
	assert.Equal(t, 200, code)
	assert.NotContains(t, string(page), "Resync", "no action buttons when read-only")
}

// TestCrossSiteRequestsRefused: a page on another site can not make the
// console change anything, a same-origin page and the CLI can.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	registrytest.Seed(t, e.pool, 5, "npm")
	l := e.rows(t, "/api/v1/rows?data_type=npm&state=failed")
	require.NotEmpty(t, l.Rows)
	path := fmt.Sprintf("/api/v1/rows/%d/resync", l.Rows[0].ID)
	form := fmt.Sprintf("/rows/%d/resync", l.Rows[0].ID)
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"},
	} {
		code, _ := e.do(t, "POST", path, nil, hdr...)
		assert.Equal(t, 403, code, hdr)
		code, _ = e.do(t, "POST", form, nil, hdr...)
		assert.Equal(t, 403, code, hdr)
	}
	var row api.RowJSON
	e.getJSON(t, fmt.Sprintf("/api/v1/rows/%d", l.Rows[0].ID), &row)
	assert.Equal(t, "failed", row.State, "the cross-site requests changed nothing")
	code, _ := e.do(t, "POST", path, nil, "Sec-Fetch-Site", "same-origin")
	assert.Equal(t, 200, code)
}

func TestKeysAreEscaped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	key := `npm/<script>alert("x")</script>.tgz`
	_, err := e.store.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: key})
	require.NoError(t, err)
	claims, err := e.store.ClaimDue(ctx, registry.ClaimOptions{})
	require.NoError(t, err)
	_, err = e.store.MarkFailed(ctx, claims[0], `<img src=x onerror="alert(1)">`, false)
	require.NoError(t, err)
	for _, p := range []string{"/types/npm", fmt.Sprintf("/rows/%d", claims[0].ID), "/types/npm?key_contains=%3Cscript"} {
		code, b := e.do(t, "GET", p, nil)
		require.Equal(t, 200, code)
		page := string(b)
		assert.NotContains(t, page, "<script>alert", p)
		assert.NotContains(t, page, "<img src=x", p)
		assert.Contains(t, page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", p)
	}
}

func TestConsolePages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	registrytest.Seed(t, e.pool, 30, "npm")
	l := e.rows(t, "/api/v1/rows?data_type=npm")
	for _, p := range []string{"/", "/types/npm", "/types/npm?state=synced&sort=last_synced", "/types/maven",
		fmt.Sprintf("/rows/%d", l.Rows[0].ID), "/audit", "/assets/style.css", "/assets/console.js"} {
		code, b := e.do(t, "GET", p, nil)
		assert.Equal(t, 200, code, "%s: %s", p, b)
	}
	for p, want := range map[string]int{"/rows/999": 404, "/types/npm?state=nope": 400, "/nothing": 404, "/bulk/5": 404} {
		code, _ := e.do(t, "GET", p, nil)
		assert.Equal(t, want, code, p)
	}
	code, b := e.do(t, "POST", fmt.Sprintf("/rows/%d/delete", l.Rows[0].ID), nil)
	assert.Equal(t, 400, code, string(b))
}

// TestStatusProgress: the status and the overview say how fast the backlog
// drains and when it will be empty, from the sample the backfill pass took
// 5 minutes earlier; a type with a backlog and no sample is "unknown", and
// so is the site.
func TestStatusProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := registrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	store := registrytest.NewStore(t, registry.Options{Clock: clock.Now})
	h, err := api.New(api.Options{Registry: store, DataTypes: []string{"npm", "maven"}, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Wait() })
	e := &env{store: store, srv: srv, api: h}

	for i := range 30 {
		_, err := store.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: fmt.Sprintf("n%02d", i), Size: 100})
		require.NoError(t, err)
	}
	st, err := store.TypeStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, store.RecordProgress(ctx, st))
	clock.Advance(5 * time.Minute)
	claims, err := store.ClaimDue(ctx, registry.ClaimOptions{Limit: 20})
	require.NoError(t, err)
	require.Len(t, claims, 20)
	for _, c := range claims {
		_, err := store.MarkSynced(ctx, c, registry.SyncResult{Size: 100})
		require.NoError(t, err)
	}

	var got api.StatusJSON
	require.Equal(t, 200, e.getJSON(t, "/api/v1/status", &got))
	require.Equal(t, "npm", got.Types[0].DataType)
	p := got.Types[0].Progress
	assert.Equal(t, registry.TrendDraining, p.Trend)
	assert.Equal(t, int64(10), p.Backlog)
	assert.Equal(t, int64(1000), p.BacklogBytes)
	assert.InDelta(t, 20.0/300, p.DrainPerSecond, 1e-9, "20 rows in 5 minutes")
	require.NotNil(t, p.ETASeconds)
	assert.Equal(t, 150.0, *p.ETASeconds, "10 rows at 1 per 15 s")
	assert.Equal(t, registry.TrendIdle, got.Types[1].Progress.Trend, "maven has nothing to copy")
	assert.Equal(t, p, got.Progress, "the site's backlog is npm's")

	code, page := e.do(t, "GET", "/", nil)
	require.Equal(t, 200, code)
	assert.Contains(t, string(page), `<span class="badge trend-draining" data-part="trend">draining</span> at <span data-part="rate">0.1</span>/s, empty in <span data-part="eta">2m30s</span>`)

	// a new maven row with no sample yet: its rate and the site's are unknown
	_, err = store.RecordCreated(ctx, registry.ObjectEvent{DataType: "maven", Key: "m", Size: 1})
	require.NoError(t, err)
	require.Equal(t, 200, e.getJSON(t, "/api/v1/status", &got))
	assert.Equal(t, registry.TrendUnknown, got.Types[1].Progress.Trend)
	assert.Equal(t, registry.TrendUnknown, got.Progress.Trend)
	assert.Equal(t, int64(11), got.Progress.Backlog)
}
