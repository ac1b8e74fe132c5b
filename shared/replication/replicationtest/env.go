// Package replicationtest gives tests a real replication environment (a
// migrated PostgreSQL registry from pgtest, primary and secondary buckets on
// two in-process gofakes3 S3 servers over HTTP, an Engine wired to them) and
// the data-type conformance suite that every data type must pass.
//
// Test binaries using it must call pgtest.Main from TestMain.
package replicationtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
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
	// Registry, when set, is used as is (no database is made; DSN and Pool
	// stay empty).
	Registry *registry.Store
	// RegistryOptions are passed to registry.New (Clock and Logger filled
	// in from this struct when unset).
	RegistryOptions registry.Options
	// PrimaryServer and SecondaryServer are the S3 endpoints holding the
	// buckets; "" starts a gofakes3 server for each.
	PrimaryServer, SecondaryServer string
	// MultipartThreshold of the engine's stores (blobstore.Options).
	MultipartThreshold int64
	// PrimaryEndpoint and SecondaryEndpoint, when set, map a server's
	// endpoint to the one the engine uses (e.g. an s3test.FaultProxy in
	// front of it).
	PrimaryEndpoint, SecondaryEndpoint func(t testing.TB, endpoint string) string
	// PrimaryMaxAttempts and SecondaryMaxAttempts, when set, cap the
	// engine's S3 clients' attempts per request (1: no retries).
	PrimaryMaxAttempts, SecondaryMaxAttempts int
	// Catalog defaults to datatype.BuiltinCatalog().
	Catalog *datatype.Catalog
	// Concurrency, MaxRounds, Copies, Brake and SentinelKey are passed to
	// replication.New.
	Concurrency int
	MaxRounds   int
	Copies      replication.CopyObserver
	Brake       registry.BrakePolicy
	SentinelKey string
	// Clock for the registry; default time.Now.
	Clock func() time.Time
	// Logger defaults to discarding, or JSON on stderr at debug level when
	// GEOBLOB_TEST_LOG is set.
	Logger *slog.Logger
}

// Env is one test's replication environment.
type Env struct {
	DSN  string
	Pool *pgxpool.Pool
	// PrimaryServer is the primary's S3 endpoint (no fault proxy).
	PrimaryServer string
	Registry      *registry.Store
	// PrimaryS3 and SecondaryS3 reach the buckets directly (never through
	// a fault proxy): use them to arrange and to assert.
	PrimaryS3   *s3admin.Bucket
	SecondaryS3 *s3admin.Bucket
	// Primary and Secondary are the stores the engine uses.
	Primary   *blobstore.Store
	Secondary *blobstore.Store
	Catalog   *datatype.Catalog
	Engine    *replication.Engine
	Logger    *slog.Logger
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
	e.Registry = opts.Registry
	if e.Registry == nil {
		e.DSN = opts.DSN
		if e.DSN == "" {
			e.DSN = registrytest.NewDB(t)
			e.Pool = pgtest.Connect(t, e.DSN)
		} else {
			e.Pool = pgtest.Connect(t, e.DSN)
			require.NoError(t, registry.Migrate(ctx, e.Pool))
		}
		ro := opts.RegistryOptions
		if ro.Clock == nil {
			ro.Clock = opts.Clock
		}
		if ro.Logger == nil {
			ro.Logger = e.Logger
		}
		e.Registry = registry.New(e.Pool, ro)
	}

	primaryEndpoint, secondaryEndpoint := opts.PrimaryServer, opts.SecondaryServer
	if primaryEndpoint == "" {
		primaryEndpoint = s3test.NewGofakes3(t)
	}
	if secondaryEndpoint == "" {
		secondaryEndpoint = s3test.NewGofakes3(t)
	}
	e.PrimaryS3 = s3test.Bucket(t, primaryEndpoint, PrimaryBucket)
	e.SecondaryS3 = s3test.Bucket(t, secondaryEndpoint, SecondaryBucket)
	e.PrimaryServer = primaryEndpoint
	store := func(endpoint string, mapEndpoint func(testing.TB, string) string, attempts int, bucket string) *blobstore.Store {
		if mapEndpoint != nil {
			endpoint = mapEndpoint(t, endpoint)
		}
		return blobstore.New(s3test.Client(ctx, endpoint, s3admin.MaxAttempts(attempts)), bucket,
			blobstore.Options{MultipartThreshold: opts.MultipartThreshold, Logger: e.Logger})
	}
	e.Primary = store(primaryEndpoint, opts.PrimaryEndpoint, opts.PrimaryMaxAttempts, PrimaryBucket)
	e.Secondary = store(secondaryEndpoint, opts.SecondaryEndpoint, opts.SecondaryMaxAttempts, SecondaryBucket)

	eng, err := replication.New(replication.Options{
		Registry:    e.Registry,
		Primary:     e.Primary,
		Secondary:   e.Secondary,
		Catalog:     e.Catalog,
		Concurrency: opts.Concurrency,
		MaxRounds:   opts.MaxRounds,
		Copies:      opts.Copies,
		Brake:       opts.Brake,
		SentinelKey: opts.SentinelKey,
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
	return s3test.Put(t, e.PrimaryS3, key, body)
}

// DeletePrimary deletes key from the primary bucket.
func (e *Env) DeletePrimary(t testing.TB, key string) {
	t.Helper()
	require.NoError(t, e.PrimaryS3.Store().Delete(t.Context(), key), "delete primary %q", key)
}

// PutSecondary writes body under key directly to the secondary bucket.
func (e *Env) PutSecondary(t testing.TB, key string, body []byte) {
	t.Helper()
	s3test.Put(t, e.SecondaryS3, key, body)
}

// SecondaryBytes returns the secondary copy of key, and false when there is none.
func (e *Env) SecondaryBytes(t testing.TB, key string) ([]byte, bool) {
	t.Helper()
	return s3test.Read(t, e.SecondaryS3, key)
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

// RequireOutcome applies ev through the engine, which must not fail, and
// checks that its outcome is want.
func (e *Env) RequireOutcome(t testing.TB, ev events.ObjectEvent, want replication.Outcome, msgAndArgs ...any) {
	t.Helper()
	out, err := e.Engine.Apply(context.Background(), ev)
	require.NoError(t, err, msgAndArgs...)
	require.Equal(t, want, out, msgAndArgs...)
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
