package api

import (
	"bytes"
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

func (s *Server) overviewPage(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st, err := s.status(r.Context())
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		s.render(w, p, "overview", http.StatusOK, st)
	}
}

func (s *Server) listPage(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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
			s.pageError(w, r, p, err)
			return
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
		s.render(w, p, "list", http.StatusOK, lv)
	}
}

func (s *Server) rowPage(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		var e registry.Entry
		if err == nil {
			e, err = s.o.Registry.GetEntry(r.Context(), id)
		}
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		s.render(w, p, "row", http.StatusOK, s.rowView(e))
	}
}

// back is where a form action returns to: the page it came from when that
// is a page of this console, else the row.
func back(r *http.Request, fallback string) string {
	if ref := r.FormValue("back"); strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") {
		return ref
	}
	return fallback
}

func (s *Server) rowActionForm(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := registry.Action(r.PathValue("action"))
		if a != registry.ActionResync && a != registry.ActionReverify {
			s.pageError(w, r, p, fmt.Errorf("%w: action %q", errBadRequest, a))
			return
		}
		if _, err := s.actOnRow(r, a); err != nil {
			s.pageError(w, r, p, err)
			return
		}
		http.Redirect(w, r, back(r, "/rows/"+r.PathValue("id")), http.StatusSeeOther)
	}
}

func (s *Server) bulkForm(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			s.pageError(w, r, p, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		q, err := pageQuery(r.PostForm)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		req := BulkRequest{Action: r.PostFormValue("action"), Scope: r.PostFormValue("scope"), Filter: q.Filter}
		out, err := s.bulk(r, req)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		op, ok := out.(registry.BulkOperation)
		if !ok {
			s.pageError(w, r, p, errors.New("api: bulk did not start"))
			return
		}
		http.Redirect(w, r, "/bulk/"+strconv.FormatInt(op.ID, 10), http.StatusSeeOther)
	}
}

type bulkView struct {
	Op      registry.BulkOperation
	Percent string
	Created Rel
}

func (s *Server) bulkPage(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		var op registry.BulkOperation
		if err == nil {
			op, err = s.o.Registry.BulkOperation(r.Context(), id)
		}
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		pct := "100"
		if op.State == registry.BulkRunning && op.Planned > 0 {
			pct = strconv.FormatFloat(min(float64(op.Changed)*100/float64(op.Planned), 100), 'f', 1, 64)
		}
		s.render(w, p, "bulk", http.StatusOK, bulkView{Op: op, Percent: pct, Created: Rel{&op.CreatedAt, s.o.Now()}})
	}
}

func (s *Server) auditPage(p pages) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		entries, err := s.o.Registry.Audit(r.Context(), 200)
		var ops []registry.BulkOperation
		if err == nil {
			ops, err = s.o.Registry.BulkOperations(r.Context(), 20)
		}
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		s.render(w, p, "audit", http.StatusOK, map[string]any{"Entries": entries, "Ops": ops})
	}
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
		route{"GET", "/{$}", s.overviewPage(p)},
		route{"GET", "/types/{type}", s.listPage(p)},
		route{"GET", "/rows/{id}", s.rowPage(p)},
		route{"POST", "/rows/{id}/{action}", s.rowActionForm(p)},
		route{"POST", "/bulk", s.bulkForm(p)},
		route{"GET", "/bulk/{id}", s.bulkPage(p)},
		route{"GET", "/audit", s.auditPage(p)},
		route{"GET", "/brake", s.brakePage(p)},
		route{"POST", "/brake/{action}", s.brakeForm(p)},
		route{"GET", "/dr-report", s.drReportPage(p)},
		route{"GET", "/assets/", assets()},
	)
}
