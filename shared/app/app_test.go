package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/handler"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

func TestMain(m *testing.M) {
	if marker := os.Getenv(envSigtermChild); marker != "" {
		os.Exit(sigtermChild(marker))
	}
	pgtest.Main(m)
}

func TestSecretURL(t *testing.T) {
	t.Parallel()
	u, err := app.SecretURL(`{"host":"db.internal","port":5432,"username":"geo blob","password":"p@ss/word","dbname":"registry","engine":"postgres"}`, "")
	require.NoError(t, err)
	assert.Equal(t, "postgres://geo%20blob:p%40ss%2Fword@db.internal:5432/registry", u)

	u, err = app.SecretURL(`{"host":"db.internal","port":"6432","username":"u","password":"p"}`, "proxy.example")
	require.NoError(t, err)
	assert.Equal(t, "postgres://u:p@proxy.example:6432/postgres", u)

	_, err = app.SecretURL(`{"host":"h","username":"u"}`, "")
	assert.ErrorIs(t, err, app.ErrSecret)
	assert.Contains(t, err.Error(), "password")
	_, err = app.SecretURL(`not json`, "")
	assert.ErrorIs(t, err, app.ErrSecret)
	_, err = app.SecretURL(`{"host":"h","port":"x","username":"u","password":"p"}`, "")
	assert.ErrorIs(t, err, app.ErrSecret)
}

type staticSecret string

func (s staticSecret) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return &secretsmanager.GetSecretValueOutput{ARN: in.SecretId, SecretString: aws.String(string(s))}, nil
}

func TestDatabaseURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := app.DatabaseURL(ctx, config.Config{DatabaseURL: "postgres://a@b/c"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "postgres://a@b/c", u)

	cfg := config.Config{DatabaseSecretARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:geoblob-db-AbCdEf", DatabaseHost: "proxy.internal"}
	u, err = app.DatabaseURL(ctx, cfg, staticSecret(`{"host":"writer.internal","port":5432,"username":"u","password":"p","dbname":"geoblob"}`))
	require.NoError(t, err)
	assert.Equal(t, "postgres://u:p@proxy.internal:5432/geoblob?sslmode=verify-full", u, "TLS verified by default")
}

// TestBuildReplicates builds the App from environment-style configuration
// against real PostgreSQL and two gofakes3 endpoints and replicates an event.
func blobPutAttrs() blobstore.PutAttrs { return blobstore.PutAttrs{} }

func TestBuildReplicates(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := context.Background()
	primary, secondary := s3test.NewGofakes3(t), s3test.NewGofakes3(t)
	s3test.Bucket(t, primary, rt.PrimaryBucket)
	s3test.Bucket(t, secondary, rt.SecondaryBucket)
	env := map[string]string{
		"GEOBLOB_DATABASE_URL":       registrytest.NewDB(t),
		"GEOBLOB_PRIMARY_BUCKET":     rt.PrimaryBucket,
		"GEOBLOB_PRIMARY_ENDPOINT":   primary,
		"GEOBLOB_SECONDARY_BUCKET":   rt.SecondaryBucket,
		"GEOBLOB_SECONDARY_ENDPOINT": secondary,
		"GEOBLOB_S3_PATH_STYLE":      "true",
		"AWS_REGION":                 s3test.Region,
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	a, err := app.Build(ctx, cfg, nil)
	require.NoError(t, err)
	t.Cleanup(a.Close)

	key := "maven/com/example/app/1.0.0/app-1.0.0.jar"
	_, err = a.Primary.Put(ctx, key, strings.NewReader("jar"), 3, blobPutAttrs())
	require.NoError(t, err)
	payload, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "s3-put.json"))
	require.NoError(t, err)
	payload = []byte(strings.ReplaceAll(string(payload), "amzn-s3-demo-bucket", rt.PrimaryBucket))
	out, err := a.Handler.Handle(ctx, payload)
	require.NoError(t, err)
	sum, ok := out.(handler.Summary)
	require.True(t, ok)
	assert.Equal(t, 1, sum.Synced)
	obj, err := a.Secondary.Head(ctx, key)
	require.NoError(t, err)
	assert.EqualValues(t, 3, obj.Size)
}
