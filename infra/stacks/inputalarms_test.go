package stacks

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestInputAlarms: rejected events and a missing primary bucket alarm on the
// metrics the functions write (names from shared/metrics).
func TestInputAlarms(t *testing.T) {
	for _, fx := range []string{"full", "localstack"} {
		s := fixture(t, fx)
		found := map[string]map[string]any{}
		for _, a := range resources(s.secondaryJSON, "AWS::CloudWatch::Alarm") {
			p := props(a)
			name, _ := p["MetricName"].(string)
			found[name] = p
		}
		for _, name := range []string{MetricRejectedEvents, MetricPrimaryBucketMissing} {
			p, ok := found[name]
			if !assert.True(t, ok, "%s: alarm on %s", fx, name) {
				continue
			}
			assert.Equal(t, MetricsNamespace, p["Namespace"])
			assert.EqualValues(t, 1, p["Threshold"])
			assert.Equal(t, "GreaterThanOrEqualToThreshold", p["ComparisonOperator"])
			assert.NotEmpty(t, p["AlarmActions"])
		}
	}
}
