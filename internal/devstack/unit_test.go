package devstack_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
)

func TestSettingsEnvIsTheFunctionsConfig(t *testing.T) {
	t.Parallel()
	s := devstack.DefaultSettings("/tmp/x y")
	cfg, err := config.FromEnv(s.Getenv(nil))
	require.NoError(t, err)
	assert.Equal(t, "geoblob-primary", cfg.Primary.Name)
	assert.Equal(t, "http://127.0.0.1:9200", cfg.Secondary.Endpoint)
	assert.Equal(t, "eu-west-1", cfg.Secondary.Region)
	assert.True(t, cfg.PathStyle)
	// The stack's credentials come with its configuration, never paired
	// with the caller's session token or taken from the caller's keys.
	caller := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDCALLER", "AWS_SECRET_ACCESS_KEY": "caller", "AWS_SESSION_TOKEN": "caller-token"}
	cfg, err = config.FromEnv(s.Getenv(func(k string) string { return caller[k] }))
	require.NoError(t, err)
	require.NotNil(t, cfg.Primary.Credentials)
	creds, err := cfg.Primary.Credentials.Retrieve(t.Context())
	require.NoError(t, err)
	assert.Equal(t, s.AccessKey, creds.AccessKeyID)
	assert.Equal(t, s.SecretKey, creds.SecretAccessKey)
	assert.Empty(t, creds.SessionToken)
	env := s.EnvFileContent()
	assert.Contains(t, env, "export GEOBLOB_DATABASE_URL='postgres://postgres@127.0.0.1:9432/geoblob?sslmode=disable'")
	assert.Contains(t, env, "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:9100")
	assert.Contains(t, env, "source '/tmp/x y/env'", "paths with spaces are quoted")
}

// TestSettingsEnvIsInTheReference: every GEOBLOB_* variable the local stack
// sets is one of the configuration reference (config.Reference).
func TestSettingsEnvIsInTheReference(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, v := range config.Reference {
		known[v.Name] = true
	}
	for _, v := range devstack.DefaultSettings("/tmp/x").Env() {
		if strings.HasPrefix(v.Name, "GEOBLOB_") {
			assert.True(t, known[v.Name], "%s is not in config.Reference", v.Name)
		}
	}
}

func TestWriteStatus(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	err := devstack.WriteStatus(&b, []string{"maven_package_file", "npm_package_file"}, []registry.TypeStatus{
		{DataType: "maven_package_file", Rows: 3, Synced: 2, Pending: 1, BytesTotal: 2048, Tombstones: 1},
		{DataType: "helm_chart_file", Rows: 1, Failed: 1},
	})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 6, b.String())
	assert.Regexp(t, `^\s*DATA TYPE\s+FILES\s+SYNCED\s+FAILED\s+PENDING\s+VERIFIED\s+DELETED\s+BYTES$`, lines[0])
	assert.Regexp(t, `maven_package_file\s+3\s+2\s+0\s+1\s+0\s+1\s+2.0 KiB$`, lines[1])
	assert.Regexp(t, `npm_package_file\s+0\s+0\s+0\s+0\s+0\s+0\s+0 B$`, lines[2])
	assert.Regexp(t, `helm_chart_file\s+1\s+0\s+1\s+0`, lines[3])
	assert.Regexp(t, `TOTAL\s+4\s+2\s+1\s+1\s+0\s+1\s+2.0 KiB$`, lines[5])
}

func TestComparisonProblems(t *testing.T) {
	t.Parallel()
	a := &devstack.ObjectSum{Key: "k", Size: 1, SHA256: strings.Repeat("a", 64)}
	b := &devstack.ObjectSum{Key: "k", Size: 1, SHA256: strings.Repeat("b", 64)}
	c := devstack.Comparison{Objects: []devstack.Compared{
		{Key: "same", Primary: a, Secondary: a},
		{Key: "diff", Primary: a, Secondary: b},
		{Key: "missing", Primary: a},
		{Key: "orphan", Secondary: b},
	}}
	require.Len(t, c.Mismatches(), 3)
	var out strings.Builder
	require.NoError(t, c.Write(&out, false))
	assert.Contains(t, out.String(), `MISMATCH "diff": SHA-256 differs`)
	assert.Contains(t, out.String(), `MISMATCH "missing": missing on secondary`)
	assert.Contains(t, out.String(), `MISMATCH "orphan": only on secondary`)
	assert.Contains(t, out.String(), "3 of 4 objects differ")
}
