package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// DimensionDataType is the CloudWatch dimension of the per-type metrics.
const DimensionDataType = "DataType"

// TypeFigures are the per-data-type figures geoblob publishes: as Prometheus
// gauges locally and as CloudWatch metrics with a DataType dimension in AWS.
// Counts are of live registry rows.
type TypeFigures struct {
	DataType string

	Rows    int64
	Pending int64
	Started int64
	Synced  int64
	Failed  int64

	VerificationPending int64
	VerificationStarted int64
	Verified            int64
	VerificationFailed  int64
	ChecksumMismatch    int64

	PrimaryChecksummed    int64
	PrimaryChecksumFailed int64

	MissingOnPrimary int64
	Quarantined      int64
	BytesPending     int64
	// OldestUnsyncedAge is the current RPO of the type (0: all synced).
	OldestUnsyncedAge time.Duration
	// AtRiskObjects counts the rows a failover now would lose or serve
	// stale (not synced, tombstones included; the DR report's figure).
	AtRiskObjects int64
	// AtRiskBytes is the size of the live objects among them.
	AtRiskBytes int64
}

// Gauge describes one per-type figure under every name it is published
// with. Gauges is the single list the Prometheus collector, the EMF
// writer, the infrastructure's alarms and dashboard, the alert rules'
// test and the docs table are checked against.
type Gauge struct {
	// Prom is the Prometheus metric name; State, when set, is the value of
	// its state label (several gauges share one name, told apart by state).
	Prom, State string
	// CloudWatch is the metric name in Namespace (dimension DataType).
	CloudWatch string
	// Unit is the CloudWatch unit.
	Unit string
	// Geo is the matching GitLab Geo metric, <type> standing for the
	// replicable name (empty when Geo has none).
	Geo string
	// Help is the Prometheus help text of the name.
	Help string
	// Value reads the figure.
	Value func(TypeFigures) float64
	// Total, when set, is also published summed over the data types
	// without a dimension (WriteTotalsEMF; Prometheus users sum()).
	Total bool
}

// Prometheus names of the per-type gauges (labels data_type and, where
// noted, state).
const (
	PromRegistryRows         = "geoblob_registry_rows"
	PromReplicationRows      = "geoblob_replication_rows"  // state: pending, started, synced, failed
	PromVerificationRows     = "geoblob_verification_rows" // state: pending, started, succeeded, failed
	PromChecksumMismatchRows = "geoblob_checksum_mismatch_rows"
	PromPrimaryChecksumRows  = "geoblob_primary_checksum_rows" // state: checksummed, failed
	PromMissingOnPrimaryRows = "geoblob_missing_on_primary_rows"
	PromQuarantinedRows      = "geoblob_quarantined_rows"
	PromPendingBytes         = "geoblob_pending_bytes"
	PromAtRiskObjects        = "geoblob_dr_at_risk_objects"
	PromAtRiskBytes          = "geoblob_dr_at_risk_bytes"
	PromOldestUnsyncedAge    = "geoblob_oldest_unsynced_age_seconds"
	// PromRegistryUp is 1 when the last scrape read the registry, else 0.
	PromRegistryUp = "geoblob_registry_up"
	// PromReplicationLatency is a histogram of the time from a blob's
	// creation on the primary (its Last-Modified, the event time) to its
	// copy being marked synced, per data_type.
	PromReplicationLatency = "geoblob_replication_latency_seconds"
	// PromCopiedBytes counts bytes copied to the secondary, per data_type.
	PromCopiedBytes = "geoblob_copied_bytes_total"
)

// CloudWatch names of the per-type metrics with only the DataType
// dimension (the registry-wide ones above have none).
const (
	NameTypeFailed            = "FailedBlobs"
	NameTypeOldestUnsyncedAge = "OldestUnsyncedAgeSeconds"
	// NameReplicationLatency and NameCopiedBytes are written per copy by
	// the functions that copy (EMF, DataType dimension).
	NameReplicationLatency = "ReplicationLatencySeconds"
	NameCopiedBytes        = "CopiedBytes"
	// NameAtRiskObjects and NameAtRiskBytes are the DR readiness figures
	// (per type, and summed without a dimension by WriteTotalsEMF); the
	// RPO is NameOldestUnsyncedAge.
	NameAtRiskObjects = "AtRiskObjects"
	NameAtRiskBytes   = "AtRiskBytes"
)

