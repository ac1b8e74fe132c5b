package app_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/toolbin"
)

const module = "github.com/geoblob/geoblob"

// TestDependenciesPointOneWay enforces the layout: functions/* and
// cmd/geoblob → shared/app (wiring) → domain packages → registry,
// blobstore. No package of shared/ (which is what runs in Lambda) imports
// internal/ (local-only tooling), cmd/ or functions/; no package of shared/
// but shared/app imports shared/app; and no function binary links a test
// helper package. The test helper packages under shared/ (names ending in
// "test", e.g. registrytest) are exempt from the first rule: only tests
// and internal/ import them, which the last rule checks for the binaries.
func TestDependenciesPointOneWay(t *testing.T) {
	t.Parallel()
	root, ok := toolbin.ModuleRoot()
	require.True(t, ok, "module root not found from shared/app")

	var offenders []string
	checked := 0
	for _, top := range []string{"shared", "functions", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			pkg := path.Dir(filepath.ToSlash(rel))
			if isTestHelper(pkg) {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, spec := range f.Imports {
				imp, _ := strconv.Unquote(spec.Path.Value)
				dep, ok := strings.CutPrefix(imp, module+"/")
				if !ok {
					continue
				}
				if why := forbidden(pkg, dep); why != "" {
					offenders = append(offenders, rel+" imports "+dep+": "+why)
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	assert.Greater(t, checked, 50, "the walk must see the module's files")
	assert.Empty(t, offenders)
}

// isTestHelper reports a test helper package (registrytest, s3test, ...).
func isTestHelper(pkg string) bool { return strings.HasSuffix(path.Base(pkg), "test") }

// forbidden says why package pkg (a directory relative to the module
// root) may not import dep, or "" when it may.
func forbidden(pkg, dep string) string {
	under := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	switch {
	case under(pkg, "shared") && (under(dep, "internal") || under(dep, "cmd") || under(dep, "functions")):
		return "shared/ is what runs in Lambda: no local tooling, CLI or function code"
	case under(pkg, "shared") && pkg != "shared/app" && under(dep, "shared/app"):
		return "a domain package never imports the wiring (move the wiring into shared/app)"
	case (under(pkg, "shared") || under(pkg, "functions")) && isTestHelper(dep):
		return "test helpers are not linked into the function binaries"
	}
	return ""
}

// TestForbiddenCatchesEachRule: each rule of forbidden fires.
func TestForbiddenCatchesEachRule(t *testing.T) {
	t.Parallel()
	assert.NotEmpty(t, forbidden("shared/verify", "internal/devstack"))
	assert.NotEmpty(t, forbidden("shared/backfill", "cmd/geoblob"))
	assert.NotEmpty(t, forbidden("shared/verify", "shared/app"))
	assert.NotEmpty(t, forbidden("functions/verify", "shared/registry/registrytest"))
	assert.Empty(t, forbidden("shared/app", "shared/verify"))
	assert.Empty(t, forbidden("functions/verify", "shared/app"))
	assert.Empty(t, forbidden("cmd/geoblob", "internal/devstack"))
}
