package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
	"github.com/geoblob/geoblob/shared/verify"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// noJitter makes backoffs exact.
func noJitter() float64 { return 0 }

// env is one test world: a migrated registry database, two S3 buckets
// (primary and secondary on separate servers), the replication engine and a
// verifier, all on one injected clock.
type env struct {
	t         *testing.T
	ctx       context.Context
	clock     *registrytest.Clock
	pool      *pgxpool.Pool
	reg       *registry.Store
	pc, sc    *s3admin.Bucket // direct, to arrange behind geoblob's back
	primary   *blobstore.Store
	secondary *blobstore.Store
	engine    *replication.Engine
	catalog   *datatype.Catalog
	seq       int
}

type envOptions struct {
	primaryEndpoint, secondaryEndpoint string
	multipartThreshold                 int64
}

// newEnv builds an env (replicationtest's, on two gofakes3 servers unless
// o names endpoints) on the env's clock with exact backoffs.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), clock: registrytest.NewClock(time.Time{})}
	re := rt.NewEnv(t, rt.EnvOptions{
		PrimaryServer: o.primaryEndpoint, SecondaryServer: o.secondaryEndpoint, MultipartThreshold: o.multipartThreshold,
		RegistryOptions: registry.Options{Clock: e.clock.Now, Retry: registry.GeoBackoff{Rand: noJitter},
			VerificationRetry: registry.GeoBackoff{Cap: verify.DefaultBackoffCap, MissingCap: verify.DefaultBackoffCap, Rand: noJitter}},
	})
	e.pool, e.reg, e.catalog, e.engine = re.Pool, re.Registry, re.Catalog, re.Engine
	e.pc, e.sc, e.primary, e.secondary = re.PrimaryS3, re.SecondaryS3, re.Primary, re.Secondary
	return e
}

// newVerifierEnv is newEnv with default options and a verifier with
// default options over it.
func newVerifierEnv(t *testing.T) (*env, *verify.Verifier) {
	t.Helper()
	e := newEnv(t, envOptions{})
	return e, e.verifier(verify.Options{})
}

// verifier returns a verifier over the env with opts (clock and logger
// filled in; the registry's verification backoff is exact).
func (e *env) verifier(opts verify.Options) *verify.Verifier {
	e.t.Helper()
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v, err := verify.New(e.reg,
		e.primary, e.secondary, opts)
	require.NoError(e.t, err)
	return v
}

// run does one verification pass and fails the test on a registry error.
func (e *env) run(v *verify.Verifier, ro verify.RunOptions) verify.Report {
	e.t.Helper()
	rep, err := v.Run(e.ctx, ro)
	require.NoError(e.t, err)
	return rep
}

// upload writes data to the primary under a fresh generic key and records
// its ObjectCreated event (as onCreate would, without copying).
func (e *env) upload(data []byte) string {
	e.t.Helper()
	e.seq++
	key := fmt.Sprintf("generic/pkg/%d.0.0/file-%d.bin", e.seq, e.seq)
	e.putPrimary(key, data)
	e.recordCreated(key)
	return key
}

// uploadSynced uploads data as upload does and syncs it (it must be the
// only row due), returning its key.
func (e *env) uploadSynced(data []byte) string {
	e.t.Helper()
	key := e.upload(data)
	require.Equal(e.t, 1, e.syncDue(), "sync of %s", key)
	return key
}

// finishLost finishes secondary claim c with res and requires that the
// compare-and-set lost (nothing written); it returns FinishSecondary's
// resync.
func (e *env) finishLost(c registry.Claim, res registry.VerifyResult) bool {
	e.t.Helper()
	won, resync, err := e.reg.FinishSecondary(e.ctx, c, res)
	require.NoError(e.t, err)
	assert.False(e.t, won, "a stale claim's finish must lose")
	return resync
}

func (e *env) putPrimary(key string, data []byte) {
	e.t.Helper()
	_, err := e.primary.Put(e.ctx, key, bytes.NewReader(data), int64(len(data)), blobstore.PutAttrs{})
	require.NoError(e.t, err)
}

func (e *env) recordCreated(key string) {
	e.t.Helper()
	obj, err := e.primary.Head(e.ctx, key)
	require.NoError(e.t, err)
	typ, ok := e.catalog.Match(key)
	require.True(e.t, ok, "key %s has no data type", key)
	_, err = e.reg.RecordCreated(e.ctx, registry.ObjectEvent{
		DataType: typ.Name, Key: key, Size: obj.Size, ETag: obj.ETag, VersionID: obj.VersionID,
		EventTime: e.clock.Now(),
	})
	require.NoError(e.t, err)
}

// syncDue runs the backfill path once: ClaimDue, then the engine's SyncClaim
// for every claim. It returns the number of rows synced.
func (e *env) syncDue() int {
	e.t.Helper()
	claims, err := e.reg.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 1000})
	require.NoError(e.t, err)
	n := 0
	for _, c := range claims {
		out, err := e.engine.SyncClaim(e.ctx, c)
		require.NoError(e.t, err, "sync %s", c.ObjectKey)
		if out == replication.OutcomeSynced {
			n++
		}
	}
	return n
}

func (e *env) row(key string) registry.Row {
	e.t.Helper()
	typ, ok := e.catalog.Match(key)
	require.True(e.t, ok)
	r, err := e.reg.Get(e.ctx, typ.Name, key)
	require.NoError(e.t, err)
	return r
}

func (e *env) secondaryBytes(key string) []byte {
	e.t.Helper()
	b, ok := s3test.Read(e.t, e.sc, key)
	require.True(e.t, ok, "no secondary copy of %s", key)
	return b
}

// putBehindBack overwrites an object with a plain PutObject (no geoblob
// code, no event), as an outside actor or a failing disk would.
func putBehindBack(t *testing.T, bucket *s3admin.Bucket, key string, data []byte) {
	t.Helper()
	s3test.Put(t, bucket, key, data)
}

func deleteBehindBack(t *testing.T, bucket *s3admin.Bucket, key string) {
	t.Helper()
	require.NoError(t, bucket.Store().Delete(t.Context(), key))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// content returns n deterministic bytes seeded by seed.
func content(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
