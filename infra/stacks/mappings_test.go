package stacks

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// mappingsByFunction returns the SQS event source mappings of tmpl by the
// logical id of the function they invoke.
func mappingsByFunction(tmpl map[string]any) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, m := range resources(tmpl, "AWS::Lambda::EventSourceMapping") {
		p := props(m)
		if fn, ok := p["FunctionName"].(map[string]any)["Ref"].(string); ok {
			out[fn] = append(out[fn], p)
		}
	}
	return out
}

// maxConcurrency is a mapping's MaximumConcurrency (0: none).
func maxConcurrency(p map[string]any) float64 {
	sc, _ := p["ScalingConfig"].(map[string]any)
	n, _ := sc["MaximumConcurrency"].(float64)
	return n
}

// TestMappingsFitReservedConcurrency: event source mappings do not count a
// function's reserved concurrency, and an invocation beyond it is
// throttled (the batch returns to its queue after the visibility timeout,
// its receive count spent). So every mapping of a reserved function has a
// maximum concurrency, and a function's mappings together never ask for
// more than its reservation. onCreate, which consumes S3 events and sync
// requests, splits its reservation between them. In every fixture.
func TestMappingsFitReservedConcurrency(t *testing.T) {
	for _, name := range []string{"full", "localstack", "nodispatch", "minimal", "capacity"} {
		s := fixture(t, name)
		for fn, ms := range mappingsByFunction(s.secondaryJSON) {
			reserved, ok := props(resource(t, s.secondaryJSON, fn))["ReservedConcurrentExecutions"].(float64)
			if !ok {
				continue
			}
			var sum float64
			for _, m := range ms {
				n := maxConcurrency(m)
				assert.GreaterOrEqual(t, n, float64(2), "%s: every mapping of %s (reserved %v) has a maximum concurrency", name, fn, reserved)
				sum += n
			}
			assert.LessOrEqual(t, sum, reserved, "%s: the mappings of %s ask for %v instances, %v reserved", name, fn, sum, reserved)
		}
	}

	// The documented cap: 25 of onCreate's 30 instances for sync requests
	// at 8 copies each, in batches of 8 (one batch runs at once); the
	// event mapping keeps 5; the window is the whole copy cap.
	s := fixture(t, "capacity")
	syncQueue := jsonString(getAtt(logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", "SyncRequestsQueue"), "Arn"))
	var got [][2]float64 // maximum concurrency and batch size of each mapping
	for _, m := range mappingsByFunction(s.secondaryJSON)["OnCreateFunction"] {
		if jsonString(m["EventSourceArn"]) == syncQueue {
			got = append(got, [2]float64{maxConcurrency(m), m["BatchSize"].(float64)})
		} else {
			assert.EqualValues(t, 5, maxConcurrency(m), "the event mapping keeps 30 - 25")
		}
	}
	assert.Equal(t, [][2]float64{{25, 8}}, got, "one sync-request mapping: 25 instances, batches of 8")
	vars := props(resource(t, s.secondaryJSON, "BackfillFunction"))["Environment"].(map[string]any)["Variables"].(map[string]any)
	assert.Equal(t, "240", vars["GEOBLOB_SYNC_WINDOW"], "30 instances x 8 copies")

	// Without dispatch, onCreate's event mapping has the whole reservation.
	for _, m := range mappingsByFunction(fixture(t, "nodispatch").secondaryJSON)["OnCreateFunction"] {
		assert.EqualValues(t, 10, maxConcurrency(m))
	}
}
