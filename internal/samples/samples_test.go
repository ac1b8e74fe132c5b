package samples_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/shared/datatype"
)

func TestForCatalogCoversEveryType(t *testing.T) {
	t.Parallel()
	cat, err := datatype.BuiltinCatalog()
	require.NoError(t, err)
	files, err := samples.ForCatalog(cat, samples.Set{ExtraPerType: 3, BigSize: 1 << 20, Odd: true})
	require.NoError(t, err)

	perType := map[string]int{}
	seen := map[string]bool{}
	var big, odd bool
	for _, f := range files {
		require.False(t, seen[f.Key], "duplicate key %s", f.Key)
		seen[f.Key] = true
		got, ok := cat.Match(f.Key)
		require.True(t, ok, f.Key)
		assert.Equal(t, got.Name, f.DataType, f.Key)
		perType[f.DataType]++
		big = big || f.Size == 1<<20
		odd = odd || (strings.Contains(f.Key, " ") && strings.Contains(f.Key, "+") && strings.Contains(f.Key, "ü"))
	}
	for _, typ := range cat.Types() {
		assert.GreaterOrEqual(t, perType[typ.Name], len(typ.Examples)+3, typ.Name)
		for _, ex := range typ.Examples {
			assert.True(t, seen[ex], "example %s missing", ex)
		}
	}
	assert.True(t, big, "a big file")
	assert.True(t, odd, "an odd key")
}

func TestContentFormats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		key  string
		want string // a file that must be inside the archive, or "" for non-archives
	}{
		{"maven/com/example/app/1.0.0/app-1.0.0.jar", "META-INF/MANIFEST.MF"},
		{"nuget/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.nupkg", "newtonsoft.json.nuspec"},
		{"nuget/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.snupkg", "newtonsoft.json.nuspec"},
		{"pypi/requests/2.32.3/requests-2.32.3-py3-none-any.whl", "requests-2.32.3.dist-info/METADATA"},
		{"npm/@scope/util/-/util-2.0.1.tgz", "package/package.json"},
		{"pypi/requests/2.32.3/requests-2.32.3.tar.gz", "requests-2.32.3/PKG-INFO"},
		{"conan/zlib/1.3.1/_/_/0/package/4f2a/0/conan_package.tgz", "conaninfo.txt"},
	}
	for _, c := range cases {
		b, err := samples.Content(c.key, 1000)
		require.NoError(t, err, c.key)
		again, err := samples.Content(c.key, 1000)
		require.NoError(t, err)
		assert.Equal(t, b, again, "deterministic %s", c.key)
		assert.Contains(t, entries(t, c.key, b), c.want, c.key)
	}
	for _, key := range []string{"maven/com/example/app/1.0.0/app-1.0.0.pom", "maven/com/example/app/maven-metadata.xml"} {
		b, err := samples.Content(key, 0)
		require.NoError(t, err)
		var v struct{ XMLName xml.Name }
		require.NoError(t, xml.Unmarshal(b, &v), key)
	}
	b, err := samples.Content("nuget/symbols/X.pdb/abc/X.pdb", 12345)
	require.NoError(t, err)
	assert.Len(t, b, 12345)
}

func entries(t *testing.T, key string, b []byte) []string {
	t.Helper()
	var names []string
	if strings.HasSuffix(key, "gz") {
		gz, err := gzip.NewReader(bytes.NewReader(b))
		require.NoError(t, err)
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return names
			}
			require.NoError(t, err)
			names = append(names, h.Name)
		}
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}
