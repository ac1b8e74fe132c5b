package registry_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/toolbin"
)

// tableName matches the table's name as an SQL identifier (not inside
// another name such as the metric geoblob_registry_up).
var tableName = regexp.MustCompile(`(^|[^A-Za-z0-9_])blob_registry([^A-Za-z0-9_]|$)`)

// TestOnlyRegistryTouchesBlobRegistry enforces that shared/registry owns
// every statement on blob_registry: no Go or SQL file of the module outside
// shared/registry (tests and the CDK app in infra/ aside) names the table.
func TestOnlyRegistryTouchesBlobRegistry(t *testing.T) {
	t.Parallel()
	root, ok := toolbin.ModuleRoot()
	require.True(t, ok, "module root not found from shared/registry")
	skipDirs := map[string]bool{
		filepath.Join(root, "shared", "registry"): true,
		filepath.Join(root, "infra"):              true,
		filepath.Join(root, ".git"):               true,
		filepath.Join(root, ".local"):             true,
		filepath.Join(root, "node_modules"):       true,
	}
	var offenders []string
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDirs[path] {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if strings.HasSuffix(name, "_test.go") || !(strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".sql")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		if tableName.Match(data) {
			rel, _ := filepath.Rel(root, path)
			offenders = append(offenders, rel)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, checked, 50, "the walk must see the module's files")
	assert.Empty(t, offenders, "blob_registry is named outside shared/registry: move the statement into a registry method")
}
