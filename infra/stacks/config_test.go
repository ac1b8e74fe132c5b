package stacks

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mapGetter(m map[string]any) ContextGetter {
	return func(k string) any { return m[k] }
}

func validContext() map[string]any {
	return map[string]any{
		"primaryRegion":   "eu-central-1",
		"secondaryRegion": "eu-west-1",
		"primaryBucket":   "acme-packages",
	}
}

func TestConfigFromContextDefaults(t *testing.T) {
	t.Parallel()
	c, err := ConfigFromContext(mapGetter(validContext()))
	require.NoError(t, err)
	assert.Equal(t, "geoblob", c.Prefix)
	assert.Equal(t, "rate(1 minute)", c.BackfillSchedule)
	assert.Equal(t, "rate(5 minutes)", c.VerifySchedule)
	assert.Equal(t, 2160*time.Hour, c.ReverifyInterval)
	assert.Equal(t, 10, c.Concurrency["onCreate"])
	assert.Empty(t, c.DataTypes)
	assert.Equal(t, "../build", c.AssetRoot)
}

func TestConfigFromContextValues(t *testing.T) {
	t.Parallel()
	ctx := validContext()
	// -c values arrive as strings, cdk.json values as JSON types.
	ctx["dataTypes"] = []any{"npm_package_file", "pypi_package_file"}
	ctx["copyConcurrency"] = float64(4)
	ctx["concurrency.onCreate"] = "25"
	ctx["concurrency.backfill"] = float64(0)
	ctx["reverifyInterval"] = "720h"
	ctx["verifySchedule"] = "cron(0 3 * * ? *)"
	ctx["createPrimaryBucket"] = "true"
	ctx["databaseMaxAcu"] = "8"
	ctx["logRetentionDays"] = float64(90)
	ctx["functions"] = "onCreate, migrate"
	ctx["extraEnv"] = "GEOBLOB_VERIFY_MODE=fast, GEOBLOB_BACKFILL_BUDGET=5m"
	c, err := ConfigFromContext(mapGetter(ctx))
	require.NoError(t, err)
	assert.Equal(t, []string{"npm_package_file", "pypi_package_file"}, c.DataTypes)
	assert.Equal(t, 4, c.CopyConcurrency)
	assert.Equal(t, 25, c.Concurrency["onCreate"])
	assert.Equal(t, 0, c.Concurrency["backfill"])
	assert.Equal(t, 720*time.Hour, c.ReverifyInterval)
	assert.Equal(t, "cron(0 3 * * ? *)", c.VerifySchedule)
	assert.True(t, c.CreatePrimaryBucket)
	assert.InDelta(t, 8, c.DatabaseMaxACU, 0)
	assert.Equal(t, 90, c.LogRetentionDays)
	assert.Equal(t, []string{"onCreate", "migrate"}, c.Functions)
	assert.Equal(t, map[string]string{"GEOBLOB_VERIFY_MODE": "fast", "GEOBLOB_BACKFILL_BUDGET": "5m"}, c.ExtraEnv)

	ctx["extraEnv"] = map[string]any{"GEOBLOB_VERIFY_BUDGET": "8m"}
	c, err = ConfigFromContext(mapGetter(ctx))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"GEOBLOB_VERIFY_BUDGET": "8m"}, c.ExtraEnv)
}

