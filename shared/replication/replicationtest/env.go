// Package replicationtest gives tests a real replication environment (a
// migrated PostgreSQL registry from pgtest, primary and secondary buckets on
// two in-process gofakes3 S3 servers over HTTP, an Engine wired to them) and
// the data-type conformance suite that every data type must pass.
//
// Test binaries using it must call pgtest.Main from TestMain.
package replicationtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// Bucket names used by every Env.
const (
	PrimaryBucket   = "geoblob-primary"
	SecondaryBucket = "geoblob-secondary"
)

// EnvOptions adjust NewEnv. The zero value gives a plain environment.
type EnvOptions struct {
	// DSN of an empty database to migrate and use instead of a fresh pgtest
	// database (e.g. on a private cluster the test restarts).
	DSN string
	// SecondaryEndpoint, when set, maps the secondary gofakes3 endpoint to
	// the one the engine uses (e.g. an s3test.FaultProxy in front of it).
	SecondaryEndpoint func(t testing.TB, endpoint string) string
	// SecondaryClientOptions adjust the engine's secondary S3 client.
	SecondaryClientOptions []func(*s3.Options)
	// Catalog defaults to datatype.BuiltinCatalog().
	Catalog *datatype.Catalog
	// Concurrency and MaxRounds are passed to replication.New.
	Concurrency int
	MaxRounds   int
	// Clock for the registry; default time.Now.
	Clock func() time.Time
	// Logger defaults to discarding, or JSON on stderr at debug level when
	// GEOBLOB_TEST_LOG is set.
	Logger *slog.Logger
}

// Env is one test's replication environment.
type Env struct {
	DSN      string
	Pool     *pgxpool.Pool
	Registry *registry.Store
	// PrimaryClient and SecondaryClient talk to the servers directly
	// (never through a fault proxy): use them to arrange and to assert.
	PrimaryClient   *s3.Client
	SecondaryClient *s3.Client
	// Primary and Secondary are the stores the engine uses.
	Primary   *blobstore.Store
	Secondary *blobstore.Store
	Catalog   *datatype.Catalog
	Engine    *replication.Engine
	Logger    *slog.Logger
}

// registryTemplate is the pgtest template key of a migrated registry.
const registryTemplate = "replicationtest-registry"

// MigratedDB returns the DSN of a fresh, migrated registry database.
func MigratedDB(t testing.TB) string {
	t.Helper()
	return pgtest.NewDBFrom(t, registryTemplate, func(ctx context.Context, dsn string) error {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return err
		}
		defer pool.Close()
		return registry.Migrate(ctx, pool)
	})
}

// NewEnv builds an environment; everything is closed when the test ends.
func NewEnv(t testing.TB, opts EnvOptions) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{Catalog: opts.Catalog, Logger: opts.Logger}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("GEOBLOB_TEST_LOG") != "" {
			e.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
		}
	}
	if e.Catalog == nil {
		c, err := datatype.BuiltinCatalog()
		require.NoError(t, err)
		e.Catalog = c
	}
	e.DSN = opts.DSN
	if e.DSN == "" {
		e.DSN = MigratedDB(t)
		e.Pool = pgtest.Connect(t, e.DSN)
	} else {
		e.Pool = pgtest.Connect(t, e.DSN)
		require.NoError(t, registry.Migrate(ctx, e.Pool))
	}
	e.Registry = registry.New(e.Pool, registry.Options{Clock: opts.Clock, Logger: e.Logger})

	primaryEndpoint := s3test.NewGofakes3(t)
	secondaryEndpoint := s3test.NewGofakes3(t)
	e.PrimaryClient = s3test.Client(ctx, primaryEndpoint)
	e.SecondaryClient = s3test.Client(ctx, secondaryEndpoint)
	s3test.CreateBucket(t, e.PrimaryClient, PrimaryBucket)
	s3test.CreateBucket(t, e.SecondaryClient, SecondaryBucket)
	engineSecondary := e.SecondaryClient
	if opts.SecondaryEndpoint != nil || len(opts.SecondaryClientOptions) > 0 {
		ep := secondaryEndpoint
		if opts.SecondaryEndpoint != nil {
			ep = opts.SecondaryEndpoint(t, secondaryEndpoint)
		}
		engineSecondary = s3test.Client(ctx, ep, opts.SecondaryClientOptions...)
	}
	e.Primary = blobstore.New(e.PrimaryClient, PrimaryBucket, blobstore.Options{Logger: e.Logger})
	e.Secondary = blobstore.New(engineSecondary, SecondaryBucket, blobstore.Options{Logger: e.Logger})

	eng, err := replication.New(replication.Options{
		Registry:    e.Registry,
		Primary:     e.Primary,
		Secondary:   e.Secondary,
		Catalog:     e.Catalog,
		Concurrency: opts.Concurrency,
		MaxRounds:   opts.MaxRounds,
		Logger:      e.Logger,
	})
	require.NoError(t, err)
	e.Engine = eng
	return e
}

