package api_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

// chromiumFlags are the start flags that keep Debian's chromium off the
// network and working as root in a container (see ARCHITECTURE.md).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("GEOBLOB_CHROMIUM")
	if bin == "" {
		var err error
		bin, err = exec.LookPath("chromium")
		require.NoError(t, err, "browser tests need Debian's chromium (apt-get install -y chromium) or GEOBLOB_CHROMIUM")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1500, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// artifacts is the git-ignored directory for screenshots.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("GEOBLOB_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".local", "artifacts")
	}
	dir = filepath.Join(dir, "console")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(artifacts(t), name+".png"), buf, 0o644))
	return buf
}

// site is a registry with real copies: two in-process S3 servers and the
// replication engine, so "the next copy" is a real copy.
type site struct {
	*env
	engine  *replication.Engine
	primary *blobstore.Store
}

func newSite(t *testing.T) *site {
	t.Helper()
	e := newEnv(t, func(o *api.Options) {
		o.DataTypes = []string{"npm_package_file", "maven_package_file", "pypi_package_file"}
	})
	re := rt.NewEnv(t, rt.EnvOptions{Registry: e.store})
	return &site{env: e, engine: re.Engine, primary: re.Primary}
}

// upload puts an object on the primary and records its event.
func (s *site) upload(t *testing.T, key string, register bool) {
	t.Helper()
	body := []byte("content of " + key)
	if _, err := s.primary.Put(t.Context(), key, bytes.NewReader(body), int64(len(body)), blobstore.PutAttrs{}); err != nil {
		require.NoError(t, err)
	}
	if register {
		s.event(t, key)
	}
}

func (s *site) event(t *testing.T, key string) {
	t.Helper()
	cat, err := datatype.BuiltinCatalog()
	require.NoError(t, err)
	ty, ok := cat.Match(key)
	require.True(t, ok, key)
	_, err = s.store.RecordCreated(t.Context(), registry.ObjectEvent{DataType: ty.Name, Key: key})
	require.NoError(t, err)
}

// copyDue runs the next copy of every pending row (what the event path
// and backfill's sync phase do for a row an event or a resync made
// pending). Failed rows wait for their retry_at, however slow the machine.
func (s *site) copyDue(t *testing.T) {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), "SELECT data_type, object_key FROM blob_registry WHERE state = 0 ORDER BY id")
	require.NoError(t, err)
	type key struct{ DataType, Key string }
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[key])
	require.NoError(t, err)
	for _, k := range keys {
		c, ok, err := s.store.ClaimKey(t.Context(), k.DataType, k.Key)
		require.NoError(t, err)
		if ok {
			_, _ = s.engine.SyncClaim(t.Context(), c)
		}
	}
}

func (s *site) ids(t *testing.T, where string) []string {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), "SELECT id::text FROM blob_registry WHERE "+where+" ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

// text returns the visible text of the first element matching a CSS
// selector.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return strings.TrimSpace(s)
}

// rowIDs reads the ids of the rows the list page shows.
func rowIDs(t *testing.T, ctx context.Context) []string {
	t.Helper()
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#rows tbody tr[data-id]")).map(tr => tr.dataset.id)`))
	require.NoError(t, err)
	sort.Slice(ids, func(i, j int) bool { a, _ := strconv.Atoi(ids[i]); b, _ := strconv.Atoi(ids[j]); return a < b })
	return ids
}

