package app_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/verify"
)

// TestReadmeDocumentsEveryVariable keeps the README's configuration tables in
// step with every variable the functions read.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	var all []config.Var
	all = append(all, config.Reference...)
	all = append(all, backfill.Vars...)
	all = append(all, verify.Reference...)
	all = append(all, health.Reference...)
	all = append(all, api.Reference...)
	for _, v := range all {
		assert.True(t, strings.Contains(string(readme), "| `"+v.Name+"` |"), "README.md must document %s", v.Name)
	}
}