func f(v int64) float64 { return float64(v) }

// Gauges lists every per-type gauge.
var Gauges = []Gauge{
	{PromRegistryRows, "", "RegistryRows", "Count", "geo_<types>_registry", "Live registry rows per data type.",
		func(t TypeFigures) float64 { return f(t.Rows) }, false},
	{PromReplicationRows, "pending", "PendingBlobs", "Count", "(geo_<types>_registry − synced − failed)", "Registry rows per data type and replication state.",
		func(t TypeFigures) float64 { return f(t.Pending) }, false},
	{PromReplicationRows, "started", "StartedBlobs", "Count", "", "",
		func(t TypeFigures) float64 { return f(t.Started) }, false},
	{PromReplicationRows, "synced", "SyncedBlobs", "Count", "geo_<types>_synced", "",
		func(t TypeFigures) float64 { return f(t.Synced) }, false},
	{PromReplicationRows, "failed", NameTypeFailed, "Count", "geo_<types>_failed", "",
		func(t TypeFigures) float64 { return f(t.Failed) }, false},
	{PromVerificationRows, "pending", "VerificationPendingBlobs", "Count", "", "Registry rows per data type and verification state.",
		func(t TypeFigures) float64 { return f(t.VerificationPending) }, false},
	{PromVerificationRows, "started", "VerificationStartedBlobs", "Count", "", "",
		func(t TypeFigures) float64 { return f(t.VerificationStarted) }, false},
	{PromVerificationRows, "succeeded", "VerifiedBlobs", "Count", "geo_<types>_verified", "",
		func(t TypeFigures) float64 { return f(t.Verified) }, false},
	{PromVerificationRows, "failed", "VerificationFailedBlobs", "Count", "geo_<types>_verification_failed", "",
		func(t TypeFigures) float64 { return f(t.VerificationFailed) }, false},
	{PromChecksumMismatchRows, "", "ChecksumMismatchBlobs", "Count", "(shown in Geo's admin UI only)", "Rows whose secondary checksum differs from the primary's.",
		func(t TypeFigures) float64 { return f(t.ChecksumMismatch) }, false},
	{PromPrimaryChecksumRows, "checksummed", "PrimaryChecksummedBlobs", "Count", "geo_<types>_checksummed", "Rows per data type whose primary is checksummed, or whose primary checksum failed.",
		func(t TypeFigures) float64 { return f(t.PrimaryChecksummed) }, false},
	{PromPrimaryChecksumRows, "failed", "PrimaryChecksumFailedBlobs", "Count", "geo_<types>_checksum_failed", "",
		func(t TypeFigures) float64 { return f(t.PrimaryChecksumFailed) }, false},
	{PromMissingOnPrimaryRows, "", "MissingOnPrimaryBlobs", "Count", "(geo_<types>_failed with missing_on_primary)", "Rows whose object is missing on the primary.",
		func(t TypeFigures) float64 { return f(t.MissingOnPrimary) }, false},
	{PromQuarantinedRows, "", "QuarantinedBlobs", "Count", "", "Rows given up on after their retries, until an operator resyncs them.",
		func(t TypeFigures) float64 { return f(t.Quarantined) }, false},
	{PromPendingBytes, "", "PendingBytes", "Bytes", "", "Bytes of live rows not synced yet.",
		func(t TypeFigures) float64 { return f(t.BytesPending) }, false},
	{PromOldestUnsyncedAge, "", NameTypeOldestUnsyncedAge, "Seconds", "", "Age of the oldest unsynced row (the current RPO); 0 when all are synced.",
		func(t TypeFigures) float64 { return t.OldestUnsyncedAge.Seconds() }, false},
	{PromAtRiskObjects, "", NameAtRiskObjects, "Count", "", "Objects a failover now would lose or serve stale: rows not synced, held and pending deletes included (geoblob dr-report).",
		func(t TypeFigures) float64 { return f(t.AtRiskObjects) }, true},
	{PromAtRiskBytes, "", NameAtRiskBytes, "Bytes", "", "Bytes of the live objects at risk (geoblob dr-report).",
		func(t TypeFigures) float64 { return f(t.AtRiskBytes) }, true},
}

