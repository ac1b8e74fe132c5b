package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/registry"
)

// TypeJSON is one data type in the status.
type TypeJSON struct {
	registry.TypeStatus
	// Enabled says the type is configured (a type can have rows and be
	// disabled, or be enabled and have none yet).
	Enabled                  bool    `json:"enabled"`
	OldestUnsyncedAgeSeconds float64 `json:"oldest_unsynced_age_seconds"`
	// Progress: the type's backlog, whether it drains and when it empties.
	Progress registry.Progress `json:"progress"`
}

// StatusJSON is GET /api/v1/status.
type StatusJSON struct {
	GeneratedAt time.Time       `json:"generated_at"`
	Types       []TypeJSON      `json:"types"`
	Passes      []registry.Pass `json:"passes"`
	DeadLetters *int64          `json:"dead_letters"` // null: unknown
	// Progress is the site's backlog (every type) and its drain.
	Progress       registry.Progress `json:"progress"`
	Health         Health            `json:"health"`
	ActionsEnabled bool              `json:"actions_enabled"`
}

// RowJSON is one registry row on the wire.
type RowJSON struct {
	ID                            int64      `json:"id"`
	DataType                      string     `json:"data_type"`
	ObjectKey                     string     `json:"object_key"`
	State                         string     `json:"state"`
	Generation                    int64      `json:"generation"`
	RetryCount                    int        `json:"retry_count"`
	RetryAt                       *time.Time `json:"retry_at"`
	LastSyncFailure               string     `json:"last_sync_failure"`
	LastSyncedAt                  *time.Time `json:"last_synced_at"`
	StartedAt                     *time.Time `json:"started_at"`
	Size                          int64      `json:"size"`
	ETag                          string     `json:"etag"`
	VersionID                     string     `json:"version_id"`
	PrimarySHA256                 string     `json:"primary_sha256"`
	SecondarySHA256               string     `json:"secondary_sha256"`
	LastSequencer                 string     `json:"last_sequencer"`
	MissingOnPrimary              bool       `json:"missing_on_primary"`
	DeletedAt                     *time.Time `json:"deleted_at"`
	QuarantinedAt                 *time.Time `json:"quarantined_at"`
	VerificationState             string     `json:"verification_state"`
	VerificationStartedAt         *time.Time `json:"verification_started_at"`
	VerifiedAt                    *time.Time `json:"verified_at"`
	VerificationRetryCount        int        `json:"verification_retry_count"`
	VerificationRetryAt           *time.Time `json:"verification_retry_at"`
	VerificationFailure           string     `json:"verification_failure"`
	ChecksumMismatch              bool       `json:"checksum_mismatch"`
	PrimaryVerificationState      string     `json:"primary_verification_state"`
	PrimaryVerifiedAt             *time.Time `json:"primary_verified_at"`
	PrimaryVerificationRetryCount int        `json:"primary_verification_retry_count"`
	PrimaryVerificationRetryAt    *time.Time `json:"primary_verification_retry_at"`
	PrimaryVerificationFailure    string     `json:"primary_verification_failure"`
	PrimaryChecksumMismatch       bool       `json:"primary_checksum_mismatch"`
	PrimaryMismatchSHA256         string     `json:"primary_mismatch_sha256"`
	CreatedAt                     time.Time  `json:"created_at"`
	UpdatedAt                     time.Time  `json:"updated_at"`
}

