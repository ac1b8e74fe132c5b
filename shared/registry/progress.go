package registry

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Progress sampling: how often at most, how long samples are kept, and the
// window a drain rate is measured over (the oldest sample inside it is the
// baseline). A rate needs at least ProgressMinSpan of history.
const (
	progressMinGap = 30 * time.Second
	progressKeep   = 24 * time.Hour
	// ProgressWindow is the span a drain rate is measured over.
	ProgressWindow = 15 * time.Minute
	// ProgressMinSpan is the least history a drain rate needs.
	ProgressMinSpan = time.Minute
)

// Trend says where a backlog is heading.
type Trend string

// Trends of a backlog, from the counters now against the baseline sample.
const (
	// TrendIdle: nothing waits for a copy.
	TrendIdle Trend = "idle"
	// TrendDraining: the backlog shrinks; ETA says when it is empty.
	TrendDraining Trend = "draining"
	// TrendGrowing: more arrives than is copied.
	TrendGrowing Trend = "growing"
	// TrendStalled: rows wait and the backlog has not moved over the window.
	TrendStalled Trend = "stalled"
	// TrendUnknown: not enough history yet (less than ProgressMinSpan).
	TrendUnknown Trend = "unknown"
)

// ProgressSample is the backlog of one data type at one time.
type ProgressSample struct {
	DataType     string
	At           time.Time
	Backlog      int64
	BacklogBytes int64
}

// Backlog returns the rows of t waiting for a copy geoblob will make by
// itself (queued, being copied, failed awaiting retry) and their bytes.
// Quarantined rows are left out: they wait for an operator, not for time.
// Bytes are those of every live unsynced row (quarantined included).
func (t TypeStatus) Backlog() (rows, bytes int64) {
	return max(0, t.Pending+t.Started+t.Failed-t.Quarantined), t.BytesPending
}

// Progress is how a backlog changed over the measured span, and when it
// will be empty at that pace.
type Progress struct {
	Backlog      int64 `json:"backlog"`       // rows waiting now (see TypeStatus.Backlog)
	BacklogBytes int64 `json:"backlog_bytes"` // their bytes
	Trend        Trend `json:"trend"`
	// SpanSeconds is the time between the baseline sample and now (0: no
	// baseline).
	SpanSeconds float64 `json:"span_seconds"`
	// DrainPerSecond is how many rows per second the backlog shrank over
	// the span, net of what arrived (negative: it grew).
	DrainPerSecond float64 `json:"drain_per_second"`
	// DrainBytesPerSecond is the same in bytes.
	DrainBytesPerSecond float64 `json:"drain_bytes_per_second"`
	// ETASeconds is backlog / drain rate when draining, else nil.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
}

// ProgressOf compares backlog (rows, bytes) at now with the baseline sample
// base (nil: none) and says the trend, the net drain rates and the ETA.
func ProgressOf(now time.Time, rows, bytes int64, base *ProgressSample) Progress {
	p := Progress{Backlog: rows, BacklogBytes: bytes, Trend: TrendUnknown}
	if base != nil {
		span := now.Sub(base.At)
		if span >= ProgressMinSpan {
			p.SpanSeconds = span.Seconds()
			p.DrainPerSecond = float64(base.Backlog-rows) / p.SpanSeconds
			p.DrainBytesPerSecond = float64(base.BacklogBytes-bytes) / p.SpanSeconds
		}
	}
	switch {
	case rows == 0:
		p.Trend = TrendIdle
	case p.SpanSeconds == 0:
		p.Trend = TrendUnknown
	case p.DrainPerSecond > 0:
		p.Trend = TrendDraining
		eta := math.Ceil(float64(rows) / p.DrainPerSecond)
		p.ETASeconds = &eta
	case p.DrainPerSecond < 0:
		p.Trend = TrendGrowing
	default:
		p.Trend = TrendStalled
	}
	return p
}

// TypeProgress is t's progress against its baseline in baselines (see
// ProgressBaselines), at now.
func TypeProgress(now time.Time, t TypeStatus, baselines map[string]ProgressSample) Progress {
	rows, bytes := t.Backlog()
	var base *ProgressSample
	if b, ok := baselines[t.DataType]; ok {
		base = &b
	}
	return ProgressOf(now, rows, bytes, base)
}

