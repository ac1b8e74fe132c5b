package toolbin_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/toolbin"
)

// TestModuleRoot: from this package's directory (where go test runs) the
// module root is two levels up.
func TestModuleRoot(t *testing.T) {
	t.Parallel()
	root, ok := toolbin.ModuleRoot()
	require.True(t, ok)
	want, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	assert.Equal(t, want, root)
	assert.FileExists(t, filepath.Join(root, "go.mod"))
}
