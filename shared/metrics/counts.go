package metrics

import (
	"io"
	"sort"
	"time"
)

// CloudWatch names of event counters (unit Count, namespace Namespace, no
// dimensions). The infrastructure's alarms read exactly these.
const (
	// NameRejectedEvents counts events rejected as invalid (they can never
	// succeed, so they are recorded and not retried).
	NameRejectedEvents = "RejectedEvents"
)

// WriteCounts writes counts (metric name to value, unit Count) as one
// CloudWatch Embedded Metric Format line in Namespace. Zero counts are
// written too, so an alarm sees the series; an empty map writes nothing.
func WriteCounts(w io.Writer, counts map[string]int64, at time.Time) error {
	if len(counts) == 0 {
		return nil
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	vals := make([]value, 0, len(names))
	for _, n := range names {
		vals = append(vals, value{n, "Count", counts[n]})
	}
	return writeEMF(w, at, vals)
}

// value is one metric of an EMF line.
type value struct {
	name, unit string
	v          any
}

// writeEMF writes vals as one EMF line in Namespace without dimensions.
func writeEMF(w io.Writer, at time.Time, vals []value) error {
	type metric struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	ms := make([]metric, 0, len(vals))
	doc := map[string]any{}
	for _, v := range vals {
		ms = append(ms, metric{Name: v.name, Unit: v.unit})
		doc[v.name] = v.v
	}
	doc["_aws"] = map[string]any{
		"Timestamp": at.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  Namespace,
			"Dimensions": [][]string{{}},
			"Metrics":    ms,
		}},
	}
	return writeLine(w, doc)
}
