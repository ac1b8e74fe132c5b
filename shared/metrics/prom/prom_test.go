package prom_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/metrics"
	"github.com/geoblob/geoblob/shared/metrics/prom"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// scrape fetches url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "exposition: %s", body)
	return fams
}

// value returns the sample of family name with the given labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "metric %s exposed", name)
	for _, m := range fam.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// A scripted scenario on a real registry and a real S3 API: the scrape
// shows exactly the per-type figures the scenario produced.
func TestScrapeShowsExactPerTypeFigures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	copies := prom.NewCopies()
	env := rt.NewEnv(t, rt.EnvOptions{Copies: copies})
	reg, eng := env.Registry, env.Engine
	created := func(key string, size int) events.ObjectEvent {
		return events.ObjectEvent{Kind: events.KindCreated, EventName: "ObjectCreated:Put", Bucket: rt.PrimaryBucket,
			Key: key, Size: int64(size), EventTime: time.Now()}
	}
	upload := func(key string, size int) events.ObjectEvent {
		env.PutPrimary(t, key, bytes.Repeat([]byte("x"), size))
		return created(key, size)
	}

	// maven: three blobs replicated (10 + 20 + 30 bytes).
	for i, size := range []int{10, 20, 30} {
		out, err := eng.Apply(ctx, upload("maven/com/ex/app/1.0."+string(rune('0'+i))+"/app.jar", size))
		require.NoError(t, err)
		require.Equal(t, replication.OutcomeSynced, out)
	}
	// npm: one replicated (5 bytes), one announced but missing on the
	// primary (fails, 7 bytes), one announced and not synced yet (11 bytes).
	out, err := eng.Apply(ctx, upload("npm/left-pad/-/left-pad-1.0.0.tgz", 5))
	require.NoError(t, err)
	require.Equal(t, replication.OutcomeSynced, out)
	out, err = eng.Apply(ctx, created("npm/gone/-/gone-1.0.0.tgz", 7))
	require.NoError(t, err)
	require.Equal(t, replication.OutcomeMissingOnPrimary, out)
	_, err = reg.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm_package_file",
		Key: "npm/later/-/later-1.0.0.tgz", Size: 11, EventTime: time.Now()})
	require.NoError(t, err)

	srv := httptest.NewServer(prom.Handler(reg, copies))
	t.Cleanup(srv.Close)
	fams := scrape(t, srv.URL)

	type want struct {
		name, state string
		mvn, npm    float64
	}
	for _, w := range []want{
		{metrics.PromRegistryRows, "", 3, 3},
		{metrics.PromReplicationRows, "synced", 3, 1},
		{metrics.PromReplicationRows, "failed", 0, 1},
		{metrics.PromReplicationRows, "pending", 0, 1},
		{metrics.PromReplicationRows, "started", 0, 0},
		{metrics.PromMissingOnPrimaryRows, "", 0, 1},
		{metrics.PromQuarantinedRows, "", 0, 0},
		{metrics.PromPendingBytes, "", 0, 7 + 11},
		{metrics.PromVerificationRows, "succeeded", 0, 0},
		{metrics.PromVerificationRows, "failed", 0, 0},
		{metrics.PromChecksumMismatchRows, "", 0, 0},
		{metrics.PromPrimaryChecksumRows, "checksummed", 3, 1},
		{metrics.PromPrimaryChecksumRows, "failed", 0, 0},
	} {
		for typ, v := range map[string]float64{"maven_package_file": w.mvn, "npm_package_file": w.npm} {
			labels := map[string]string{"data_type": typ}
			if w.state != "" {
				labels["state"] = w.state
			}
			assert.Equal(t, v, value(t, fams, w.name, labels), "%s %v", w.name, labels)
		}
	}
	assert.Equal(t, 1.0, value(t, fams, metrics.PromRegistryUp, map[string]string{}))
	assert.Zero(t, value(t, fams, metrics.PromOldestUnsyncedAge, map[string]string{"data_type": "maven_package_file"}))
	assert.Positive(t, value(t, fams, metrics.PromOldestUnsyncedAge, map[string]string{"data_type": "npm_package_file"}))
	assert.Equal(t, 60.0, value(t, fams, metrics.PromCopiedBytes, map[string]string{"data_type": "maven_package_file"}))
	assert.Equal(t, 5.0, value(t, fams, metrics.PromCopiedBytes, map[string]string{"data_type": "npm_package_file"}))
	assert.Equal(t, 3.0, value(t, fams, metrics.PromReplicationLatency, map[string]string{"data_type": "maven_package_file"}),
		"one latency observation per copy")
	assert.Equal(t, 1.0, value(t, fams, metrics.PromReplicationLatency, map[string]string{"data_type": "npm_package_file"}))
}

type failingSource struct{}

func (failingSource) TypeStatus(context.Context) ([]registry.TypeStatus, error) {
	return nil, context.DeadlineExceeded
}

func TestRegistryDownIsAMetricNotAnError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(prom.Handler(failingSource{}, nil))
	t.Cleanup(srv.Close)
	fams := scrape(t, srv.URL)
	assert.Equal(t, 0.0, value(t, fams, metrics.PromRegistryUp, map[string]string{}))
	assert.NotContains(t, fams, metrics.PromRegistryRows)
}
