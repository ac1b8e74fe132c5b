// Package prom publishes geoblob's per-type metrics for Prometheus: the
// registry gauges (read from the registry's incrementally maintained
// counters at every scrape, so a scrape never counts the table) and the
// replication latency histogram and copied-bytes counter of the copies this
// process made. The names are shared/metrics'.
package prom

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/geoblob/geoblob/shared/metrics"
	"github.com/geoblob/geoblob/shared/registry"
)

// StatusSource reads the per-type status; *registry.Store satisfies it.
type StatusSource interface {
	TypeStatus(ctx context.Context) ([]registry.TypeStatus, error)
}

var _ StatusSource = (*registry.Store)(nil)

// ScrapeTimeout bounds the registry read of one scrape.
const ScrapeTimeout = 5 * time.Second

// Collector exposes the registry gauges of metrics.Gauges, labelled
// data_type (and state where the gauge has one), plus geoblob_registry_up.
type Collector struct {
	src   StatusSource
	descs map[string]*prometheus.Desc
	up    *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src StatusSource) *Collector {
	c := &Collector{src: src, descs: map[string]*prometheus.Desc{},
		up: prometheus.NewDesc(metrics.PromRegistryUp, "1 when the last scrape read the registry, 0 when it failed.", nil, nil)}
	for _, g := range metrics.Gauges {
		if _, ok := c.descs[g.Prom]; ok {
			continue
		}
		labels := []string{"data_type"}
		if g.State != "" {
			labels = append(labels, "state")
		}
		c.descs[g.Prom] = prometheus.NewDesc(g.Prom, g.Help, labels, nil)
	}
	return c
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	names := make([]string, 0, len(c.descs))
	for n := range c.descs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ch <- c.descs[n]
	}
}

// Collect reads the registry and sends one sample per gauge and type.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	status, err := c.src.TypeStatus(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range status {
		t := s.Figures()
		for _, g := range metrics.Gauges {
			labels := []string{t.DataType}
			if g.State != "" {
				labels = append(labels, g.State)
			}
			ch <- prometheus.MustNewConstMetric(c.descs[g.Prom], prometheus.GaugeValue, g.Value(t), labels...)
		}
	}
}

// LatencyBuckets are the replication latency histogram's buckets in
// seconds: 1 s to 4 h (S3 RTC promises 15 minutes).
var LatencyBuckets = []float64{1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 14400}

// Copies records finished copies: the latency histogram and the copied
// bytes counter, per data type. It is safe for concurrent use.
type Copies struct {
	latency *prometheus.HistogramVec
	bytes   *prometheus.CounterVec
}

// NewCopies returns an empty recorder.
func NewCopies() *Copies {
	return &Copies{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metrics.PromReplicationLatency,
			Help:    "Seconds from a blob's creation on the primary (its event time) to its copy being marked synced.",
			Buckets: LatencyBuckets,
		}, []string{"data_type"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.PromCopiedBytes,
			Help: "Bytes copied to the secondary.",
		}, []string{"data_type"}),
	}
}

// Copied records one finished copy.
func (c *Copies) Copied(cp metrics.Copy) {
	c.latency.WithLabelValues(cp.DataType).Observe(max(cp.Latency, 0).Seconds())
	c.bytes.WithLabelValues(cp.DataType).Add(float64(cp.Bytes))
}

// Collectors returns the recorder's collectors for registration.
func (c *Copies) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.latency, c.bytes}
}

// Handler serves /metrics: the registry gauges read from src and, when
// copies is not nil, its latency and bytes metrics. Each Handler has its own
// Prometheus registry (no global state).
func Handler(src StatusSource, copies *Copies) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	if copies != nil {
		reg.MustRegister(copies.Collectors()...)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
