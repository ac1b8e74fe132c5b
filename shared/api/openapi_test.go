package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
)

// TestOpenAPIMatchesRoutes fails when an API route is not documented in
// openapi.json, or a documented operation does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	b, err := files.ReadFile("openapi.json")
	require.NoError(t, err)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.True(t, strings.HasPrefix(doc.OpenAPI, "3."))
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	h, err := New(Options{Registry: &registry.Store{}})
	require.NoError(t, err)
	var routed []string
	for _, r := range h.apiRoutes() {
		routed = append(routed, r.method+" "+r.pattern)
	}
	sort.Strings(documented)
	sort.Strings(routed)
	assert.Equal(t, documented, routed)

	// every documented operation is served (not 404/405 from the mux)
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		path = strings.ReplaceAll(path, "{id}", "1")
		req := httptest.NewRequest(method, path, strings.NewReader("{"))
		_, pattern := h.mux.Handler(req)
		assert.NotEmpty(t, pattern, op)
		assert.True(t, strings.HasPrefix(pattern, method+" /api/v1/"), "%s is served by %q", op, pattern)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, 200, rec.Code)
	assert.JSONEq(t, string(b), rec.Body.String())
}
