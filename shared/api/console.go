package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/geoblob/geoblob/shared/registry"
)

// pages are the console's templates, one set per page (each page defines
// "title" and "content" for the shared layout).
type pages map[string]*template.Template

func parseTemplates() (pages, error) {
	funcs := template.FuncMap{
		"bytes": func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
		"num":   func(n int64) string { return humanize.Comma(n) },
		"pct": func(n, of int64) string {
			if of <= 0 {
				return "0"
			}
			return strconv.FormatFloat(float64(n)*100/float64(of), 'f', 1, 64)
		},
		"age": func(d time.Duration) string {
			if d <= 0 {
				return "—"
			}
			return d.Round(time.Second).String()
		},
		"deref": func(p *int64) int64 { return *p },
		"neg":   func(f float64) float64 { return -f },
		"secs": func(f float64) string {
			if f <= 0 {
				return "—"
			}
			return time.Duration(f * float64(time.Second)).Round(time.Second).String()
		},
		"share": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) },
		"list":  func(a ...string) []string { return a },
		"dict": func(kv ...any) (map[string]any, error) {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("api: dict wants string keys")
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"bar": bar,
		"bulkButtons": func() []bulkButton {
			return []bulkButton{
				{"resync", "all", "Resync all"}, {"reverify", "all", "Reverify all"},
				{"resync", "failed", "Resync all failed"}, {"reverify", "failed", "Reverify all failed"},
				{"resync", "filter", "Resync filtered"}, {"reverify", "filter", "Reverify filtered"},
			}
		},
		"short": func(s string) string {
			if len(s) > 12 {
				return s[:12] + "…"
			}
			return s
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("api: templates: %w", err)
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("api: templates: %w", err)
	}
	out := pages{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(files, n)
		if err != nil {
			return nil, fmt.Errorf("api: template %s: %w", n, err)
		}
		out[name] = t
	}
	return out, nil
}

// bulkButton is one bulk action button of the list page.
type bulkButton struct{ Action, Scope, Label string }

// segment is one part of a stacked bar, in percent of the bar's width.
type segment struct {
	Class string
	X, W  float64
}

// bar lays out a stacked bar of total: args are class, count pairs.
func bar(total int64, args ...any) ([]segment, error) {
	var out []segment
	x := 0.0
	for i := 0; i+1 < len(args); i += 2 {
		class, ok1 := args[i].(string)
		n, ok2 := args[i+1].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("api: bar wants class, int64 pairs")
		}
		if total <= 0 || n <= 0 {
			continue
		}
		w := float64(n) * 100 / float64(total)
		out = append(out, segment{Class: class, X: x, W: w})
		x += w
	}
	return out, nil
}