// PutPrimary uploads body under key to the primary bucket and returns the
// object's ETag (unquoted).
func (e *Env) PutPrimary(t testing.TB, key string, body []byte) string {
	t.Helper()
	out, err := e.PrimaryClient.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(PrimaryBucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	require.NoError(t, err, "put primary %q", key)
	return strings.Trim(aws.ToString(out.ETag), `"`)
}

// DeletePrimary deletes key from the primary bucket.
func (e *Env) DeletePrimary(t testing.TB, key string) {
	t.Helper()
	_, err := e.PrimaryClient.DeleteObject(context.Background(), &s3.DeleteObjectInput{
		Bucket: aws.String(PrimaryBucket), Key: aws.String(key),
	})
	require.NoError(t, err, "delete primary %q", key)
}

// PutSecondary writes body under key directly to the secondary bucket.
func (e *Env) PutSecondary(t testing.TB, key string, body []byte) {
	t.Helper()
	_, err := e.SecondaryClient.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(SecondaryBucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	require.NoError(t, err, "put secondary %q", key)
}

// SecondaryBytes returns the secondary copy of key, and false when there is none.
func (e *Env) SecondaryBytes(t testing.TB, key string) ([]byte, bool) {
	t.Helper()
	out, err := e.SecondaryClient.GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String(SecondaryBucket), Key: aws.String(key),
	})
	if err != nil {
		var nsk interface{ ErrorCode() string }
		if errors.As(err, &nsk) && (nsk.ErrorCode() == "NoSuchKey" || nsk.ErrorCode() == "NotFound") {
			return nil, false
		}
		require.NoError(t, err, "get secondary %q", key)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	return b, true
}

// Upload puts body on the primary under key and applies its ObjectCreated
// event (sequencer seq) through the engine, which must not fail; it
// returns the engine's outcome.
func (e *Env) Upload(t testing.TB, key string, body []byte, seq string) replication.Outcome {
	t.Helper()
	e.PutPrimary(t, key, body)
	out, err := e.Engine.Apply(context.Background(), CreatedEvent(key, int64(len(body)), seq))
	require.NoError(t, err, "apply the ObjectCreated event of %q", key)
	return out
}

// RequireFailedOnce checks that key's row failed its first attempt (state
// failed, one retry counted, missing on the primary as missing says) and is
// due again after after but no later than within from now; it returns the
// row.
func (e *Env) RequireFailedOnce(t testing.TB, key string, missing bool, after time.Time, within time.Duration) registry.Row {
	t.Helper()
	row := e.Row(t, key)
	require.Equal(t, registry.StateFailed, row.State, "row of %q", key)
	require.Equal(t, missing, row.MissingOnPrimary, "missing on primary of %q", key)
	require.Equal(t, 1, row.RetryCount, "retries of %q", key)
	require.NotNil(t, row.RetryAt, "retry time of %q", key)
	require.True(t, row.RetryAt.After(after), "retry_at %s must be after %s", row.RetryAt, after)
	require.False(t, row.RetryAt.After(time.Now().Add(within)), "retry_at %s beyond %s from now", row.RetryAt, within)
	return row
}

// RequireSynced checks that the secondary holds body under key and that
// key's row is live, synced, with body's SHA-256 as its primary checksum.
// msgAndArgs describe a missing copy.
func (e *Env) RequireSynced(t testing.TB, key string, body []byte, msgAndArgs ...any) {
	t.Helper()
	got, ok := e.SecondaryBytes(t, key)
	require.True(t, ok, msgAndArgs...)
	require.Equal(t, body, got, "secondary copy of %q", key)
	row := e.Row(t, key)
	require.False(t, row.Tombstoned(), "row of %q is a tombstone", key)
	require.Equal(t, registry.StateSynced, row.State, "row of %q", key)
	require.Equal(t, SHA256(body), row.PrimarySHA256, "primary checksum of %q", key)
}

// RequireDeleted checks that the secondary has no copy of key and that
// key's row is a synced tombstone (the delete was propagated). msgAndArgs
// describe a copy left behind.
func (e *Env) RequireDeleted(t testing.TB, key string, msgAndArgs ...any) {
	t.Helper()
	_, ok := e.SecondaryBytes(t, key)
	require.False(t, ok, msgAndArgs...)
	row := e.Row(t, key)
	require.True(t, row.Tombstoned(), "row of %q is live", key)
	require.Equal(t, registry.StateSynced, row.State, "row of %q", key)
}

// Row returns the registry row of key (its data type from the catalog).
func (e *Env) Row(t testing.TB, key string) registry.Row {
	t.Helper()
	typ, ok := e.Catalog.Match(key)
	require.True(t, ok, "key %q matches no data type", key)
	row, err := e.Registry.Get(context.Background(), typ.Name, key)
	require.NoError(t, err, "registry row of %q", key)
	return row
}

// HasRow reports whether key has a registry row.
func (e *Env) HasRow(t testing.TB, key string) bool {
	t.Helper()
	typ, ok := e.Catalog.Match(key)
	if !ok {
		return false
	}
	_, err := e.Registry.Get(context.Background(), typ.Name, key)
	if errors.Is(err, registry.ErrNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}

// SHA256 returns the lower-case hex SHA-256 of b.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Content returns deterministic test content for key, n bytes long.
func Content(key string, n int) []byte {
	seed := []byte(key + "\n")
	out := make([]byte, n)
	for i := range out {
		out[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return out
}
