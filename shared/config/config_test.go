package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/datatype"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func valid() map[string]string {
	return map[string]string{
		"GEOBLOB_DATABASE_URL":     "postgres://u@127.0.0.1:5432/geoblob",
		"GEOBLOB_PRIMARY_BUCKET":   "registry-primary",
		"GEOBLOB_SECONDARY_BUCKET": "registry-secondary",
		"AWS_REGION":               "eu-west-1",
		"GEOBLOB_SECONDARY_REGION": "eu-central-1",
	}
}

func TestFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.FromEnv(env(valid()))
	require.NoError(t, err)
	assert.Equal(t, "eu-west-1", c.Primary.Region)
	assert.Equal(t, "eu-central-1", c.Secondary.Region)
	assert.Equal(t, 10, c.CopyConcurrency)
	assert.Equal(t, int64(16<<20), c.MultipartThreshold)
	assert.Equal(t, 90*24*time.Hour, c.ReverifyInterval)
	assert.Len(t, c.Types, len(datatype.Builtin()), "all built-in types are enabled by default")
	_, err = c.Catalog()
	require.NoError(t, err)
}

func TestFromEnvNamesTheBadVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"GEOBLOB_DATABASE_URL":        {"GEOBLOB_DATABASE_URL": ""},
		"GEOBLOB_PRIMARY_BUCKET":      {"GEOBLOB_PRIMARY_BUCKET": "Bad_Bucket"},
		"GEOBLOB_SECONDARY_ENDPOINT":  {"GEOBLOB_SECONDARY_ENDPOINT": "localhost:9000"},
		"GEOBLOB_COPY_CONCURRENCY":    {"GEOBLOB_COPY_CONCURRENCY": "zero"},
		"GEOBLOB_MULTIPART_THRESHOLD": {"GEOBLOB_MULTIPART_THRESHOLD": "1024"},
		"GEOBLOB_SYNC_TIMEOUT":        {"GEOBLOB_SYNC_TIMEOUT": "-5m"},
		"GEOBLOB_S3_PATH_STYLE":       {"GEOBLOB_S3_PATH_STYLE": "yes please"},
		"GEOBLOB_LOG_LEVEL":           {"GEOBLOB_LOG_LEVEL": "loud"},
		"GEOBLOB_DATA_TYPES":          {"GEOBLOB_DATA_TYPES": "npm_package_file,rpm_package_file"},
		"GEOBLOB_EXTRA_TYPES":         {"GEOBLOB_EXTRA_TYPES": "[{"},
		"GEOBLOB_TYPE_PATTERNS":       {"GEOBLOB_TYPE_PATTERNS": `{"npm_package_file":["^npm/("]}`},
	}
	for name, override := range cases {
		e := valid()
		for k, v := range override {
			e[k] = v
		}
		_, err := config.FromEnv(env(e))
		require.ErrorIs(t, err, config.ErrInvalid, name)
		assert.Contains(t, err.Error(), name)
	}
}

func TestFromEnvTypesSelectionOverrideAndExtra(t *testing.T) {
	t.Parallel()
	e := valid()
	e["GEOBLOB_EXTRA_TYPES"] = `[{"name":"helm_chart_file","patterns":["^helm/.+\\.tgz$"],"examples":["helm/c/c-1.0.0.tgz"]}]`
	e["GEOBLOB_TYPE_PATTERNS"] = `{"npm_package_file":["^packages/npm/.+\\.tgz$"]}`
	e["GEOBLOB_DATA_TYPES"] = "npm_package_file,helm_chart_file"
	e["GEOBLOB_KEY_PREFIXES"] = "packages/npm/, helm/"
	c, err := config.FromEnv(env(e))
	require.NoError(t, err)
	cat, err := c.Catalog()
	require.NoError(t, err)
	assert.Equal(t, []string{"npm_package_file", "helm_chart_file"}, cat.Names())
	got, ok := cat.Match("packages/npm/a/-/a-1.0.0.tgz")
	require.True(t, ok)
	assert.Equal(t, "npm_package_file", got.Name)
	_, ok = cat.Match("npm/a/-/a-1.0.0.tgz")
	assert.False(t, ok, "the override replaces the default pattern")
	_, ok = cat.Match("maven/a/1/a-1.jar")
	assert.False(t, ok, "maven is not selected")
	assert.Equal(t, []string{"packages/npm/", "helm/"}, cat.Prefixes())
	_, ok = cat.Match("packages/npm-other/a-1.0.0.tgz")
	assert.False(t, ok, "outside the selected prefixes")
}

// TestFromEnvCredentials: the AWS key pair read through getenv signs every
// client (so nobody has to put credentials into the process environment);
// without a pair the clients fall back to the default chain (nil).
func TestFromEnvCredentials(t *testing.T) {
	t.Parallel()
	c, err := config.FromEnv(env(valid()))
	require.NoError(t, err)
	assert.Nil(t, c.Credentials)
	assert.Nil(t, c.Primary.Credentials)
	assert.Equal(t, "eu-west-1", c.Region)

	m := valid()
	m["AWS_ACCESS_KEY_ID"], m["AWS_SECRET_ACCESS_KEY"], m["AWS_SESSION_TOKEN"] = "AKIDSTACK", "stack-secret", "tok"
	c, err = config.FromEnv(env(m))
	require.NoError(t, err)
	require.NotNil(t, c.Credentials)
	got, err := c.Credentials.Retrieve(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "AKIDSTACK", got.AccessKeyID)
	assert.Equal(t, "stack-secret", got.SecretAccessKey)
	assert.Equal(t, "tok", got.SessionToken)
	for _, b := range []config.Bucket{c.Primary, c.Secondary} {
		require.NotNil(t, b.Credentials, b.Name)
		bc, err := b.Credentials.Retrieve(t.Context())
		require.NoError(t, err)
		assert.Equal(t, got, bc, b.Name)
	}

	delete(m, "AWS_SECRET_ACCESS_KEY")
	c, err = config.FromEnv(env(m))
	require.NoError(t, err)
	assert.Nil(t, c.Credentials, "half a key pair is no credentials")
}