// WriteTotalsEMF writes one EMF line without dimensions holding every
// Total gauge summed over types (zeros included, so an alarm sees the
// series).
func WriteTotalsEMF(w io.Writer, types []TypeFigures, at time.Time) error {
	var vals []value
	for _, g := range Gauges {
		if !g.Total {
			continue
		}
		sum := 0.0
		for _, t := range types {
			sum += g.Value(t)
		}
		vals = append(vals, value{g.CloudWatch, g.Unit, sum})
	}
	return writeEMF(w, at, vals)
}

// WriteTypeEMF writes one CloudWatch Embedded Metric Format line per data
// type: every Gauge under its CloudWatch name, dimension DataType.
func WriteTypeEMF(w io.Writer, types []TypeFigures, at time.Time) error {
	type metric struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	defs := make([]metric, len(Gauges))
	for i, g := range Gauges {
		defs[i] = metric{g.CloudWatch, g.Unit}
	}
	for _, t := range types {
		doc := map[string]any{
			"_aws": map[string]any{
				"Timestamp": at.UnixMilli(),
				"CloudWatchMetrics": []map[string]any{{
					"Namespace":  Namespace,
					"Dimensions": [][]string{{DimensionDataType}},
					"Metrics":    defs,
				}},
			},
			DimensionDataType: t.DataType,
		}
		for _, g := range Gauges {
			doc[g.CloudWatch] = g.Value(t)
		}
		if err := writeLine(w, doc); err != nil {
			return err
		}
	}
	return nil
}

// Copy is one finished copy, for the latency and bytes metrics.
type Copy struct {
	DataType string
	Bytes    int64
	// Latency is from the object's creation on the primary to synced.
	Latency time.Duration
}

// WriteCopiesEMF writes the copies of one invocation as EMF lines, one per
// data type, with the latencies as a value list (CloudWatch keeps their
// distribution: p50/p99 statistics work) and the bytes summed.
func WriteCopiesEMF(w io.Writer, copies []Copy, at time.Time) error {
	type agg struct {
		lat   []float64
		bytes int64
	}
	byType := map[string]*agg{}
	var order []string
	for _, c := range copies {
		a := byType[c.DataType]
		if a == nil {
			a = &agg{}
			byType[c.DataType] = a
			order = append(order, c.DataType)
		}
		a.lat = append(a.lat, c.Latency.Seconds())
		a.bytes += c.Bytes
	}
	for _, t := range order {
		a := byType[t]
		doc := map[string]any{
			"_aws": map[string]any{
				"Timestamp": at.UnixMilli(),
				"CloudWatchMetrics": []map[string]any{{
					"Namespace":  Namespace,
					"Dimensions": [][]string{{DimensionDataType}},
					"Metrics": []map[string]string{
						{"Name": NameReplicationLatency, "Unit": "Seconds"},
						{"Name": NameCopiedBytes, "Unit": "Bytes"},
					},
				}},
			},
			DimensionDataType:      t,
			NameReplicationLatency: a.lat,
			NameCopiedBytes:        a.bytes,
		}
		if err := writeLine(w, doc); err != nil {
			return err
		}
	}
	return nil
}

func writeLine(w io.Writer, doc map[string]any) error {
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// EMFCopies writes every copy it is told about as an EMF line (Lambda:
// os.Stdout), for the ReplicationLatencySeconds and CopiedBytes metrics.
// It is safe for concurrent use.
type EMFCopies struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEMFCopies returns an EMFCopies writing to w.
func NewEMFCopies(w io.Writer) *EMFCopies { return &EMFCopies{w: w} }

// Copied writes the copy's line; a write error is dropped (metrics must
// not fail a copy).
func (e *EMFCopies) Copied(c Copy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = WriteCopiesEMF(e.w, []Copy{c}, time.Now())
}
