package datatype_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/datatype"
)

// TestBuiltinCatalogIsValid checks every built-in type: valid name, patterns,
// at least one example, and each example claimed by its own type.
func TestBuiltinCatalogIsValid(t *testing.T) {
	t.Parallel()
	types := datatype.Builtin()
	require.NotEmpty(t, types)
	c, err := datatype.NewCatalog(types...)
	require.NoError(t, err)
	for _, ty := range types {
		assert.NotEmpty(t, ty.Examples, "built-in type %s needs example keys for the conformance suite", ty.Name)
		assert.NotEmpty(t, ty.Description, "built-in type %s needs a description", ty.Name)
		for _, ex := range ty.Examples {
			got, ok := c.Match(ex)
			require.True(t, ok, ex)
			assert.Equal(t, ty.Name, got.Name, ex)
		}
	}
}

func TestBuiltinIncludesRegistryFormats(t *testing.T) {
	t.Parallel()
	c, err := datatype.BuiltinCatalog()
	require.NoError(t, err)
	for _, name := range []string{
		"maven_package_file", "npm_package_file", "nuget_package_file", "nuget_symbol_file",
		"conan_package_file", "pypi_package_file", "generic_package_file",
	} {
		_, ok := c.Lookup(name)
		assert.True(t, ok, name)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	c, err := datatype.BuiltinCatalog()
	require.NoError(t, err)
	cases := map[string]string{
		"npm/left-pad/-/left-pad-1.3.0.tgz": "npm_package_file",
		"npm/left-pad":                      "",
		"nuget/a/1.0.0/a.1.0.0.nupkg":       "nuget_package_file",
		"nuget/a/1.0.0/a.1.0.0.snupkg":      "nuget_symbol_file",
		"nuget/a/1.0.0/a.pdb":               "nuget_symbol_file",
		"pypi/x/1/x-1.tar.gz":               "pypi_package_file",
		"pypi/x/1/x-1.exe":                  "",
		"tmp/upload-123":                    "",
		"":                                  "",
		"generic/pkg/1.0/file with spaces+plus.bin": "generic_package_file",
	}
	for key, want := range cases {
		got, ok := c.Match(key)
		assert.Equal(t, want != "", ok, key)
		assert.Equal(t, want, got.Name, key)
	}
}

func TestNewCatalogRejectsBadDefinitions(t *testing.T) {
	t.Parallel()
	ok := datatype.Type{Name: "a_file", Patterns: []string{`^a/`}, Examples: []string{"a/x"}}
	cases := map[string][]datatype.Type{
		"bad name":          {{Name: "A-File", Patterns: []string{`^a/`}}},
		"no patterns":       {{Name: "a_file"}},
		"bad regexp":        {{Name: "a_file", Patterns: []string{`^a/(`}}},
		"example unmatched": {{Name: "a_file", Patterns: []string{`^a/`}, Examples: []string{"b/x"}}},
		"duplicate name":    {ok, ok},
		"example shadowed":  {ok, {Name: "b_file", Patterns: []string{`^a/x$`}, Examples: []string{"a/x"}}},
	}
	for name, types := range cases {
		_, err := datatype.NewCatalog(types...)
		assert.ErrorIs(t, err, datatype.ErrInvalid, name)
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	types := datatype.Builtin()
	got, err := datatype.Select(types, []string{"npm_package_file", " maven_package_file"})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "maven_package_file", got[0].Name)
	_, err = datatype.Select(types, []string{"npm_package_fil"})
	assert.ErrorContains(t, err, "npm_package_fil")
}

func TestBuiltinReturnsCopies(t *testing.T) {
	t.Parallel()
	a := datatype.Builtin()
	a[0].Patterns[0] = "changed"
	b := datatype.Builtin()
	assert.NotEqual(t, "changed", b[0].Patterns[0])
}

func TestWithPrefixesSelectsKeys(t *testing.T) {
	t.Parallel()
	all, err := datatype.BuiltinCatalog()
	require.NoError(t, err)
	c := all.WithPrefixes("npm/@scope/", " maven/com/ ", "")
	assert.Equal(t, []string{"npm/@scope/", "maven/com/"}, c.Prefixes())
	got, ok := c.Match("npm/@scope/util/-/util-2.0.1.tgz")
	require.True(t, ok)
	assert.Equal(t, "npm_package_file", got.Name)
	_, ok = c.Match("npm/left-pad/-/left-pad-1.3.0.tgz")
	assert.False(t, ok, "outside the selected prefixes")
	_, ok = all.Match("npm/left-pad/-/left-pad-1.3.0.tgz")
	assert.True(t, ok, "WithPrefixes must not change the original catalog")
	assert.Nil(t, all.Prefixes())
}
