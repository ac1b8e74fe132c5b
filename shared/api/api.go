// Package api is geoblob's operator surface: one http.Handler serving the
// versioned JSON API (/api/v1/...) and the HTML console built on it
// (overview per data type, registry list with filters, row detail,
// resync/reverify of one row or in bulk, bulk progress, audit). It runs in
// functions/api behind a Lambda function URL and in `geoblob console`
// locally; it reads and changes the registry only through Registry.
package api

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/registry"
)

// Registry is what the API needs of the registry.
type Registry interface {
	TypeStatus(ctx context.Context) ([]registry.TypeStatus, error)
	Passes(ctx context.Context) ([]registry.Pass, error)
	// ProgressBaselines: the backlog samples a drain rate is measured against.
	ProgressBaselines(ctx context.Context, window time.Duration) (map[string]registry.ProgressSample, error)
	ListPage(ctx context.Context, q registry.PageQuery) (registry.Page, error)
	GetEntry(ctx context.Context, id int64) (registry.Entry, error)
	ActOnRow(ctx context.Context, a registry.Action, id int64, actor string) (registry.Entry, bool, error)
	CountAction(ctx context.Context, a registry.Action, f registry.Filter) (int64, error)
	StartBulk(ctx context.Context, a registry.Action, f registry.Filter, actor string) (registry.BulkOperation, error)
	RunBulk(ctx context.Context, id int64, o registry.BulkOptions) (registry.BulkOperation, error)
	BulkOperation(ctx context.Context, id int64) (registry.BulkOperation, error)
	BulkOperations(ctx context.Context, limit int) ([]registry.BulkOperation, error)
	Audit(ctx context.Context, limit int) ([]registry.AuditEntry, error)
	// BrakeStatus, Held and ResolveHeld: the delete brake (see registry).
	BrakeStatus(ctx context.Context) (registry.BrakeStatus, error)
	Held(ctx context.Context, f registry.HoldFilter, afterKey string, limit int) ([]registry.Row, error)
	ResolveHeld(ctx context.Context, a registry.HoldAction, f registry.HoldFilter, actor string, dryRun bool) (int64, error)
	// BrakeWindow counts the deletes admitted in the window per scope.
	BrakeWindow(ctx context.Context, window time.Duration) (map[string]int64, error)
	// DRReport is the DR readiness report (GET /api/v1/dr-report).
	DRReport(ctx context.Context, q registry.DRReportQuery) (registry.DRReport, error)
}

var _ Registry = (*registry.Store)(nil)

// Health is the status's verdict with the checks behind it (the lines
// have the shape of geoblob check's).
type Health struct {
	// Verdict is "healthy", "degraded" (the registry reports rows that need
	// attention) or "unhealthy" (the safety net or the event path is
	// broken).
	Verdict string          `json:"verdict"`
	Checks  []health.Result `json:"checks"`
}

// Health verdicts.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
)

// Options configure the handler. Registry is required.
type Options struct {
	Registry Registry
	// DataTypes are the enabled data types: shown even without rows, in
	// this order, before types that only the registry knows.
	DataTypes []string
	// ActionsEnabled allows resync/reverify (GEOBLOB_API_ACTIONS); when
	// false every state-changing request is refused with 403.
	ActionsEnabled bool
	// Identity names the caller for the audit trail (in AWS: the IAM ARN
	// from the function URL's request context); nil = "local".
	Identity func(*http.Request) string
	// DeadLetters counts messages in the dead-letter queue; nil = unknown.
	DeadLetters health.DeadLetters
	// Health runs the full health check (geoblob check, a
	// *health.Checker's Run) for GET /api/v1/health; nil = a report made
	// of the status's registry-derived checks.
	Health func(context.Context) health.Report
	// RunBulk runs a started bulk operation; nil = in a goroutine of this
	// process (Wait waits for it). In Lambda, pass a runner that works
	// within the invocation (unfinished operations resume through
	// Registry.RunBulk / registry.Store.ResumeBulk).
	RunBulk func(ctx context.Context, id int64)
	// BackfillMaxAge and VerifyMaxAge are how old the last backfill and
	// verify pass may be before the verdict is unhealthy; 0 = the health
	// check's defaults.
	BackfillMaxAge, VerifyMaxAge time.Duration
	// ReverifyInterval is the verification age the DR report counts as
	// covered (GEOBLOB_REVERIFY_INTERVAL); 0 = the registry's default.
	ReverifyInterval time.Duration
	// Brake is the delete brake's policy, shown on the brake page.
	Brake registry.BrakePolicy
	// Metrics, when set, is served on GET /metrics: the local console's
	// Prometheus endpoint (the Lambda API leaves it nil; CloudWatch gets
	// the same figures as embedded-metric lines).
	Metrics http.Handler
	// Now is the clock; nil = time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// ErrInvalid is returned (wrapped, naming the variable) for unusable API
// configuration.
var ErrInvalid = errors.New("api: invalid configuration")

// ActionsFromEnv reads GEOBLOB_API_ACTIONS.
func ActionsFromEnv(getenv func(string) string) (bool, error) {
	e := config.NewEnv(getenv, ErrInvalid)
	on := e.Bool("GEOBLOB_API_ACTIONS", false)
	return on, e.Err()
}

// Server is the operator handler. Create it with New.
type Server struct {
	o   Options
	mux *http.ServeMux
	// guarded is mux behind cross-origin protection: browsers send
	// Sec-Fetch-Site (or Origin), so a page on another site can not make
	// the console resync anything; non-browser clients (the CLI) send
	// neither and pass.
	guarded http.Handler
	running sync.WaitGroup
}

var _ http.Handler = (*Server)(nil)

//go:embed templates/*.html assets/* openapi.json
var files embed.FS

// New returns the operator handler.
func New(o Options) (*Server, error) {
	if o.Registry == nil {
		return nil, errors.New("api: Registry is required")
	}
	if o.Identity == nil {
		o.Identity = func(*http.Request) string { return "local" }
	}
	if o.BackfillMaxAge <= 0 {
		o.BackfillMaxAge = health.DefaultBackfillMaxAge
	}
	if o.VerifyMaxAge <= 0 {
		o.VerifyMaxAge = health.DefaultVerifyMaxAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	if s.o.RunBulk == nil {
		s.o.RunBulk = s.runBulkInProcess
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	for _, r := range s.routes(pages) {
		s.mux.Handle(r.method+" "+r.pattern, r.handler)
	}
	if o.Metrics != nil {
		s.mux.Handle("GET /metrics", o.Metrics)
	}
	s.guarded = http.NewCrossOriginProtection().Handler(s.mux)
	return s, nil
}

// ServeHTTP serves the API and the console. State-changing requests from
// another origin (a page on another site) are refused.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "same-origin")
	s.guarded.ServeHTTP(w, r)
}

// Wait waits for bulk operations run in this process to end.
func (s *Server) Wait() { s.running.Wait() }

func (s *Server) runBulkInProcess(ctx context.Context, id int64) {
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		op, err := s.o.Registry.RunBulk(context.WithoutCancel(ctx), id, registry.BulkOptions{Owner: "api"})
		if err != nil {
			s.o.Logger.Error("api: bulk operation", "id", id, "err", err)
			return
		}
		s.o.Logger.Info("api: bulk operation ended", "id", id, "state", op.State, "changed", op.Changed)
	}()
}

// route is one endpoint; the OpenAPI test compares the API routes with the
// document.
type route struct {
	method, pattern string
	handler         http.Handler
}
