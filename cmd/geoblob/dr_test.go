package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	s3test.CreateBucket(t, s3test.Client(t.Context(), p), "dr-primary")
	s3test.CreateBucket(t, s3test.Client(t.Context(), s), "dr-secondary")
	for k, v := range map[string]string{
		"GEOBLOB_DATABASE_URL": dsn, "GEOBLOB_PRIMARY_BUCKET": "dr-primary", "GEOBLOB_SECONDARY_BUCKET": "dr-secondary",
		"GEOBLOB_PRIMARY_ENDPOINT": p, "GEOBLOB_SECONDARY_ENDPOINT": s, "GEOBLOB_S3_PATH_STYLE": "true",
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
	} {
		t.Setenv(k, v)
	}
	return registry.New(pgtest.Connect(t, dsn), registry.Options{})
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
	ctx := t.Context()
	sec := s3test.Client(ctx, os.Getenv("GEOBLOB_SECONDARY_ENDPOINT"))
	prim := s3test.Client(ctx, os.Getenv("GEOBLOB_PRIMARY_ENDPOINT"))
	const key = "npm/a/-/a-1.0.0.tgz"
	_, err := sec.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("dr-secondary"), Key: aws.String(key), Body: strings.NewReader("kept by the secondary")})
	require.NoError(t, err)

	out, err := cli(t, "restore", "-env", "-prefix", "npm/")
	require.NoError(t, err, out)
	assert.Regexp(t, `plan\s+1 objects`, out)
	assert.Contains(t, out, "missing on the primary")
	assert.Contains(t, out, "dry run")
	_, err = prim.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dr-primary"), Key: aws.String(key)})
	require.Error(t, err, "a dry run writes nothing")

	journal := filepath.Join(t.TempDir(), "journal")
	out, err = cli(t, "restore", "-env", "-prefix", "npm/", "-execute", "-journal", journal)
	require.NoError(t, err, out)
	assert.Contains(t, out, "restored 1 objects")
	got, err := prim.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("dr-primary"), Key: aws.String(key)})
	require.NoError(t, err)
	b, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	assert.Equal(t, "kept by the secondary", string(b))

	out, err = cli(t, "restore", "-env", "-as-of", "yesterday")
	require.Error(t, err, out)
}
