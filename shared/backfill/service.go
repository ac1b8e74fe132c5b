package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/metrics"
	"github.com/geoblob/geoblob/shared/registry"
)

// Service is the backfill function's dependencies, built once per cold
// start (app.BuildBackfill wires it from configuration).
type Service struct {
	Runner *Runner
	// Registry receives the bulk-operation resumes and the per-type
	// metrics reads of Handle.
	Registry *registry.Store
	Logger   *slog.Logger
	// MetricsOut, when set, receives the registry health as a CloudWatch
	// Embedded Metric Format line after every Handle (Lambda: os.Stdout).
	MetricsOut io.Writer
	// Release, when set, is called by Close (the wiring's database pool).
	Release func()
}

// Close releases what the wiring opened for the service.
func (s *Service) Close() {
	if s.Release != nil {
		s.Release()
	}
}

// ParseRequest decodes the function's input: an on-demand request such as
// {"phases":["reconcile","sync"],"budget":"10m"}, or an EventBridge
// Scheduler / scheduled-rule event, whose "detail" may hold such a request
// and whose other fields are ignored. Empty input and null give the
// configured defaults.
func ParseRequest(payload []byte) (Request, error) {
	var req Request
	if strings.TrimSpace(string(payload)) == "" || strings.TrimSpace(string(payload)) == "null" {
		return req, nil
	}
	var probe struct {
		DetailType string          `json:"detail-type"`
		Detail     json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return req, fmt.Errorf("%w: request: %v", ErrInvalidConfig, err)
	}
	if probe.DetailType != "" {
		d := strings.TrimSpace(string(probe.Detail))
		if d == "" || d == "null" || !strings.HasPrefix(d, "{") {
			return req, nil
		}
		payload = probe.Detail
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return req, fmt.Errorf("%w: request: %v", ErrInvalidConfig, err)
	}
	if len(req.Phases) > 0 {
		ps, err := ParsePhases(phaseStrings(req.Phases))
		if err != nil {
			return req, err
		}
		req.Phases = ps
	}
	switch req.Orphans {
	case "", OrphansOff, OrphansReport, OrphansDelete:
	default:
		return req, fmt.Errorf("%w: request: orphans must be off, report or delete, got %q", ErrInvalidConfig, req.Orphans)
	}
	return req, nil
}

// Handle is the Lambda handler: one pass with the request's options. It
// returns an error for an invalid request and for phase failures (registry
// or listing errors); objects that fail to copy are recorded on their rows
// and counted in the report, not returned.
func (s *Service) Handle(ctx context.Context, payload json.RawMessage) (Report, error) {
	req, err := ParseRequest(payload)
	if err != nil {
		return Report{}, err
	}
	s.resumeBulk(ctx)
	rep, err := s.Runner.Run(ctx, req)
	if s.MetricsOut != nil {
		// Health is reported even after a failed pass: that is when it matters.
		if h, herr := s.Runner.Health(ctx); herr != nil {
			s.Logger.ErrorContext(ctx, "backfill: registry health", "error", herr)
		} else if werr := metrics.WriteEMF(s.MetricsOut, h, time.Now()); werr != nil {
			s.Logger.ErrorContext(ctx, "backfill: registry health", "error", werr)
		}
		s.writeTypeMetrics(ctx)
	}
	return rep, err
}

// maxBulkShare bounds how long one scheduled pass spends finishing bulk
// resync/reverify operations whose runner stopped: at most a quarter of
// the invocation's time left, and never more than this, so registration and
// sync keep most of every pass.
const maxBulkShare = 2 * time.Minute

// resumeBulk finishes bulk operations started through the API whose runner
// stopped (the api function's invocation ended first, or its process
// died): in Lambda nothing else picks them up until the next operator
// action. A batch cut short by the share's end is resumed by the next pass.
func (s *Service) resumeBulk(ctx context.Context) {
	share := maxBulkShare
	if dl, ok := ctx.Deadline(); ok {
		share = min(share, time.Until(dl)/4)
	}
	if share <= 0 {
		return
	}
	bctx, cancel := context.WithTimeout(ctx, share)
	defer cancel()
	n, err := s.Registry.ResumeBulk(bctx, registry.BulkOptions{Owner: "backfill"})
	if err != nil {
		s.Logger.ErrorContext(ctx, "backfill: resume bulk operations", "error", err)
	} else if n > 0 {
		s.Logger.InfoContext(ctx, "backfill: resumed bulk operations", "count", n)
	}
}

