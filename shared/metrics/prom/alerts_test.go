package prom_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/geoblob/geoblob/shared/metrics"
)

// ruleFile is the Prometheus rule file format (rulefmt's shape).
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// exported returns every series name /metrics exposes (histograms with
// their _bucket, _sum and _count series).
func exported() map[string]bool {
	out := map[string]bool{metrics.PromRegistryUp: true, metrics.PromCopiedBytes: true}
	for _, g := range metrics.Gauges {
		out[g.Prom] = true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		out[metrics.PromReplicationLatency+s] = true
	}
	return out
}

// The shipped alert rules parse, are complete, and name only metrics that
// exist (and only state label values the gauges have).
func TestAlertRulesReferenceOnlyExportedMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&f))
	require.NotEmpty(t, f.Groups)

	names := exported()
	states := map[string]bool{}
	for _, g := range metrics.Gauges {
		if g.State != "" {
			states[g.Prom+"/"+g.State] = true
		}
	}
	metricRef := regexp.MustCompile(`\bgeoblob_[a-z_]+`)
	stateRef := regexp.MustCompile(`(geoblob_[a-z_]+)\{[^}]*state="([a-z]+)"`)
	seen := map[string]bool{}
	alerts := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			alerts++
			require.NotEmpty(t, r.Alert, "rule in group %s has a name", g.Name)
			assert.False(t, seen[r.Alert], "alert %s defined once", r.Alert)
			seen[r.Alert] = true
			assert.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s severity", r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], "%s summary", r.Alert)
			if r.For != "" {
				_, err := time.ParseDuration(r.For)
				assert.NoError(t, err, "%s for", r.Alert)
			}
			refs := metricRef.FindAllString(r.Expr, -1)
			require.NotEmpty(t, refs, "%s names a geoblob metric", r.Alert)
			for _, m := range refs {
				assert.True(t, names[m], "%s: metric %s is not exported", r.Alert, m)
			}
			for _, m := range stateRef.FindAllStringSubmatch(r.Expr, -1) {
				assert.True(t, states[m[1]+"/"+m[2]], "%s: %s has no state %q", r.Alert, m[1], m[2])
			}
			assert.Equal(t, strings.Count(r.Expr, "("), strings.Count(r.Expr, ")"), "%s: balanced parentheses", r.Alert)
		}
	}
	assert.GreaterOrEqual(t, alerts, 5)
	for _, must := range []string{"GeoblobFailedBlobs", "GeoblobOldestUnsyncedAge"} {
		assert.True(t, seen[must], "alert %s shipped (the CloudWatch alarms' twins)", must)
	}
}