// TestConsoleInBrowser drives the console in headless Chromium: the
// overview shows the registry's counts per type, filtering to failed shows
// exactly the failed rows, Resync on a row makes it synced after the next
// copy, "Resync all failed" with its confirm dialog clears every failed
// row, and a key with <script> renders as text.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	ctx := newBrowser(t)
	var dialogs atomic.Int32
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}))

	// 6 npm and 4 maven files replicated; 3 npm and 2 maven registered
	// before their upload reached the primary: their copies fail.
	for i := range 6 {
		s.upload(t, fmt.Sprintf("npm/ok/-/ok-1.0.%d.tgz", i), true)
	}
	for i := range 4 {
		s.upload(t, fmt.Sprintf("maven/com/ok/%d/ok-%d.jar", i, i), true)
	}
	late := []string{"npm/late/-/late-1.0.0.tgz", "npm/late/-/late-1.0.1.tgz", "npm/late/-/late-1.0.2.tgz",
		"maven/com/late/1/late-1.jar", "maven/com/late/2/late-2.jar"}
	for _, k := range late {
		s.event(t, k)
	}
	xss := `npm/<script>alert("xss")</script>/-/x-1.0.0.tgz`
	s.event(t, xss)
	s.copyDue(t)
	failed := s.ids(t, "state = 3")
	require.Len(t, failed, 6, "the late files and the XSS key (never uploaded) failed")
	for _, k := range late {
		s.upload(t, k, false) // the files arrive; only a resync brings them over before retry_at
	}

	for _, job := range []string{registry.JobBackfill, registry.JobVerify} {
		require.NoError(t, s.store.RecordPass(t.Context(), registry.PassResult{Job: job, Started: time.Now(), Finished: time.Now()}))
	}
	base := s.srv.URL
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	t.Run("overview shows the registry's counts", func(t *testing.T) {
		do(t, chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#types")))
		screenshot(t, ctx, "overview")
		want, err := s.store.TypeStatus(t.Context())
		require.NoError(t, err)
		require.Len(t, want, 2)
		for _, ty := range want {
			for field, n := range map[string]int64{"rows": ty.Rows, "synced": ty.Synced, "failed": ty.Failed,
				"pending": ty.Pending, "verification_pending": ty.VerificationPending, "missing_on_primary": ty.MissingOnPrimary} {
				sel := fmt.Sprintf(`tr[data-type="%s"] [data-field="%s"]`, ty.DataType, field)
				assert.Equal(t, strconv.FormatInt(n, 10), text(t, ctx, sel), "%s %s", ty.DataType, field)
			}
		}
		assert.Equal(t, "0", text(t, ctx, `tr[data-type="pypi_package_file"] [data-field="rows"]`), "an enabled type without rows is shown")
		if os.Getenv("GEOBLOB_UPDATE_DOCS") == "1" {
			buf, err := chromedp.Run(ctx, chromedp.Screenshot(css("main")))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "console-overview.png"), buf, 0o644))
		}
	})

	t.Run("filter to failed shows exactly the failed rows", func(t *testing.T) {
		do(t, chromedp.Navigate(base+"/types/npm_package_file"), chromedp.WaitVisible(css("#filters")),
			chromedp.SetValue(css(`select[name="state"]`), "failed"),
			chromedp.Click(css("#apply")), chromedp.WaitNotPresent(css(`tr[data-state="synced"]`)), chromedp.WaitVisible(css("#rows")))
		loc, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		assert.Contains(t, loc, "state=failed")
		assert.Equal(t, s.ids(t, "data_type = 'npm_package_file' AND state = 3"), rowIDs(t, ctx))
		screenshot(t, ctx, "list-failed")
	})

	t.Run("the XSS key renders as text", func(t *testing.T) {
		do(t, chromedp.Navigate(base+"/types/npm_package_file?key_contains=%3Cscript%3E"), chromedp.WaitVisible(css("#rows")))
		assert.Equal(t, xss, text(t, ctx, `#rows tbody tr[data-id] td.key a`))
		scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script").length`))
		require.NoError(t, err)
		assert.Zero(t, scripts)
		assert.Zero(t, dialogs.Load(), "no script ran")
		screenshot(t, ctx, "xss-key")
	})

	t.Run("Resync on a failed row makes it synced after the next copy", func(t *testing.T) {
		id := s.ids(t, "object_key = 'npm/late/-/late-1.0.0.tgz'")[0]
		do(t, chromedp.Navigate(base+"/types/npm_package_file?state=failed"), chromedp.WaitVisible(css("#rows")),
			chromedp.Click(css(fmt.Sprintf(`tr[data-id="%s"] button.resync`, id))),
			chromedp.WaitNotPresent(css(fmt.Sprintf(`tr[data-id="%s"]`, id))), chromedp.WaitVisible(css("#rows")))
		assert.NotContains(t, rowIDs(t, ctx), id, "the row left the failed list")
		s.copyDue(t)
		do(t, chromedp.Navigate(base+"/rows/"+id), chromedp.WaitVisible(css("#state")))
		assert.Equal(t, "synced", text(t, ctx, "#state"))
		screenshot(t, ctx, "row-synced")
	})

	t.Run("Resync all failed with its confirm dialog clears every failed row", func(t *testing.T) {
		// the XSS key's object never existed; put it there so its copy works
		s.upload(t, xss, false)
		want := len(s.ids(t, "data_type = 'npm_package_file' AND state = 3"))
		require.Equal(t, 3, want)
		do(t, chromedp.Navigate(base+"/types/npm_package_file"), chromedp.WaitVisible(css("#filters")),
			chromedp.Click(css("#bulk-resync-failed")), chromedp.WaitVisible(css("#confirm")))
		assert.Regexp(t, regexp.MustCompile(`^Resync all failed: `+strconv.Itoa(want)+` rows will change`), text(t, ctx, "#confirm-text"))
		screenshot(t, ctx, "bulk-confirm")
		do(t, chromedp.Click(css("#confirm-ok")), chromedp.WaitVisible(css("#bulk-state")))
		require.Eventually(t, func() bool {
			_ = chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(css("#bulk-state")))
			return text(t, ctx, "#bulk-state") == "done"
		}, 30*time.Second, 200*time.Millisecond)
		screenshot(t, ctx, "bulk-done")
		s.copyDue(t)
		do(t, chromedp.Navigate(base+"/types/npm_package_file?state=failed"), chromedp.WaitVisible(css("#no-rows")))
		assert.Empty(t, s.ids(t, "data_type = 'npm_package_file' AND state <> 2"), "every npm row synced")
		assert.Len(t, s.ids(t, "data_type = 'maven_package_file' AND state = 3"), 2, "other types untouched")
		audit, err := s.store.Audit(t.Context(), 10)
		require.NoError(t, err)
		assert.Equal(t, "bulk_resync", audit[0].Action)
		assert.Equal(t, int64(want), audit[0].Rows)
	})
}

