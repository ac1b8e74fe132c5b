package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

func TestDeleteBrakeAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	registrytest.HoldDelete(t, e.store, "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	registrytest.HoldDelete(t, e.store, "npm_package_file", "npm/b/-/b-1.0.0.tgz")
	registrytest.HoldDelete(t, e.store, "maven_package_file", "maven/x/y/1.0/y-1.0.jar")

	var b api.BrakeJSON
	require.Equal(t, http.StatusOK, e.getJSON(t, "/api/v1/delete-brake", &b))
	require.Len(t, b.Tripped, 1)
	assert.Equal(t, registry.ScopeAll, b.Tripped[0].Scope)
	assert.EqualValues(t, 3, b.HeldTotal)
	assert.EqualValues(t, 2, b.Held["npm_package_file"])
	require.Len(t, b.HeldKeys, 3)
	assert.Equal(t, "maven/x/y/1.0/y-1.0.jar", b.HeldKeys[0].Key)

	code, body := e.do(t, "POST", "/api/v1/delete-brake/release", api.HoldRequest{DataType: "npm_package_file", DryRun: true})
	require.Equal(t, http.StatusOK, code, string(body))
	var res api.HoldResultJSON
	require.NoError(t, json.Unmarshal(body, &res))
	assert.EqualValues(t, 2, res.Rows)
	row, err := e.store.Get(t.Context(), "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	require.NoError(t, err)
	assert.Equal(t, registry.StateFailed, row.State, "a dry run changes nothing")

	code, body = e.do(t, "POST", "/api/v1/delete-brake/release", api.HoldRequest{Prefix: "npm/a/"}, "X-User", "alice")
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, json.Unmarshal(body, &res))
	assert.EqualValues(t, 1, res.Rows)
	row, err = e.store.Get(t.Context(), "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	require.NoError(t, err)
	assert.Equal(t, registry.StatePending, row.State)

	code, body = e.do(t, "POST", "/api/v1/delete-brake/discard", api.HoldRequest{}, "X-User", "bob")
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, json.Unmarshal(body, &res))
	assert.EqualValues(t, 2, res.Rows)
	require.Equal(t, http.StatusOK, e.getJSON(t, "/api/v1/delete-brake", &b))
	assert.Empty(t, b.Tripped)
	assert.Zero(t, b.HeldTotal)

	audit, err := e.store.Audit(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, audit, 2)
	assert.Equal(t, "delete_brake_discard", audit[0].Action)
	assert.Equal(t, "test:bob", audit[0].Actor)
	assert.Equal(t, "test:alice", audit[1].Actor)

	code, _ = e.do(t, "POST", "/api/v1/delete-brake/release", map[string]any{"bogus": 1})
	assert.Equal(t, http.StatusBadRequest, code)
	ro := newEnv(t, func(o *api.Options) { o.ActionsEnabled = false })
	code, _ = ro.do(t, "POST", "/api/v1/delete-brake/release", api.HoldRequest{})
	assert.Equal(t, http.StatusForbidden, code)
}

// GET /api/v1/dr-report answers JSON by default and CSV on request, and
// refuses bad parameters with 400.
func TestDRReportAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	registrytest.HoldDelete(t, e.store, "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	var rep registry.DRReport
	require.Equal(t, http.StatusOK, e.getJSON(t, "/api/v1/dr-report", &rep))
	require.Len(t, rep.Objects, 1)
	assert.Equal(t, registry.RiskHeldDelete, rep.Objects[0].Category)
	assert.EqualValues(t, 1, rep.Categories[registry.RiskHeldDelete].Objects)

	resp, err := http.Get(e.srv.URL + "/api/v1/dr-report?format=csv")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	recs, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, api.DRReportCSVHeader, recs[0])
	var objects [][]string
	for _, r := range recs {
		if r[0] == "object" {
			objects = append(objects, r[:7])
		}
	}
	assert.Equal(t, [][]string{{"object", "npm_package_file", "held_delete", "npm/a/-/a-1.0.0.tgz", "failed", "1", "0"}}, objects)

	for _, q := range []string{"format=xml", "limit=0", "limit=x", "category=bogus", "after=!!!"} {
		code, body := e.do(t, "GET", "/api/v1/dr-report?"+q, nil)
		assert.Equal(t, http.StatusBadRequest, code, "%s: %s", q, body)
	}
}

// The brake page's Release / Discard are refused from another site, like
// every console action; from the console itself they act and are audited.
func TestBrakeFormCrossSiteRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const key = "npm/a/-/a-1.0.0.tgz"
	registrytest.HoldDelete(t, e.store, "npm_package_file", key)
	for _, action := range []string{"release", "discard"} {
		for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "http://evil.example"}} {
			code, _ := e.do(t, "POST", "/brake/"+action, nil, hdr...)
			assert.Equal(t, http.StatusForbidden, code, "%s %v", action, hdr)
		}
	}
	row, err := e.store.Get(t.Context(), "npm_package_file", key)
	require.NoError(t, err)
	assert.Equal(t, registry.StateFailed, row.State, "still held (a held delete is failed, never due)")

	req, err := http.NewRequest("POST", e.srv.URL+"/brake/discard", strings.NewReader("data_type=npm_package_file"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("X-User", "carol")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	row, err = e.store.Get(t.Context(), "npm_package_file", key)
	require.NoError(t, err)
	assert.Equal(t, registry.StateSynced, row.State, "discarded: the tombstone is synced")
	audit, err := e.store.Audit(t.Context(), 1)
	require.NoError(t, err)
	require.Len(t, audit, 1)
	assert.Equal(t, "delete_brake_discard", audit[0].Action)
	assert.Equal(t, "test:carol", audit[0].Actor)
}
