package logtail_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/logtail"
)

func TestTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.log")
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("early line\n", 100)+"last words\n"), 0o600))
	assert.Equal(t, "last words", logtail.Tail(path, 11), "only the tail, trimmed")
	assert.Equal(t, strings.Repeat("early line\n", 100)+"last words", logtail.Tail(path, 1<<20), "a short file whole")
	assert.Contains(t, logtail.Tail(filepath.Join(t.TempDir(), "missing.log"), 10), "(no log: ")
}