func TestConfigRejectsBadParameters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key string
		value     any
		want      string
	}{
		{"missing region", "primaryRegion", "", "primaryRegion is required"},
		{"bad region", "secondaryRegion", "europe", `secondaryRegion "europe" is not an AWS region`},
		{"same region", "secondaryRegion", "eu-central-1", "secondaryRegion must differ from primaryRegion"},
		{"missing bucket", "primaryBucket", "", "primaryBucket is required"},
		{"upper-case bucket", "primaryBucket", "Acme_Packages", "primaryBucket"},
		{"short bucket", "secondaryBucket", "ab", "must be 3 to 63 characters"},
		{"ip bucket", "primaryBucket", "192.168.1.10", "IP address"},
		{"dots bucket", "primaryBucket", "acme..packages", "two adjacent dots"},
		{"same bucket", "secondaryBucket", "acme-packages", "must differ from primaryBucket"},
		{"unknown data type", "dataTypes", "npm_package_file,rubygems_file", "unknown data type(s) rubygems_file"},
		{"bad schedule", "backfillSchedule", "every minute", "backfillSchedule"},
		{"plural rate of one", "verifySchedule", "rate(1 minutes)", "singular unit"},
		{"bad duration", "reverifyInterval", "90 days", "reverifyInterval"},
		{"negative duration", "reverifyInterval", "-1h", "must be a positive"},
		{"zero copy concurrency", "copyConcurrency", "0", "copyConcurrency must be from 1"},
		{"negative cap", "concurrency.onCreate", "-1", "concurrency.onCreate must be from 0"},
		{"not a number", "concurrency.verify", "lots", "concurrency.verify must be an integer"},
		{"negative sync-request instances", "syncRequestConcurrency", "-1", "syncRequestConcurrency must be from 0 (derived)"},
		{"bad retention", "logRetentionDays", "31", "logRetentionDays 31 is not a CloudWatch Logs retention"},
		{"bad level", "logLevel", "loud", "logLevel"},
		{"bad email", "alarmEmail", "ops-at-example", "alarmEmail"},
		{"bad bool", "createPrimaryBucket", "yes please", "createPrimaryBucket must be true or false"},
		{"unknown function", "functions", "onCreate,replicate,migrate", `"replicate" is not a known function`},
		{"no migrate", "functions", "onCreate", "must include migrate"},
		{"batch size", "batchSize", "11", "batchSize must be from 1 to 10"},
		{"acu", "databaseMaxAcu", "0.25", "databaseMinAcu"},
		{"endpoint", "primaryEndpoint", "localhost:4566", "must be an http"},
		{"kms", "primaryKmsKeyArn", "alias/registry", "primaryKmsKeyArn"},
		{"account", "account", "12345", "12-digit"},
		{"extra env not geoblob", "extraEnv", "AWS_REGION=x", "not a GEOBLOB_* variable"},
		{"extra env managed", "extraEnv", `{"GEOBLOB_PRIMARY_BUCKET":"x"}`, "set by the stack"},
		{"extra env syntax", "extraEnv", "GEOBLOB_X", "must be NAME=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := validContext()
			ctx[tc.key] = tc.value
			_, err := ConfigFromContext(mapGetter(ctx))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ConfigFromContext(mapGetter(map[string]any{"primaryRegion": "x", "dataTypes": "nope"}))
	require.Error(t, err)
	for _, key := range []string{"primaryRegion", "secondaryRegion", "primaryBucket", "dataTypes"} {
		assert.Contains(t, err.Error(), key)
	}
}

func TestValidateBucketName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"abc", "my.registry-1", "a1b2c3"} {
		assert.NoError(t, ValidateBucketName(ok), ok)
	}
	for _, bad := range []string{"ab", "-abc", "abc-", "ABC", "a_b", "xn--abc", "abc-s3alias", "a..b", "10.0.0.1"} {
		assert.Error(t, ValidateBucketName(bad), bad)
	}
}

func TestDiscoverFunctions(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, f := range []string{"onCreate", "migrate", "notAFunction"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, "functions", f), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, "functions", f, "main.go"), []byte("package main\n"), 0o644))
	}
	// A directory without main.go (being written) is not deployed yet.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "functions", "verify"), 0o755))
	got, err := DiscoverFunctions(root)
	require.NoError(t, err)
	assert.Equal(t, []string{"onCreate", "migrate"}, got)
}

// TestBuildReportsMissingBootstrap checks that a missing asset is a clear
// error, not the panic Code_FromAsset would raise.
func TestBuildReportsMissingBootstrap(t *testing.T) {
	c := baseConfig()
	c.AssetRoot = t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	_, err := Build(app, c)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), filepath.Join(c.AssetRoot, "onCreate", "bootstrap")+" is missing")
	assert.Contains(t, err.Error(), "make lambdas")
}

func TestBuildRejectsInvalidConfig(t *testing.T) {
	c := baseConfig()
	c.DataTypes = []string{"rubygems_file"}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	_, err := Build(app, c)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Empty(t, *app.Node().Children(), "nothing is built from an invalid configuration")
}

// TestConfigSplitsOnCreateBetweenMappings: with dispatch on, onCreate's
// reserved concurrency must hold its event mapping and its sync-request
// mapping, 2 instances each at least; without dispatch, or unreserved,
// there is nothing to split.
func TestConfigSplitsOnCreateBetweenMappings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  map[string]any
		want string // "" = valid
	}{
		{"default split", nil, ""},
		{"documented cap", map[string]any{"concurrency.onCreate": "30", "syncRequestConcurrency": "25"}, ""},
		{"too small for two mappings", map[string]any{"concurrency.onCreate": "3"},
			"concurrency.onCreate must be 0 (unreserved) or at least 4 with dispatch on"},
		{"sync requests take every instance", map[string]any{"syncRequestConcurrency": "9"},
			"syncRequestConcurrency must be from 2 to concurrency.onCreate - 2 (8)"},
		{"one sync-request instance", map[string]any{"syncRequestConcurrency": "1"}, "syncRequestConcurrency must be from 2"},
		{"unreserved", map[string]any{"concurrency.onCreate": "0", "syncRequestConcurrency": "40"}, ""},
		{"no dispatch", map[string]any{"concurrency.onCreate": "3", "dispatch": "false"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := validContext()
			ctx["functions"] = "onCreate,onDelete,backfill,migrate"
			for k, v := range tc.set {
				ctx[k] = v
			}
			c, err := ConfigFromContext(mapGetter(ctx))
			if tc.want != "" {
				require.ErrorIs(t, err, ErrInvalidConfig)
				assert.Contains(t, err.Error(), tc.want)
				return
			}
			require.NoError(t, err)
			if dispatching(c) && c.Concurrency["onCreate"] > 0 {
				assert.Equal(t, c.Concurrency["onCreate"], c.EventInstances("onCreate")+c.SyncRequestInstances(),
					"the two mappings share the reservation exactly")
			}
		})
	}
}
