package metrics_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/metrics"
)

// Every gauge is one EMF metric with the DataType dimension, one line per
// type, with the figure's value.
func TestWriteTypeEMF(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	at := time.Unix(1_700_000_000, 0)
	figs := []metrics.TypeFigures{
		{DataType: "maven_package_file", Rows: 3, Synced: 2, Failed: 1, BytesPending: 42, OldestUnsyncedAge: 90 * time.Second},
		{DataType: "npm_package_file", Rows: 1, Pending: 1, Quarantined: 1},
	}
	require.NoError(t, metrics.WriteTypeEMF(&buf, figs, at))
	sc := bufio.NewScanner(&buf)
	var lines []map[string]any
	for sc.Scan() {
		var doc map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &doc))
		lines = append(lines, doc)
	}
	require.Len(t, lines, 2)
	m := lines[0]
	assert.Equal(t, "maven_package_file", m[metrics.DimensionDataType])
	aws := m["_aws"].(map[string]any)
	assert.Equal(t, float64(at.UnixMilli()), aws["Timestamp"])
	cw := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
	assert.Equal(t, metrics.Namespace, cw["Namespace"])
	assert.Equal(t, []any{[]any{metrics.DimensionDataType}}, cw["Dimensions"])
	defs := cw["Metrics"].([]any)
	require.Len(t, defs, len(metrics.Gauges))
	for _, d := range defs {
		name := d.(map[string]any)["Name"].(string)
		assert.Contains(t, m, name, "every declared metric has a value")
	}
	assert.Equal(t, 3.0, m["RegistryRows"])
	assert.Equal(t, 1.0, m[metrics.NameTypeFailed])
	assert.Equal(t, 42.0, m["PendingBytes"])
	assert.Equal(t, 90.0, m[metrics.NameTypeOldestUnsyncedAge])
	assert.Equal(t, 1.0, lines[1]["QuarantinedBlobs"])
}

func TestGaugeNamesAreUnique(t *testing.T) {
	t.Parallel()
	cw, prom := map[string]bool{}, map[string]bool{}
	for _, g := range metrics.Gauges {
		assert.False(t, cw[g.CloudWatch], "CloudWatch name %s used twice", g.CloudWatch)
		cw[g.CloudWatch] = true
		key := g.Prom + "/" + g.State
		assert.False(t, prom[key], "Prometheus series %s used twice", key)
		prom[key] = true
	}
}

func TestWriteCopiesEMFKeepsEveryLatency(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, metrics.WriteCopiesEMF(&buf, []metrics.Copy{
		{DataType: "a", Bytes: 10, Latency: 2 * time.Second},
		{DataType: "b", Bytes: 1, Latency: time.Second},
		{DataType: "a", Bytes: 5, Latency: 4 * time.Second},
	}, time.Unix(0, 0)))
	var first map[string]any
	require.NoError(t, json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &first))
	assert.Equal(t, "a", first[metrics.DimensionDataType])
	assert.Equal(t, []any{2.0, 4.0}, first[metrics.NameReplicationLatency])
	assert.Equal(t, 15.0, first[metrics.NameCopiedBytes])
}

// docs/operations.md maps every gauge to its CloudWatch and Geo names.
func TestOperationsDocListsEveryGauge(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	for _, g := range metrics.Gauges {
		series := "`" + g.Prom + "`"
		if g.State != "" {
			series = "`" + g.Prom + `{state="` + g.State + `"}` + "`"
		}
		assert.Contains(t, string(doc), "| "+series+" | `"+g.CloudWatch+"` |", "docs/operations.md lists %s", series)
	}
}

// The DR readiness totals are one EMF line without dimensions: objects and
// bytes at risk summed over types.
func TestWriteTotalsEMF(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	figs := []metrics.TypeFigures{
		{DataType: "a", AtRiskObjects: 3, AtRiskBytes: 300},
		{DataType: "b", AtRiskObjects: 2, AtRiskBytes: 20},
	}
	require.NoError(t, metrics.WriteTotalsEMF(&buf, figs, time.Unix(0, 0)))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	assert.Equal(t, 5.0, doc[metrics.NameAtRiskObjects])
	assert.Equal(t, 320.0, doc[metrics.NameAtRiskBytes])
	assert.NotContains(t, doc, metrics.DimensionDataType)
	cw := doc["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	assert.Equal(t, []any{[]any{}}, cw["Dimensions"])
	assert.ElementsMatch(t, []any{
		map[string]any{"Name": metrics.NameAtRiskObjects, "Unit": "Count"},
		map[string]any{"Name": metrics.NameAtRiskBytes, "Unit": "Bytes"},
	}, cw["Metrics"])
}
