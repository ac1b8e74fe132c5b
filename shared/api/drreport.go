package api

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/geoblob/geoblob/shared/registry"
)

// DRReportPath is the DR readiness report's route.
const DRReportPath = "/api/v1/dr-report"

// drQuery reads the report's list selection from URL parameters
// (data_type, category, after, limit).
func (s *Server) drQuery(v url.Values) (registry.DRReportQuery, error) {
	q := registry.DRReportQuery{DataType: v.Get("data_type"), Category: registry.RiskCategory(v.Get("category")),
		After: v.Get("after"), ReverifyInterval: s.o.ReverifyInterval}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > registry.MaxDRListLimit {
			return q, fmt.Errorf("%w: limit %q (1..%d)", errBadRequest, l, registry.MaxDRListLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// getDRReport is GET /api/v1/dr-report: JSON, or CSV with format=csv.
func (s *Server) getDRReport(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	format := v.Get("format")
	if format != "" && format != "json" && format != "csv" {
		s.jsonError(w, r, fmt.Errorf("%w: format %q (json or csv)", errBadRequest, format))
		return
	}
	q, err := s.drQuery(v)
	var rep registry.DRReport
	if err == nil {
		rep, err = s.o.Registry.DRReport(r.Context(), q)
	}
	if err != nil {
		s.jsonError(w, r, err)
		return
	}
	if format != "csv" {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="dr-report.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	if err := WriteDRReportCSV(w, rep); err != nil {
		s.o.Logger.Error("api: dr-report csv", "err", err)
	}
}

// DRReportCSVHeader is the header of WriteDRReportCSV's output.
var DRReportCSVHeader = []string{"kind", "data_type", "category", "object_key", "state", "objects", "bytes", "age_seconds", "detail"}

// WriteDRReportCSV writes rep as one CSV table whose kind column says what
// a line is:
//
//	total     all types: objects and bytes at risk, age = RPO, detail = stale bytes
//	type      one data type: the same figures
//	category  one (type, category): objects and bytes (category "*": all types)
//	object    one object at risk: key, state, bytes = size, age since it waits, detail = failure
//	more      objects at risk after this page: objects = count, detail = next cursor
//	coverage  verification of synced objects: objects = verified within the interval, bytes = synced, detail = share and oldest verification
//	pass      last backfill / verify pass: data_type = job, detail = outcome, last success
func WriteDRReportCSV(w io.Writer, rep registry.DRReport) error {
	cw := csv.NewWriter(w)
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	sec := func(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }
	rec := func(fields ...string) { _ = cw.Write(fields) }
	rec(DRReportCSVHeader...)
	rec("total", "*", "", "", "", i64(rep.ObjectsAtRisk), i64(rep.BytesAtRisk), sec(rep.RPOSeconds), "stale_bytes="+i64(rep.StaleBytes))
	for _, c := range registry.RiskCategories {
		f := rep.Categories[c]
		rec("category", "*", string(c), "", "", i64(f.Objects), i64(f.Bytes), "", "")
	}
	rec("coverage", "*", "", "", "", i64(rep.Verification.VerifiedWithinInterval), i64(rep.Verification.Synced), "", coverageDetail(rep.Verification))
	for _, t := range rep.Types {
		rec("type", t.DataType, "", "", "", i64(t.ObjectsAtRisk), i64(t.BytesAtRisk), sec(t.RPOSeconds), "stale_bytes="+i64(t.StaleBytes))
		for _, c := range registry.RiskCategories {
			f := t.Categories[c]
			rec("category", t.DataType, string(c), "", "", i64(f.Objects), i64(f.Bytes), "", "")
		}
		rec("coverage", t.DataType, "", "", "", i64(t.Verification.VerifiedWithinInterval), i64(t.Verification.Synced), "", coverageDetail(t.Verification))
	}
	for _, p := range []*registry.Pass{rep.LastBackfill, rep.LastVerify} {
		if p != nil {
			rec("pass", p.Job, "", "", "", "", "", sec(rep.GeneratedAt.Sub(p.FinishedAt).Seconds()), passDetail(p))
		}
	}
	for _, o := range rep.Objects {
		rec("object", o.DataType, string(o.Category), o.ObjectKey, o.State, "1", i64(o.Size), sec(o.AgeSeconds), o.Failure)
	}
	if rep.More > 0 {
		rec("more", "", "", "", "", i64(rep.More), "", "", rep.Next)
	}
	cw.Flush()
	return cw.Error()
}

func coverageDetail(c registry.Coverage) string {
	d := "share=" + strconv.FormatFloat(c.Share, 'f', 4, 64)
	if c.OldestVerifiedAt != nil {
		d += " oldest_verified_at=" + c.OldestVerifiedAt.UTC().Format(time.RFC3339)
	}
	return d
}

func passDetail(p *registry.Pass) string {
	d := "ok"
	if !p.OK {
		d = "failed: " + p.Error
	}
	d += " finished_at=" + p.FinishedAt.UTC().Format(time.RFC3339)
	if p.LastOKAt != nil {
		d += " last_ok_at=" + p.LastOKAt.UTC().Format(time.RFC3339)
	}
	return d
}