func rowJSON(e registry.Entry) RowJSON {
	return RowJSON{ID: e.ID, DataType: e.DataType, ObjectKey: e.ObjectKey, State: e.State.String(),
		Generation: e.Generation, RetryCount: e.RetryCount, RetryAt: e.RetryAt, LastSyncFailure: e.LastSyncFailure,
		LastSyncedAt: e.LastSyncedAt, StartedAt: e.StartedAt, Size: e.Size, ETag: e.ETag, VersionID: e.VersionID,
		PrimarySHA256: e.PrimarySHA256, SecondarySHA256: e.SecondarySHA256, LastSequencer: e.LastSequencer,
		MissingOnPrimary: e.MissingOnPrimary, DeletedAt: e.DeletedAt, QuarantinedAt: e.QuarantinedAt,
		VerificationState: e.VerificationState.String(), VerificationStartedAt: e.VerificationStartedAt,
		VerifiedAt: e.VerifiedAt, VerificationRetryCount: e.VerificationRetryCount,
		VerificationRetryAt: e.VerificationRetryAt, VerificationFailure: e.VerificationFailure,
		ChecksumMismatch: e.ChecksumMismatch, PrimaryVerificationState: e.PrimaryVerificationState.String(),
		PrimaryVerifiedAt: e.PrimaryVerifiedAt, PrimaryVerificationRetryCount: e.PrimaryVerificationRetryCount,
		PrimaryVerificationRetryAt: e.PrimaryVerificationRetryAt, PrimaryVerificationFailure: e.PrimaryVerificationFailure,
		PrimaryChecksumMismatch: e.PrimaryChecksumMismatch, PrimaryMismatchSHA256: e.PrimaryMismatchSHA256,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// ListJSON is GET /api/v1/rows.
type ListJSON struct {
	Rows []RowJSON `json:"rows"`
	Next string    `json:"next,omitempty"` // cursor of the next page (after=)
}

// ActionJSON is the answer to a single-row action.
type ActionJSON struct {
	Action  string  `json:"action"`
	Changed bool    `json:"changed"`
	Row     RowJSON `json:"row"`
}

// BulkRequest is the body of POST /api/v1/bulk.
type BulkRequest struct {
	Action string `json:"action"` // resync or reverify
	// Scope is "all" (every row of the filter's data type, or of all
	// types), "failed" (rows whose sync failed for resync, whose
	// verification failed for reverify) or "filter" (Filter as given).
	Scope  string          `json:"scope"`
	Filter registry.Filter `json:"filter"`
	DryRun bool            `json:"dry_run"`
}

// BulkFilter is the filter a bulk request applies.
func (b BulkRequest) BulkFilter() (registry.Filter, error) {
	switch b.Scope {
	case "all":
		return registry.Filter{DataType: b.Filter.DataType}, nil
	case "failed":
		f := registry.Filter{DataType: b.Filter.DataType}
		if registry.Action(b.Action) == registry.ActionReverify {
			f.VerificationState = registry.VerificationFailed.String()
		} else {
			f.State = registry.StateFailed.String()
		}
		return f, nil
	case "filter", "":
		return b.Filter, nil
	}
	return registry.Filter{}, fmt.Errorf("%w: scope %q (want all, failed or filter)", registry.ErrInvalidFilter, b.Scope)
}

// DryRunJSON is the answer to a dry-run bulk request.
type DryRunJSON struct {
	Action string          `json:"action"`
	Filter registry.Filter `json:"filter"`
	Rows   int64           `json:"rows"` // rows the action would change now
}

// errForbidden refuses actions when they are disabled.
var errForbidden = errors.New("api: actions are disabled (set GEOBLOB_API_ACTIONS=true)")

// errBadRequest marks malformed requests.
var errBadRequest = errors.New("api: bad request")

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// statusCode maps errors to HTTP status codes at the edge.
func statusCode(err error) int {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, registry.ErrInvalidFilter), errors.Is(err, registry.ErrActionInvalid), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func (s *Server) jsonError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusCode(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		s.o.Logger.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

// jsonHandler adapts a handler returning (status, value, error).
func (s *Server) jsonHandler(f func(r *http.Request) (int, any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, v, err := f(r)
		if err != nil {
			s.jsonError(w, r, err)
			return
		}
		writeJSON(w, code, v)
	})
}

// status gathers the status; every part is a small indexed read.
func (s *Server) status(ctx context.Context) (StatusJSON, error) {
	types, err := s.o.Registry.TypeStatus(ctx)
	if err != nil {
		return StatusJSON{}, err
	}
	passes, err := s.o.Registry.Passes(ctx)
	if err != nil {
		return StatusJSON{}, err
	}
	baselines, err := s.o.Registry.ProgressBaselines(ctx, registry.ProgressWindow)
	if err != nil {
		return StatusJSON{}, err
	}
	out := StatusJSON{GeneratedAt: s.o.Now().UTC(), Passes: passes, ActionsEnabled: s.o.ActionsEnabled}
	if out.Passes == nil {
		out.Passes = []registry.Pass{}
	}
	byName := map[string]registry.TypeStatus{}
	for _, t := range types {
		byName[t.DataType] = t
	}
	for _, name := range s.o.DataTypes {
		t, ok := byName[name]
		if !ok {
			t = registry.TypeStatus{DataType: name}
		}
		delete(byName, name)
		out.Types = append(out.Types, s.typeJSON(t, true, baselines))
	}
	for _, t := range types {
		if _, left := byName[t.DataType]; left {
			out.Types = append(out.Types, s.typeJSON(t, false, baselines))
		}
	}
	out.Progress = registry.SiteProgress(s.o.Now(), types, baselines)
	if out.Types == nil {
		out.Types = []TypeJSON{}
	}
	if s.o.DeadLetters != nil {
		n, _, err := s.o.DeadLetters.DeadLetters(ctx)
		if err != nil {
			s.o.Logger.Warn("api: dead letters unknown", "err", err)
		} else {
			out.DeadLetters = &n
		}
	}
	out.Health = s.derivedHealth(out)
	return out, nil
}

// typeJSON is one type's status with its progress against its baseline.
func (s *Server) typeJSON(t registry.TypeStatus, enabled bool, baselines map[string]registry.ProgressSample) TypeJSON {
	return TypeJSON{TypeStatus: t, Enabled: enabled, OldestUnsyncedAgeSeconds: t.OldestUnsyncedAge.Seconds(),
		Progress: registry.TypeProgress(s.o.Now(), t, baselines)}
}

// derivedHealth is the verdict the status can give without probing
// anything: the passes ran recently and succeeded, no dead letters
// (unhealthy otherwise), and no rows needing attention (degraded
// otherwise).
func (s *Server) derivedHealth(st StatusJSON) Health {
	h := Health{Verdict: Healthy}
	fail := func(verdict string, c health.Result) {
		c.Status = health.StatusFail
		h.Checks = append(h.Checks, c)
		if verdict == Unhealthy || h.Verdict == Healthy {
			h.Verdict = verdict
		}
	}
	now := s.o.Now()
	for _, j := range []struct {
		job    string
		maxAge time.Duration
	}{{registry.JobBackfill, s.o.BackfillMaxAge}, {registry.JobVerify, s.o.VerifyMaxAge}} {
		job, maxAge := j.job, j.maxAge
		i := slices.IndexFunc(st.Passes, func(p registry.Pass) bool { return p.Job == job })
		switch {
		case i < 0:
			fail(Degraded, health.Result{Name: job + " pass", Detail: "no " + job + " pass recorded yet",
				Hint: "run `geoblob " + job + "` or check the " + job + " schedule"})
		case !st.Passes[i].OK:
			fail(Unhealthy, health.Result{Name: job + " pass", Detail: "last " + job + " pass failed: " + st.Passes[i].Error,
				Hint: "read the " + job + " function's logs"})
		case now.Sub(st.Passes[i].FinishedAt) > maxAge:
			fail(Unhealthy, health.Result{Name: job + " pass", Detail: fmt.Sprintf("last %s pass finished %s ago", job, now.Sub(st.Passes[i].FinishedAt).Round(time.Second)),
				Hint: "check the " + job + " schedule"})
		default:
			h.Checks = append(h.Checks, health.Result{Name: job + " pass", Status: health.StatusOK, Detail: "last pass ok " + st.Passes[i].FinishedAt.UTC().Format(time.RFC3339)})
		}
	}
	if st.DeadLetters != nil {
		if *st.DeadLetters > 0 {
			fail(Unhealthy, health.Result{Name: "dead letters", Detail: fmt.Sprintf("%d events in the dead-letter queue", *st.DeadLetters),
				Hint: "inspect and redrive the dead-letter queue; backfill registers what they announced"})
		} else {
			h.Checks = append(h.Checks, health.Result{Name: "dead letters", Status: health.StatusOK, Detail: "none"})
		}
	}
	var failed, vfailed, mismatch, quarantined, missing int64
	for _, t := range st.Types {
		failed += t.Failed
		vfailed += t.VerificationFailed
		mismatch += t.ChecksumMismatch + t.PrimaryChecksumMismatch
		quarantined += t.Quarantined
		missing += t.MissingOnPrimary
	}
	for _, c := range []struct {
		name string
		n    int64
		hint string
	}{
		{"failed syncs", failed, "open the registry list filtered to failed and read the failures; Resync when fixed"},
		{"failed verifications", vfailed, "filter to verification failed; Reverify when fixed"},
		{"checksum mismatches", mismatch, "filter to checksum mismatch; the rows are resynced with backoff"},
		{"quarantined rows", quarantined, "filter to quarantined; Resync after fixing the cause"},
		{"missing on primary", missing, "the primary lost objects the registry knows: check the primary bucket"},
	} {
		if c.n > 0 {
			fail(Degraded, health.Result{Name: c.name, Detail: strconv.FormatInt(c.n, 10) + " rows", Hint: c.hint})
		} else {
			h.Checks = append(h.Checks, health.Result{Name: c.name, Status: health.StatusOK, Detail: "none"})
		}
	}
	return h
}

func (s *Server) getStatus(r *http.Request) (int, any, error) {
	st, err := s.status(r.Context())
	return http.StatusOK, st, err
}

func (s *Server) getHealth(r *http.Request) (int, any, error) {
	var rep health.Report
	if s.o.Health != nil {
		rep = s.o.Health(r.Context())
	} else {
		st, err := s.status(r.Context())
		if err != nil {
			return 0, nil, err
		}
		rep = health.Report{OK: st.Health.Verdict != Unhealthy, CheckedAt: st.GeneratedAt, Checks: st.Health.Checks}
	}
	if !rep.OK {
		return http.StatusServiceUnavailable, rep, nil
	}
	return http.StatusOK, rep, nil
}

// pageQuery reads the list's query parameters (the same names as
// registry.Filter's JSON fields).
func pageQuery(v url.Values) (registry.PageQuery, error) {
	q := registry.PageQuery{
		Filter: registry.Filter{
			DataType:          v.Get("data_type"),
			State:             v.Get("state"),
			VerificationState: v.Get("verification_state"),
			KeyPrefix:         v.Get("key_prefix"),
			KeyContains:       v.Get("key_contains"),
		},
		Sort:  v.Get("sort"),
		Order: v.Get("order"),
		After: v.Get("after"),
	}
	for name, dst := range map[string]*bool{"failed_only": &q.FailedOnly, "missing_on_primary": &q.MissingOnPrimary,
		"quarantined": &q.Quarantined, "checksum_mismatch": &q.ChecksumMismatch} {
		if s := v.Get(name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return q, fmt.Errorf("%w: %s=%q is not a boolean", errBadRequest, name, s)
			}
			*dst = b
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("%w: limit=%q", errBadRequest, s)
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) getRows(r *http.Request) (int, any, error) {
	q, err := pageQuery(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	p, err := s.o.Registry.ListPage(r.Context(), q)
	if err != nil {
		return 0, nil, err
	}
	out := ListJSON{Rows: make([]RowJSON, len(p.Entries)), Next: p.Next}
	for i, e := range p.Entries {
		out.Rows[i] = rowJSON(e)
	}
	return http.StatusOK, out, nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: id %q", errBadRequest, r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) getRow(r *http.Request) (int, any, error) {
	e, err := byID(r, s.o.Registry.GetEntry)
	return http.StatusOK, rowJSON(e), err
}

// actOnRow runs a single-row action (resync or reverify).
func (s *Server) actOnRow(r *http.Request, a registry.Action) (ActionJSON, error) {
	if !s.o.ActionsEnabled {
		return ActionJSON{}, errForbidden
	}
	id, err := pathID(r)
	if err != nil {
		return ActionJSON{}, err
	}
	actor := s.o.Identity(r)
	e, changed, err := s.o.Registry.ActOnRow(r.Context(), a, id, actor)
	if err != nil {
		return ActionJSON{}, err
	}
	s.o.Logger.Info("api: row action", "action", a, "id", id, "actor", actor, "changed", changed)
	return ActionJSON{Action: string(a), Changed: changed, Row: rowJSON(e)}, nil
}

func (s *Server) postRowAction(a registry.Action) func(r *http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		out, err := s.actOnRow(r, a)
		return http.StatusOK, out, err
	}
}

// bulk answers a dry run with the count, or starts the operation.
func (s *Server) bulk(r *http.Request, req BulkRequest) (any, error) {
	if !s.o.ActionsEnabled {
		return nil, errForbidden
	}
	a := registry.Action(req.Action)
	f, err := req.BulkFilter()
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		n, err := s.o.Registry.CountAction(r.Context(), a, f)
		return DryRunJSON{Action: req.Action, Filter: f, Rows: n}, err
	}
	actor := s.o.Identity(r)
	op, err := s.o.Registry.StartBulk(r.Context(), a, f, actor)
	if err != nil {
		return nil, err
	}
	s.o.Logger.Info("api: bulk action", "action", a, "filter", f, "actor", actor, "operation", op.ID, "planned", op.Planned)
	s.o.RunBulk(r.Context(), op.ID)
	return op, nil
}

func (s *Server) postBulk(r *http.Request) (int, any, error) {
	var req BulkRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	out, err := s.bulk(r, req)
	if req.DryRun {
		return http.StatusOK, out, err
	}
	return http.StatusAccepted, out, err
}

func (s *Server) getBulkList(r *http.Request) (int, any, error) {
	ops, err := s.o.Registry.BulkOperations(r.Context(), 50)
	return listed("operations", ops, err)
}

func (s *Server) getBulk(r *http.Request) (int, any, error) {
	op, err := byID(r, s.o.Registry.BulkOperation)
	return http.StatusOK, op, err
}

func (s *Server) getAudit(r *http.Request) (int, any, error) {
	entries, err := s.o.Registry.Audit(r.Context(), 200)
	return listed("entries", entries, err)
}

// decodeBody decodes the request's JSON body (at most 64 KiB, no unknown
// fields) into v; a bad body is an errBadRequest.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	return nil
}

// listed answers a list endpoint: items under key, an empty list (never
// null) when there are none.
func listed[T any](key string, items []T, err error) (int, any, error) {
	if items == nil {
		items = []T{}
	}
	return http.StatusOK, map[string]any{key: items}, err
}

func (s *Server) getOpenAPI(w http.ResponseWriter, _ *http.Request) {
	b, err := files.ReadFile("openapi.json")
	if err != nil {
		http.Error(w, "openapi document missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// apiRoutes are the JSON API's endpoints (documented in openapi.json).
func (s *Server) apiRoutes() []route {
	return append([]route{
		{"GET", "/api/v1/status", s.jsonHandler(s.getStatus)},
		{"GET", "/api/v1/health", s.jsonHandler(s.getHealth)},
		{"GET", "/api/v1/rows", s.jsonHandler(s.getRows)},
		{"GET", "/api/v1/rows/{id}", s.jsonHandler(s.getRow)},
		{"POST", "/api/v1/rows/{id}/resync", s.jsonHandler(s.postRowAction(registry.ActionResync))},
		{"POST", "/api/v1/rows/{id}/reverify", s.jsonHandler(s.postRowAction(registry.ActionReverify))},
		{"POST", "/api/v1/bulk", s.jsonHandler(s.postBulk)},
		{"GET", "/api/v1/bulk", s.jsonHandler(s.getBulkList)},
		{"GET", "/api/v1/bulk/{id}", s.jsonHandler(s.getBulk)},
		{"GET", "/api/v1/audit", s.jsonHandler(s.getAudit)},
		{"GET", "/api/v1/openapi.json", http.HandlerFunc(s.getOpenAPI)},
	}, s.drRoutes()...)
}