// view is what every page template gets.
type view struct {
	Now            time.Time
	ActionsEnabled bool
	Data           any
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, p pages, name string, code int, data any) {
	var buf bytes.Buffer
	v := view{Now: s.o.Now(), ActionsEnabled: s.o.ActionsEnabled, Data: data}
	if err := p[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.o.Logger.Error("api: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// page serves the page tmpl with the data load returns, or the error page
// when load fails.
func (s *Server) page(p pages, tmpl string, load func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := load(r)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		s.render(w, p, tmpl, http.StatusOK, data)
	}
}

// form serves a form action: it redirects (303) to the page act returns,
// or shows the error page when act fails.
func (s *Server) form(p pages, act func(*http.Request) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		to, err := act(r)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	}
}

// byID fetches what the request's {id} path value names.
func byID[T any](r *http.Request, fetch func(context.Context, int64) (T, error)) (T, error) {
	id, err := pathID(r)
	if err != nil {
		var zero T
		return zero, err
	}
	return fetch(r.Context(), id)
}

func (s *Server) pageError(w http.ResponseWriter, r *http.Request, p pages, err error) {
	code := statusCode(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		s.o.Logger.Error("api: page failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	s.render(w, p, "error", code, map[string]any{"Code": code, "Message": msg})
}

// Rel renders a time relative to now ("3m ago", "in 2h") with the absolute
// time for a tooltip.
type Rel struct {
	T   *time.Time
	Now time.Time
}

// String is the relative form.
func (r Rel) String() string {
	if r.T == nil {
		return "never"
	}
	d := r.Now.Sub(*r.T)
	if d < 0 {
		return "in " + humanize.RelTime(*r.T, r.Now, "", "")
	}
	return humanize.RelTime(*r.T, r.Now, "ago", "")
}

// Abs is the absolute UTC time.
func (r Rel) Abs() string {
	if r.T == nil {
		return ""
	}
	return r.T.UTC().Format(time.RFC3339)
}

// listView is the registry list page.
type listView struct {
	Type    string
	Query   registry.PageQuery
	Rows    []rowView
	Next    string
	NextURL string
	Status  *TypeJSON
	Params  url.Values // current filter (hidden inputs of bulk forms)
	States  []string
	VStates []string
}

type rowView struct {
	RowJSON
	LastSynced, Verified, RetryAt, Created, Updated Rel
}

func (s *Server) rowView(e registry.Entry) rowView {
	now := s.o.Now()
	return rowView{RowJSON: rowJSON(e), LastSynced: Rel{e.LastSyncedAt, now}, Verified: Rel{e.VerifiedAt, now},
		RetryAt: Rel{e.RetryAt, now}, Created: Rel{&e.CreatedAt, now}, Updated: Rel{&e.UpdatedAt, now}}
}

func (s *Server) overviewPage(r *http.Request) (any, error) {
	return s.status(r.Context())
}

func (s *Server) listPage(r *http.Request) (any, error) {
	v := r.URL.Query()
	v.Set("data_type", r.PathValue("type"))
	q, err := pageQuery(v)
	if err == nil && q.Limit == 0 {
		q.Limit = 50
	}
	var page registry.Page
	if err == nil {
		page, err = s.o.Registry.ListPage(r.Context(), q)
	}
	if err != nil {
		return nil, err
	}
	lv := listView{Type: q.DataType, Query: q, Next: page.Next, States: []string{"pending", "started", "synced", "failed"},
		VStates: []string{"pending", "started", "succeeded", "failed", "disabled"}}
	params := url.Values{}
	for k, vals := range v {
		if k != "after" && k != "data_type" && len(vals) > 0 && vals[0] != "" {
			params.Set(k, vals[0])
		}
	}
	lv.Params = params
	if page.Next != "" {
		next := url.Values{}
		for k, vals := range params {
			next[k] = vals
		}
		next.Set("after", page.Next)
		lv.NextURL = "/types/" + url.PathEscape(q.DataType) + "?" + next.Encode()
	}
	for _, e := range page.Entries {
		lv.Rows = append(lv.Rows, s.rowView(e))
	}
	if st, err := s.status(r.Context()); err == nil {
		for i := range st.Types {
			if st.Types[i].DataType == q.DataType {
				lv.Status = &st.Types[i]
			}
		}
	}
	return lv, nil
}

func (s *Server) rowPage(r *http.Request) (any, error) {
	e, err := byID(r, s.o.Registry.GetEntry)
	if err != nil {
		return nil, err
	}
	return s.rowView(e), nil
}

// back is where a form action returns to: the page it came from when that
// is a page of this console, else the row.
func back(r *http.Request, fallback string) string {
	if ref := r.FormValue("back"); strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") {
		return ref
	}
	return fallback
}

func (s *Server) rowActionForm(r *http.Request) (string, error) {
	a := registry.Action(r.PathValue("action"))
	if a != registry.ActionResync && a != registry.ActionReverify {
		return "", fmt.Errorf("%w: action %q", errBadRequest, a)
	}
	if _, err := s.actOnRow(r, a); err != nil {
		return "", err
	}
	return back(r, "/rows/"+r.PathValue("id")), nil
}

func (s *Server) bulkForm(r *http.Request) (string, error) {
	if err := r.ParseForm(); err != nil {
		return "", fmt.Errorf("%w: %v", errBadRequest, err)
	}
	q, err := pageQuery(r.PostForm)
	if err != nil {
		return "", err
	}
	req := BulkRequest{Action: r.PostFormValue("action"), Scope: r.PostFormValue("scope"), Filter: q.Filter}
	out, err := s.bulk(r, req)
	if err != nil {
		return "", err
	}
	op, ok := out.(registry.BulkOperation)
	if !ok {
		return "", errors.New("api: bulk did not start")
	}
	return "/bulk/" + strconv.FormatInt(op.ID, 10), nil
}

type bulkView struct {
	Op      registry.BulkOperation
	Percent string
	Created Rel
}

func (s *Server) bulkPage(r *http.Request) (any, error) {
	op, err := byID(r, s.o.Registry.BulkOperation)
	if err != nil {
		return nil, err
	}
	pct := "100"
	if op.State == registry.BulkRunning && op.Planned > 0 {
		pct = strconv.FormatFloat(min(float64(op.Changed)*100/float64(op.Planned), 100), 'f', 1, 64)
	}
	return bulkView{Op: op, Percent: pct, Created: Rel{&op.CreatedAt, s.o.Now()}}, nil
}

func (s *Server) auditPage(r *http.Request) (any, error) {
	entries, err := s.o.Registry.Audit(r.Context(), 200)
	var ops []registry.BulkOperation
	if err == nil {
		ops, err = s.o.Registry.BulkOperations(r.Context(), 20)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"Entries": entries, "Ops": ops}, nil
}

func assets() http.Handler {
	sub, err := fs.Sub(files, "assets")
	if err != nil {
		return http.NotFoundHandler()
	}
	return http.StripPrefix("/assets/", http.FileServerFS(sub))
}

// routes are the API routes plus the console's pages.
func (s *Server) routes(p pages) []route {
	return append(s.apiRoutes(),
		route{"GET", "/{$}", s.page(p, "overview", s.overviewPage)},
		route{"GET", "/types/{type}", s.page(p, "list", s.listPage)},
		route{"GET", "/rows/{id}", s.page(p, "row", s.rowPage)},
		route{"POST", "/rows/{id}/{action}", s.form(p, s.rowActionForm)},
		route{"POST", "/bulk", s.form(p, s.bulkForm)},
		route{"GET", "/bulk/{id}", s.page(p, "bulk", s.bulkPage)},
		route{"GET", "/audit", s.page(p, "audit", s.auditPage)},
		route{"GET", "/brake", s.page(p, "brake", s.brakePage)},
		route{"POST", "/brake/{action}", s.form(p, s.brakeForm)},
		route{"GET", "/dr-report", s.page(p, "drreport", s.drReportPage)},
		route{"GET", "/assets/", assets()},
	)
}