// SiteProgress is the progress of all types together: their backlogs now
// against the sum of their baselines, dated at the oldest of them (the
// types are sampled together, so they normally agree; when they do not,
// the longer span understates the rate: the ETA errs late). A type with a
// backlog and no baseline leaves the site's progress unknown.
func SiteProgress(now time.Time, types []TypeStatus, baselines map[string]ProgressSample) Progress {
	var rows, bytes int64
	base := &ProgressSample{}
	for _, t := range types {
		r, b := t.Backlog()
		rows, bytes = rows+r, bytes+b
		tb, ok := baselines[t.DataType]
		if !ok {
			if r > 0 {
				base = nil
			}
			continue
		}
		if base != nil {
			base.Backlog += tb.Backlog
			base.BacklogBytes += tb.BacklogBytes
			if base.At.IsZero() || tb.At.Before(base.At) {
				base.At = tb.At
			}
		}
	}
	if base != nil && base.At.IsZero() {
		base = nil
	}
	return ProgressOf(now, rows, bytes, base)
}

// RecordProgress stores the backlog of every type in status as a sample at
// the store's clock: at most one sample per type every 30 s (a sample
// taken sooner is skipped), and samples older than a day are forgotten.
func (s *Store) RecordProgress(ctx context.Context, status []TypeStatus) error {
	if len(status) == 0 {
		return nil
	}
	types := make([]string, len(status))
	rows := make([]int64, len(status))
	bytes := make([]int64, len(status))
	for i, t := range status {
		types[i] = t.DataType
		rows[i], bytes[i] = t.Backlog()
	}
	now := s.now()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO registry_progress (data_type, at, backlog, backlog_bytes)
			SELECT t.data_type, $1, t.backlog, t.bytes
			FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS t (data_type, backlog, bytes)
			WHERE NOT EXISTS (SELECT 1 FROM registry_progress p
				WHERE p.data_type = t.data_type AND p.at > $1::timestamptz - $5::interval)
			ON CONFLICT (data_type, at) DO NOTHING`,
			now, types, rows, bytes, progressMinGap); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM registry_progress WHERE at < $1::timestamptz - $2::interval`, now, progressKeep)
		return err
	})
	if err != nil {
		return fmt.Errorf("registry: record progress: %w", err)
	}
	return nil
}

// ProgressBaselines returns, per data type, the oldest sample taken within
// window before the store's clock: what a drain rate over the window is
// measured against. A type without a sample in the window is absent.
func (s *Store) ProgressBaselines(ctx context.Context, window time.Duration) (map[string]ProgressSample, error) {
	samples, err := collect(ctx, s.pool, "progress baselines", func(r pgx.CollectableRow) (ProgressSample, error) {
		var p ProgressSample
		err := r.Scan(&p.DataType, &p.At, &p.Backlog, &p.BacklogBytes)
		return p, err
	}, `SELECT DISTINCT ON (data_type) data_type, at, backlog, backlog_bytes
		FROM registry_progress WHERE at >= $1 ORDER BY data_type, at`, s.now().Add(-window))
	if err != nil {
		return nil, err
	}
	return indexBy(samples, func(p ProgressSample) string { return p.DataType }), nil
}

// String is the progress in a few words: "40 draining 0.1/s, empty in
// 6m47s", "12 growing +3.0/s", "0 idle".
func (p Progress) String() string {
	t := strconv.FormatInt(p.Backlog, 10) + " " + string(p.Trend)
	switch p.Trend {
	case TrendDraining:
		t += fmt.Sprintf(" %.1f/s, empty in %s", p.DrainPerSecond, p.ETA().Round(time.Second))
	case TrendGrowing:
		t += fmt.Sprintf(" +%.1f/s", -p.DrainPerSecond)
	}
	return t
}

// ETA is ETASeconds as a duration (0 when the backlog is not draining).
func (p Progress) ETA() time.Duration {
	if p.ETASeconds == nil {
		return 0
	}
	return time.Duration(*p.ETASeconds * float64(time.Second))
}
