package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/geoblob/geoblob/shared/registry"
)

// brakeScopeView is one scope of the brake page: its state and the deletes
// admitted in the window.
type brakeScopeView struct {
	Scope   string
	Deletes int64
	Held    int64
	Tripped *registry.BrakeScope
}

// brakeView is the delete brake page.
type brakeView struct {
	Brake  BrakeJSON
	Policy registry.BrakePolicy
	Window time.Duration
	Scopes []brakeScopeView
	Filter registry.HoldFilter
	// More counts held deletes of the filter beyond the listed ones.
	More  int64
	Types []string
}

const brakeListLimit = 200

func (s *Server) brakePage(r *http.Request) (any, error) {
	ctx := r.Context()
	f := registry.HoldFilter{DataType: r.URL.Query().Get("data_type"), Prefix: r.URL.Query().Get("prefix")}
	v := brakeView{Policy: s.o.Brake, Window: s.o.Brake.Window, Filter: f}
	if v.Window <= 0 {
		v.Window = registry.DefaultBrakeWindow
	}
	st, err := s.o.Registry.BrakeStatus(ctx)
	var held []registry.Row
	if err == nil {
		held, err = s.o.Registry.Held(ctx, f, "", brakeListLimit)
	}
	var counts map[string]int64
	if err == nil {
		counts, err = s.o.Registry.BrakeWindow(ctx, v.Window)
	}
	var matching int64
	if err == nil {
		matching, err = s.o.Registry.ResolveHeld(ctx, registry.ActionRelease, f, "", true)
	}
	if err != nil {
		return nil, err
	}
	v.Brake = BrakeJSON{BrakeStatus: st, HeldKeys: heldJSON(held)}
	v.More = max(matching-int64(len(held)), 0)
	scopes := map[string]*brakeScopeView{registry.ScopeAll: {Scope: registry.ScopeAll, Held: st.HeldTotal}}
	scope := func(name string) *brakeScopeView {
		if scopes[name] == nil {
			scopes[name] = &brakeScopeView{Scope: name}
		}
		return scopes[name]
	}
	for name, n := range counts {
		scope(name).Deletes = n
	}
	for name, n := range st.Held {
		scope(name).Held = n
	}
	for i := range st.Tripped {
		scope(st.Tripped[i].Scope).Tripped = &st.Tripped[i]
	}
	for name := range scopes {
		if name != registry.ScopeAll {
			v.Types = append(v.Types, name)
		}
	}
	v.Types = append(v.Types, s.o.DataTypes...)
	slices.Sort(v.Types)
	v.Types = slices.Compact(v.Types)
	v.Scopes = append(v.Scopes, *scopes[registry.ScopeAll])
	for _, name := range v.Types {
		if sc := scopes[name]; sc != nil {
			v.Scopes = append(v.Scopes, *sc)
		}
	}
	return v, nil
}

// brakeForm is the page's Release / Discard: the same action (and audit)
// as POST /api/v1/delete-brake/{action}.
func (s *Server) brakeForm(r *http.Request) (string, error) {
	a := registry.HoldAction(r.PathValue("action"))
	if a != registry.ActionRelease && a != registry.ActionDiscard {
		return "", fmt.Errorf("%w: action %q", errBadRequest, a)
	}
	if err := r.ParseForm(); err != nil {
		return "", fmt.Errorf("%w: %v", errBadRequest, err)
	}
	req := HoldRequest{DataType: r.PostFormValue("data_type"), Prefix: r.PostFormValue("prefix")}
	if _, err := s.resolveHeld(r, a, req); err != nil {
		return "", err
	}
	return "/brake", nil
}

// drView is the DR report page.
type drView struct {
	Report     registry.DRReport
	Query      registry.DRReportQuery
	Categories []registry.RiskCategory
	NextURL    string
	CSVURL     string
	RPO        time.Duration
}

func (s *Server) drReportPage(r *http.Request) (any, error) {
	q, err := s.drQuery(r.URL.Query())
	var rep registry.DRReport
	if err == nil {
		rep, err = s.o.Registry.DRReport(r.Context(), q)
	}
	if err != nil {
		return nil, err
	}
	v := drView{Report: rep, Query: q, Categories: registry.RiskCategories,
		RPO: time.Duration(rep.RPOSeconds * float64(time.Second))}
	params := url.Values{}
	for k, val := range map[string]string{"data_type": q.DataType, "category": string(q.Category)} {
		if val != "" {
			params.Set(k, val)
		}
	}
	csv := url.Values{"format": {"csv"}, "limit": {fmt.Sprint(registry.MaxDRListLimit)}}
	for k, val := range params {
		csv[k] = val
	}
	v.CSVURL = DRReportPath + "?" + csv.Encode()
	if rep.Next != "" {
		params.Set("after", rep.Next)
		v.NextURL = "/dr-report?" + params.Encode()
	}
	return v, nil
}