// RunUntilQuiet runs passes until one finds nothing to do (nothing listed
// as new or gone, nothing claimed, no budget cut), at most maxPasses, and
// returns the sum of their reports. The local stack's `make demo` and
// `geoblob backfill -until-quiet` use it.
func (r *Runner) RunUntilQuiet(ctx context.Context, req Request, maxPasses int) (Report, error) {
	var total Report
	for i := 0; i < max(maxPasses, 1); i++ {
		rep, err := r.Run(ctx, req)
		total = AddReports(total, rep)
		if err != nil {
			return total, err
		}
		if Quiet(rep) {
			break
		}
	}
	return total, nil
}

// Quiet reports whether a pass found nothing to do.
func Quiet(rep Report) bool {
	rc := rep.Reconcile
	return !rep.BudgetExhausted && rep.Recovered == 0 && rc.Registered == 0 && rc.DeletesQueued == 0 &&
		rc.Changed == 0 && rep.Sync.Claimed == 0 && rep.Orphans.Deleted == 0
}

// AddReports sums two reports (the later one's flags and source win).
func AddReports(a, b Report) Report {
	a.Recovered += b.Recovered
	a.Resynced += b.Resynced
	a.BudgetExhausted = b.BudgetExhausted
	a.Elapsed += b.Elapsed
	ar, br := &a.Reconcile, b.Reconcile
	ar.Source, ar.Skipped, ar.PassComplete = br.Source, br.Skipped, ar.PassComplete || br.PassComplete
	ar.Resumed = ar.Resumed || br.Resumed
	ar.Listed += br.Listed
	ar.Selected += br.Selected
	ar.Registered += br.Registered
	ar.Changed += br.Changed
	ar.OrphanRows += br.OrphanRows
	ar.DeletesQueued += br.DeletesQueued
	as, bs := &a.Sync, b.Sync
	as.Claimed += bs.Claimed
	as.Synced += bs.Synced
	as.Deleted += bs.Deleted
	as.Missing += bs.Missing
	as.Failed += bs.Failed
	as.Other += bs.Other
	as.Quarantined += bs.Quarantined
	as.Rounds += bs.Rounds
	as.Dispatched += bs.Dispatched
	as.WindowWaits += bs.WindowWaits
	ao, bo := &a.Orphans, b.Orphans
	ao.Mode = bo.Mode
	ao.Listed += bo.Listed
	ao.Found += bo.Found
	ao.Deleted += bo.Deleted
	for _, k := range bo.Keys {
		if len(ao.Keys) < maxReportedOrphans {
			ao.Keys = append(ao.Keys, k)
		}
	}
	return a
}

// writeTypeMetrics writes the per-type figures (registry counters) to
// MetricsOut as EMF lines with the DataType dimension, and the DR
// readiness totals as one line without dimensions, and records the
// backlog sample the progress (drain rate, ETA) is measured from.
func (s *Service) writeTypeMetrics(ctx context.Context) {
	status, err := s.Registry.TypeStatus(ctx)
	if err != nil {
		s.Logger.ErrorContext(ctx, "backfill: per-type metrics", "error", err)
		return
	}
	// the backlog sample the status's drain rate and ETA are measured from
	if err := s.Registry.RecordProgress(ctx, status); err != nil {
		s.Logger.ErrorContext(ctx, "backfill: progress sample", "error", err)
	}
	figs := make([]metrics.TypeFigures, len(status))
	for i, t := range status {
		figs[i] = t.Figures()
	}
	now := time.Now()
	err = metrics.WriteTypeEMF(s.MetricsOut, figs, now)
	if err == nil {
		// The DR readiness totals (objects and bytes at risk; the RPO is
		// the registry health's OldestUnsyncedAgeSeconds).
		err = metrics.WriteTotalsEMF(s.MetricsOut, figs, now)
	}
	if err != nil {
		s.Logger.ErrorContext(ctx, "backfill: per-type metrics", "error", err)
	}
}
