package main

import (
	"encoding/csv"
	"encoding/json"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/verify"
)

// drScenario is what TestDRReportScenario makes at risk: key -> category.
var drScenario = map[string]registry.RiskCategory{
	"npm/unsynced/-/unsynced-1.0.0.tgz": registry.RiskUnsynced,
	"npm/failed/-/failed-1.0.0.tgz":     registry.RiskFailed,
	"npm/corrupt/-/corrupt-1.0.0.tgz":   registry.RiskChecksumMismatch,
	"npm/lost/-/lost-1.0.0.tgz":         registry.RiskMissingOnSecondary,
	"npm/held/-/held-1.0.0.tgz":         registry.RiskHeldDelete,
}

// TestDRReportScenario replicates objects for real (gofakes3 buckets,
// PostgreSQL registry, the replication engine and a verify pass), then
// makes specific objects unsynced, failed, checksum-mismatched, missing on
// the secondary and held by the delete brake, and checks that the DR
// report lists exactly those, with their counts, bytes and the RPO: from
// the registry, and through the API and `geoblob dr-report` as JSON, CSV
// and table.
func TestDRReportScenario(t *testing.T) {
	reg := drEnv(t)
	ctx := t.Context()
	cfg, err := config.FromEnv(os.Getenv)
	require.NoError(t, err)
	a, err := app.Build(ctx, cfg, nil)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	prim, sec := drBuckets(t)
	put := func(b *s3admin.Bucket, key, body string) { s3test.Put(t, b, key, []byte(body)) }
	const typ = "npm_package_file"
	body := func(key string) string { return "content of " + key }
	replicated := []string{"npm/ok1/-/ok1-1.0.0.tgz", "npm/ok2/-/ok2-1.0.0.tgz",
		"npm/corrupt/-/corrupt-1.0.0.tgz", "npm/lost/-/lost-1.0.0.tgz", "npm/held/-/held-1.0.0.tgz"}
	for _, k := range replicated {
		put(prim, k, body(k))
		_, err := a.Engine.Apply(ctx, events.ObjectEvent{Kind: events.KindCreated, EventName: "ObjectCreated:Put",
			Key: k, Size: int64(len(body(k))), EventTime: time.Now()})
		require.NoError(t, err, k)
		row, err := reg.Get(ctx, typ, k)
		require.NoError(t, err)
		require.Equal(t, registry.StateSynced, row.State, k)
	}
	// The secondary loses one copy and another is corrupted; verify finds both.
	put(sec, "npm/corrupt/-/corrupt-1.0.0.tgz", "garbage of the same length..........")
	require.NoError(t, sec.Store().Delete(ctx, "npm/lost/-/lost-1.0.0.tgz"))
	vs, err := app.BuildVerify(ctx, cfg, os.Getenv, nil)
	require.NoError(t, err)
	t.Cleanup(vs.Close)
	_, err = vs.Run(ctx, verify.RunOptions{})
	require.NoError(t, err)
	// A delete the brake holds, a copy that fails (the object is not on
	// the primary), and an object announced but not copied yet.
	registrytest.HoldDelete(t, reg, typ, "npm/held/-/held-1.0.0.tgz")
	_, _ = a.Engine.Apply(ctx, events.ObjectEvent{Kind: events.KindCreated, EventName: "ObjectCreated:Put",
		Key: "npm/failed/-/failed-1.0.0.tgz", Size: 4000, EventTime: time.Now()})
	_, err = reg.RecordCreated(ctx, registry.ObjectEvent{DataType: typ, Key: "npm/unsynced/-/unsynced-1.0.0.tgz", Size: 5000})
	require.NoError(t, err)

	// Expected figures, from the rows themselves.
	var wantBytes, wantStale int64
	var oldest time.Time
	for k, c := range drScenario {
		row, err := reg.Get(ctx, typ, k)
		require.NoError(t, err)
		require.NotEqual(t, registry.StateSynced, row.State, k)
		if c.Tombstone() {
			wantStale += row.Size
		} else {
			wantBytes += row.Size
		}
		if oldest.IsZero() || row.UpdatedAt.Before(oldest) {
			oldest = row.UpdatedAt
		}
	}
	require.Positive(t, wantBytes)
	require.Positive(t, wantStale)
	clock := registrytest.NewClock(time.Now().Add(time.Hour).Truncate(time.Second))
	wantRPO := clock.Now().Sub(oldest).Seconds()
	store := registry.New(pgtest.Connect(t, os.Getenv("GEOBLOB_DATABASE_URL")), registry.Options{Clock: clock.Now})

	checkReport := func(t *testing.T, rep registry.DRReport) {
		t.Helper()
		got := map[string]registry.RiskCategory{}
		for _, o := range rep.Objects {
			got[o.ObjectKey] = o.Category
		}
		assert.Equal(t, drScenario, got, "exactly the objects made unsynced, failed, mismatched, lost and held")
		assert.EqualValues(t, len(drScenario), rep.ObjectsAtRisk)
		assert.EqualValues(t, len(drScenario), rep.Matching)
		assert.Zero(t, rep.More)
		assert.Equal(t, wantBytes, rep.BytesAtRisk)
		assert.Equal(t, wantStale, rep.StaleBytes)
		assert.InDelta(t, wantRPO, rep.RPOSeconds, 0.001)
		for _, c := range registry.RiskCategories {
			want := int64(0)
			if c != registry.RiskPendingDelete {
				want = 1
			}
			assert.Equal(t, want, rep.Categories[c].Objects, c)
		}
		require.Len(t, rep.Types, 1)
		assert.Equal(t, rep.ObjectsAtRisk, rep.Types[0].ObjectsAtRisk)
		assert.EqualValues(t, 2, rep.Verification.Synced, "ok1 and ok2 are the synced objects")
		assert.EqualValues(t, 2, rep.Verification.VerifiedWithinInterval)
		assert.InDelta(t, 1.0, rep.Verification.Share, 1e-9)
		require.NotNil(t, rep.LastVerify, "the verify pass is in the pass log")
		assert.NotNil(t, rep.LastVerify.LastOKAt)
		assert.Nil(t, rep.LastBackfill, "no backfill pass ran")
	}

	// Registry method.
	rep, err := store.DRReport(ctx, registry.DRReportQuery{ReverifyInterval: 24 * time.Hour})
	require.NoError(t, err)
	checkReport(t, rep)
	short, err := store.DRReport(ctx, registry.DRReportQuery{ReverifyInterval: 30 * time.Minute})
	require.NoError(t, err)
	assert.Zero(t, short.Verification.VerifiedWithinInterval, "verified an hour ago: outside a 30 minute interval")
	assert.Zero(t, short.Verification.Share)

	// The metrics (functions/backfill, /metrics) publish the same figures.
	status, err := store.TypeStatus(ctx)
	require.NoError(t, err)
	require.Len(t, status, 1)
	fig := status[0].Figures()
	assert.EqualValues(t, len(drScenario), fig.AtRiskObjects)
	assert.Equal(t, wantBytes, fig.AtRiskBytes)
	assert.InDelta(t, wantRPO, fig.OldestUnsyncedAge.Seconds(), 0.001)

	// Keyset pages and filters.
	var paged []string
	after := ""
	for i := 0; i < 5; i++ {
		page, err := store.DRReport(ctx, registry.DRReportQuery{Limit: 2, After: after})
		require.NoError(t, err)
		for _, o := range page.Objects {
			paged = append(paged, o.ObjectKey)
		}
		assert.EqualValues(t, len(drScenario)-len(paged), page.More)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	want := make([]string, 0, len(drScenario))
	for k := range drScenario {
		want = append(want, k)
	}
	sort.Strings(want)
	assert.Equal(t, want, paged, "pages in key order, each object once")
	failed, err := store.DRReport(ctx, registry.DRReportQuery{Category: registry.RiskFailed})
	require.NoError(t, err)
	require.Len(t, failed.Objects, 1)
	assert.Equal(t, "npm/failed/-/failed-1.0.0.tgz", failed.Objects[0].ObjectKey)
	assert.True(t, failed.Objects[0].MissingOnPrimary)
	assert.EqualValues(t, 1, failed.Matching)
	_, err = store.DRReport(ctx, registry.DRReportQuery{Category: "bogus"})
	assert.ErrorIs(t, err, registry.ErrInvalidFilter)

	// API and CLI.
	h, err := api.New(api.Options{Registry: store, ReverifyInterval: 24 * time.Hour, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	out, err := cli(t, "dr-report", "-url", srv.URL, "-format", "json")
	require.NoError(t, err, out)
	var viaJSON registry.DRReport
	require.NoError(t, json.Unmarshal([]byte(out), &viaJSON), out)
	checkReport(t, viaJSON)

	// -aws takes the stack's function URL (signed when it is one); any
	// other URL is called as it is, like -url.
	out, err = cli(t, "dr-report", "-aws", srv.URL, "-format", "json")
	require.NoError(t, err, out)
	viaJSON = registry.DRReport{}
	require.NoError(t, json.Unmarshal([]byte(out), &viaJSON), out)
	checkReport(t, viaJSON)

	out, err = cli(t, "dr-report", "-url", srv.URL, "-format", "csv")
	require.NoError(t, err, out)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err, out)
	require.Equal(t, api.DRReportCSVHeader, recs[0])
	gotCSV := map[string]registry.RiskCategory{}
	var total []string
	for _, r := range recs[1:] {
		switch r[0] {
		case "object":
			gotCSV[r[3]] = registry.RiskCategory(r[2])
		case "total":
			total = r
		}
	}
	assert.Equal(t, drScenario, gotCSV)
	require.NotNil(t, total, out)
	assert.Equal(t, strconv.Itoa(len(drScenario)), total[5])
	assert.Equal(t, strconv.FormatInt(wantBytes, 10), total[6])
	rpo, err := strconv.ParseFloat(total[7], 64)
	require.NoError(t, err)
	assert.InDelta(t, wantRPO, rpo, 0.001)

	out, err = cli(t, "dr-report", "-url", srv.URL)
	require.NoError(t, err, out)
	for k := range drScenario {
		assert.Contains(t, out, strconv.Quote(k))
	}
	assert.Contains(t, out, "RPO (oldest unsynced)  "+(time.Duration(wantRPO*float64(time.Second))).Round(time.Second).String())

	out, err = cli(t, "dr-report", "-url", srv.URL, "-format", "xml")
	assert.Error(t, err, out)
}