// TestDRPagesInBrowser drives the delete brake and DR report pages: the
// brake page shows the tripped brake, its window counts and its held
// deletes; Release of one type (the confirm dialog states the dry-run
// count) makes exactly those rows pending and keeps the brake tripped;
// Release all re-arms it; the DR report page lists exactly the objects at
// risk the registry holds, keys rendered as text.
func TestDRPagesInBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *api.Options) {
		o.DataTypes = []string{"npm_package_file", "maven_package_file"}
		o.Brake = registry.BrakePolicy{MaxDeletes: 1000, TypeMaxDeletes: 500, MaxFraction: 0.05, MinDeletes: 50}
	})
	ctx := newBrowser(t)
	held := map[string]string{"npm/a/-/a-1.0.0.tgz": "npm_package_file", "npm/b/-/b-1.0.0.tgz": "npm_package_file",
		"maven/x/y/1.0/y-1.0.jar": "maven_package_file"}
	for k, ty := range held {
		registrytest.HoldDelete(t, e.store, ty, k)
	}
	xss := `npm/<img src=x onerror=alert(1)>/-/x-1.0.0.tgz`
	for _, k := range []string{"npm/new/-/new-1.0.0.tgz", xss} {
		_, err := e.store.RecordCreated(t.Context(), registry.ObjectEvent{DataType: "npm_package_file", Key: k, Size: 10})
		require.NoError(t, err)
	}
	var dialogs atomic.Int32
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}))
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	keys := func(t *testing.T, table string) []string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("#`+table+` tbody tr[data-key]")).map(tr => tr.dataset.key)`))
		require.NoError(t, err)
		sort.Strings(out)
		return out
	}
	state := func(t *testing.T, key string) (registry.ReplicationState, registry.DeleteHold) {
		t.Helper()
		var st registry.ReplicationState
		var hold registry.DeleteHold
		require.NoError(t, e.pool.QueryRow(t.Context(), "SELECT state, delete_hold FROM blob_registry WHERE object_key = $1", key).Scan(&st, &hold))
		return st, hold
	}
	base := e.srv.URL

	t.Run("the brake page shows the tripped brake and its held deletes", func(t *testing.T) {
		do(t, chromedp.Navigate(base+"/brake"), chromedp.WaitVisible(css("#held")))
		assert.Equal(t, "tripped", text(t, ctx, "#brake-state"))
		assert.Equal(t, "3", text(t, ctx, "#held-total"))
		assert.Equal(t, []string{"maven/x/y/1.0/y-1.0.jar", "npm/a/-/a-1.0.0.tgz", "npm/b/-/b-1.0.0.tgz"}, keys(t, "held"))
		assert.Equal(t, "tripped", text(t, ctx, `#scopes tr[data-scope="*"] [data-field="state"]`))
		assert.Equal(t, "3", text(t, ctx, `#scopes tr[data-scope="*"] [data-field="held"]`))
		assert.Equal(t, "2", text(t, ctx, `#scopes tr[data-scope="npm_package_file"] [data-field="held"]`))
		assert.Contains(t, text(t, ctx, "#thresholds"), "1,000")
		screenshot(t, ctx, "brake-tripped")
	})

	t.Run("Release of one type through the page", func(t *testing.T) {
		do(t, chromedp.Navigate(base+"/brake?data_type=npm_package_file"), chromedp.WaitVisible(css("#held")))
		assert.Equal(t, []string{"npm/a/-/a-1.0.0.tgz", "npm/b/-/b-1.0.0.tgz"}, keys(t, "held"), "the filter")
		do(t, chromedp.Click(css("#hold-release")), chromedp.WaitVisible(css("#confirm")))
		assert.Regexp(t, `^Release filtered held deletes: 2 held deletes will be released`, text(t, ctx, "#confirm-text"))
		screenshot(t, ctx, "brake-confirm")
		do(t, chromedp.Click(css("#confirm-ok")), chromedp.WaitNotPresent(css(`#held tr[data-key="npm/a/-/a-1.0.0.tgz"]`)),
			chromedp.WaitVisible(css("#held")))
		assert.Equal(t, []string{"maven/x/y/1.0/y-1.0.jar"}, keys(t, "held"))
		assert.Equal(t, "tripped", text(t, ctx, "#brake-state"), "releasing one type re-arms only that type")
		for k := range held {
			st, hold := state(t, k)
			if held[k] == "npm_package_file" {
				assert.Equal(t, registry.StatePending, st, k)
				assert.Equal(t, registry.HoldReleased, hold, k)
			} else {
				assert.Equal(t, registry.StateFailed, st, k)
				assert.Equal(t, registry.HoldHeld, hold, k)
			}
		}
	})

	t.Run("Release all re-arms the brake", func(t *testing.T) {
		do(t, chromedp.Click(css("#hold-release")), chromedp.WaitVisible(css("#confirm")))
		assert.Regexp(t, `^Release all held deletes: 1 held deletes will be released`, text(t, ctx, "#confirm-text"))
		do(t, chromedp.Click(css("#confirm-ok")), chromedp.WaitVisible(css("#no-held")))
		assert.Equal(t, "armed", text(t, ctx, "#brake-state"))
		st, hold := state(t, "maven/x/y/1.0/y-1.0.jar")
		assert.Equal(t, registry.StatePending, st)
		assert.Equal(t, registry.HoldReleased, hold)
		audit, err := e.store.Audit(t.Context(), 10)
		require.NoError(t, err)
		require.Len(t, audit, 2)
		for _, a := range audit {
			assert.Equal(t, "delete_brake_release", a.Action)
		}
		assert.EqualValues(t, 1, audit[0].Rows)
		assert.EqualValues(t, 2, audit[1].Rows)
	})

	t.Run("the DR report page lists the objects at risk", func(t *testing.T) {
		rep, err := e.store.DRReport(t.Context(), registry.DRReportQuery{})
		require.NoError(t, err)
		var want []string
		for _, o := range rep.Objects {
			want = append(want, o.ObjectKey)
		}
		sort.Strings(want)
		require.Len(t, want, 5, "three released deletes and two unsynced objects")
		do(t, chromedp.Navigate(base+"/dr-report"), chromedp.WaitVisible(css("#at-risk")))
		assert.Equal(t, want, keys(t, "at-risk"))
		assert.Equal(t, "5", text(t, ctx, "#objects-at-risk"))
		assert.Equal(t, "3", strings.Fields(text(t, ctx, `#dr-types tr[data-type="*"] [data-field="pending_delete"]`))[0])
		assert.Equal(t, "pending_delete", text(t, ctx, `#at-risk tr[data-key="npm/a/-/a-1.0.0.tgz"] td:nth-child(2)`))
		screenshot(t, ctx, "dr-report")

		do(t, chromedp.Navigate(base+"/dr-report?category=unsynced"), chromedp.WaitVisible(css("#at-risk")))
		assert.Equal(t, []string{xss, "npm/new/-/new-1.0.0.tgz"}, keys(t, "at-risk"))
		cells, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("#at-risk td.key a")).map(a => a.textContent)`))
		require.NoError(t, err)
		assert.Contains(t, cells, xss, "the key renders as text")
		imgs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img").length`))
		require.NoError(t, err)
		assert.Zero(t, imgs, "the key is text, not markup")
		assert.Zero(t, dialogs.Load(), "no script ran")
	})
}
