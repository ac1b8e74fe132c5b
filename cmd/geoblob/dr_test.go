package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// drEnv points the process environment (-env) at a migrated registry and
// two gofakes3 buckets, and returns the registry.
func drEnv(t *testing.T) *registry.Store {
	t.Helper()
	dsn := registrytest.NewDB(t)
	p, s := s3test.NewGofakes3(t), s3test.NewGofakes3(t)
	s3test.Bucket(t, p, "dr-primary")
	s3test.Bucket(t, s, "dr-secondary")
	for k, v := range map[string]string{
		"GEOBLOB_DATABASE_URL": dsn, "GEOBLOB_PRIMARY_BUCKET": "dr-primary", "GEOBLOB_SECONDARY_BUCKET": "dr-secondary",
		"GEOBLOB_PRIMARY_ENDPOINT": p, "GEOBLOB_SECONDARY_ENDPOINT": s, "GEOBLOB_S3_PATH_STYLE": "true",
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
	} {
		t.Setenv(k, v)
	}
	return registry.New(pgtest.Connect(t, dsn), registry.Options{})
}

// drBuckets are the buckets of drEnv, reached directly.
func drBuckets(t *testing.T) (primary, secondary *s3admin.Bucket) {
	t.Helper()
	return s3test.Bucket(t, os.Getenv("GEOBLOB_PRIMARY_ENDPOINT"), "dr-primary"),
		s3test.Bucket(t, os.Getenv("GEOBLOB_SECONDARY_ENDPOINT"), "dr-secondary")
}

func TestBrakeCommands(t *testing.T) {
	reg := drEnv(t)
	require.NoError(t, reg.TripBrake(t.Context(), registry.ScopeAll, "test trip"))
	registrytest.HoldDelete(t, reg, "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	registrytest.HoldDelete(t, reg, "maven_package_file", "maven/x/y/1.0/y-1.0.jar")

	out, err := cli(t, "brake", "-env")
	require.NoError(t, err, out)
	assert.Contains(t, out, "TRIPPED")
	assert.Contains(t, out, "test trip")
	assert.Regexp(t, `held deletes\s+2`, out)

	out, err = cli(t, "brake", "release", "-env", "-type", "npm_package_file", "-dry-run")
	require.NoError(t, err, out)
	assert.Contains(t, out, "would change 1 held deletes")

	out, err = cli(t, "brake", "-env", "release", "-type", "npm_package_file")
	require.NoError(t, err, out)
	assert.Contains(t, out, "released 1 held deletes")
	row, err := reg.Get(t.Context(), "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	require.NoError(t, err)
	assert.Equal(t, registry.StatePending, row.State)

	out, err = cli(t, "brake", "discard", "-env")
	require.NoError(t, err, out)
	assert.Contains(t, out, "discarded 1 held deletes")
	row, err = reg.Get(t.Context(), "maven_package_file", "maven/x/y/1.0/y-1.0.jar")
	require.NoError(t, err)
	assert.Equal(t, registry.StateSynced, row.State)

	out, err = cli(t, "brake", "-env", "-json")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"tripped": []`)
	audit, err := reg.Audit(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, audit, 2)
	assert.Equal(t, "delete_brake_discard", audit[0].Action)
	assert.True(t, strings.HasPrefix(audit[0].Actor, "cli:"), audit[0].Actor)
}

func TestRestoreCommand(t *testing.T) {
	drEnv(t)
	prim, sec := drBuckets(t)
	const key = "npm/a/-/a-1.0.0.tgz"
	s3test.Put(t, sec, key, []byte("kept by the secondary"))

	out, err := cli(t, "restore", "-env", "-prefix", "npm/")
	require.NoError(t, err, out)
	assert.Regexp(t, `plan\s+1 objects`, out)
	assert.Contains(t, out, "missing on the primary")
	assert.Contains(t, out, "dry run")
	_, found := s3test.Read(t, prim, key)
	require.False(t, found, "a dry run writes nothing")

	journal := filepath.Join(t.TempDir(), "journal")
	out, err = cli(t, "restore", "-env", "-prefix", "npm/", "-execute", "-journal", journal)
	require.NoError(t, err, out)
	assert.Contains(t, out, "restored 1 objects")
	got, _ := s3test.Read(t, prim, key)
	assert.Equal(t, "kept by the secondary", string(got))

	out, err = cli(t, "restore", "-env", "-as-of", "yesterday")
	require.Error(t, err, out)
}
