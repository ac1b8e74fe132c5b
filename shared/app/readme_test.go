package app_test

import (
	"os"
	"sort"
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
// step with the one configuration reference.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, v := range config.Reference {
		assert.True(t, strings.Contains(string(readme), "| `"+v.Name+"` |"), "README.md must document %s", v.Name)
	}
}

// readAll runs every configuration reader of the functions through getenv
// and returns what they read (errors included, so that a value that is
// rejected differs from one that is accepted).
func readAll(getenv func(string) string) []any {
	cfg, cerr := config.FromEnv(getenv)
	bcfg, berr := backfill.ConfigFromEnv(getenv)
	vopts, verr := verify.OptionsFromEnv(getenv, cfg.ReverifyInterval)
	hopts, queues, herr := health.OptionsFromEnv(getenv)
	actions, aerr := api.ActionsFromEnv(getenv)
	return []any{cfg, cerr, bcfg, berr, vopts, verr, hopts, queues, herr, actions, aerr}
}

// base is the smallest valid configuration.
var base = map[string]string{
	"GEOBLOB_DATABASE_URL":     "postgres://u@127.0.0.1:5432/geoblob",
	"GEOBLOB_PRIMARY_BUCKET":   "registry-primary",
	"GEOBLOB_SECONDARY_BUCKET": "registry-secondary",
	"AWS_REGION":               "eu-west-1",
}

// TestReferenceIsWhatTheFunctionsRead: config.Reference lists exactly the
// GEOBLOB_* variables the functions' configuration readers read, and each
// documented default is the one applied (reading the default explicitly
// gives the same configuration as leaving the variable unset).
func TestReferenceIsWhatTheFunctionsRead(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	readAll(func(k string) string {
		read[k] = true
		return base[k]
	})
	var readNames, refNames []string
	for k := range read {
		if strings.HasPrefix(k, "GEOBLOB_") {
			readNames = append(readNames, k)
		}
	}
	for _, v := range config.Reference {
		refNames = append(refNames, v.Name)
	}
	sort.Strings(readNames)
	sort.Strings(refNames)
	assert.Equal(t, refNames, readNames, "config.Reference must list exactly the variables the readers read")

	unset := readAll(func(k string) string { return base[k] })
	for _, v := range config.Reference {
		if v.Default == "" || strings.HasPrefix(v.Default, "(") || strings.HasPrefix(v.Default, "AWS_") {
			continue // no default, or one that is not a value (documented in words)
		}
		explicit := readAll(func(k string) string {
			if k == v.Name {
				return v.Default
			}
			return base[k]
		})
		assert.Equal(t, unset, explicit, "%s: the documented default %q is not the one applied", v.Name, v.Default)
	}
}
