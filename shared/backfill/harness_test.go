package backfill_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one test's world: a migrated registry, two S3 endpoints (each
// behind a fault proxy), the engine and a backfill runner.
type env struct {
	t         testing.TB
	pool      *pgxpool.Pool
	reg       *registry.Store
	catalog   *datatype.Catalog
	primaryS3 *s3admin.Bucket // direct, for test setup
	second3   *s3admin.Bucket
	pEndpoint string           // the primary's server (no proxy)
	primary   *blobstore.Store // through the proxy
	secondary *blobstore.Store
	engine    *replication.Engine
	pproxy    *s3test.FaultProxy
	sproxy    *s3test.FaultProxy
	cfg       backfill.Config
	opts      backfill.Options

	mu         sync.Mutex
	primRule   func(*http.Request) s3test.Fault
	secondRule func(*http.Request) s3test.Fault
}

type envOptions struct {
	types       []string // enabled data types; nil = all built-in
	keyPrefixes []string // selective sync (catalog and registry); nil = all keys
	regOpts     registry.Options
	clock       func() time.Time // the registry's and the runner's clock; nil = their default
	sdkAttempts int              // SDK attempts per request; 0 = SDK default
	concurrency int
	brake       registry.BrakePolicy // delete budget of the engine
	sentinel    string               // primary sentinel key of the engine
}

const (
	primaryBucket   = rt.PrimaryBucket
	secondaryBucket = rt.SecondaryBucket
)

func newEnv(t testing.TB, eo envOptions) *env {
	t.Helper()
	e := &env{t: t}
	eo.regOpts.KeyPrefixes = eo.keyPrefixes
	types := datatype.Builtin()
	if eo.types != nil {
		var err error
		types, err = datatype.Select(types, eo.types)
		require.NoError(t, err)
	}
	cat, err := datatype.NewCatalog(types...)
	require.NoError(t, err)
	cat = cat.WithPrefixes(eo.keyPrefixes...)
	quiet := slog.New(slog.DiscardHandler)
	re := rt.NewEnv(t, rt.EnvOptions{
		RegistryOptions: eo.regOpts, Clock: eo.clock, Catalog: cat, Logger: quiet,
		PrimaryEndpoint: func(t testing.TB, ep string) string {
			e.pproxy = s3test.NewFaultProxy(t, ep, e.faults(&e.primRule))
			return e.pproxy.Endpoint()
		},
		SecondaryEndpoint: func(t testing.TB, ep string) string {
			e.sproxy = s3test.NewFaultProxy(t, ep, e.faults(&e.secondRule))
			return e.sproxy.Endpoint()
		},
		PrimaryMaxAttempts: eo.sdkAttempts, SecondaryMaxAttempts: eo.sdkAttempts,
		Concurrency: eo.concurrency, Brake: eo.brake, SentinelKey: eo.sentinel,
	})
	e.pool, e.reg, e.catalog, e.engine = re.Pool, re.Registry, re.Catalog, re.Engine
	e.primaryS3, e.second3, e.pEndpoint = re.PrimaryS3, re.SecondaryS3, re.PrimaryServer
	e.primary, e.secondary = re.Primary, re.Secondary
	e.cfg = backfill.DefaultConfig()
	// Tests relist on every pass unless they test the interval.
	e.cfg.RelistInterval = time.Nanosecond
	e.opts = backfill.Options{
		Pool: e.pool, Registry: e.reg, Engine: e.engine, Catalog: cat,
		Primary: e.primary, PrimaryBucket: primaryBucket, Secondary: e.secondary,
		Logger: quiet, Clock: eo.clock,
	}
	return e
}

// newRetryEnv is an env on a manual clock (starting now) whose S3 clients
// do not retry (a failed request is a failed attempt) and whose runner
// quarantines a row after maxAttempts.
func newRetryEnv(t testing.TB, maxAttempts int) (*env, *registrytest.Clock) {
	t.Helper()
	clock := registrytest.NewClock(time.Now())
	e := newEnv(t, envOptions{clock: clock.Now, sdkAttempts: 1})
	e.cfg.MaxAttempts = maxAttempts
	return e, clock
}

// faults is a fault proxy's rule: whatever *rule holds when a request
// comes (see setRules); nil injects no fault.
func (e *env) faults(rule *func(*http.Request) s3test.Fault) func(*http.Request) s3test.Fault {
	return func(r *http.Request) s3test.Fault {
		e.mu.Lock()
		current := *rule
		e.mu.Unlock()
		if current == nil {
			return s3test.Fault{}
		}
		return current(r)
	}
}

func (e *env) setRules(primary, secondary func(*http.Request) s3test.Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.primRule, e.secondRule = primary, secondary
}

// refuseSecondaryPuts makes the secondary answer 403 to every PutObject of
// keys (none: of every key), replacing the rules set before.
func (e *env) refuseSecondaryPuts(keys ...string) {
	e.setRules(nil, func(r *http.Request) s3test.Fault {
		if s3test.Op(r) == s3test.OpPutObject &&
			(len(keys) == 0 || slices.Contains(keys, strings.TrimPrefix(r.URL.Path, "/"+secondaryBucket+"/"))) {
			return s3test.Fault{Status: http.StatusForbidden}
		}
		return s3test.Fault{}
	})
}

// runner builds a runner from e.opts with e.cfg.
func (e *env) runner() *backfill.Runner {
	e.t.Helper()
	o := e.opts
	o.Config = e.cfg
	r, err := backfill.New(o)
	require.NoError(e.t, err)
	return r
}

func (e *env) run(req backfill.Request) backfill.Report {
	e.t.Helper()
	rep, err := e.runner().Run(e.t.Context(), req)
	require.NoError(e.t, err)
	return rep
}

func (e *env) put(key string, body []byte) {
	e.t.Helper()
	s3test.Put(e.t, e.primaryS3, key, body)
}

// putTyped puts objects typedKey(0) to typedKey(n-1) on the primary, the
// i-th of size(i) sample bytes.
func (e *env) putTyped(n int, size func(i int) int) {
	e.t.Helper()
	for i := range n {
		e.put(typedKey(i), samples.Bytes(typedKey(i), size(i)))
	}
}

func (e *env) del(bucket *s3admin.Bucket, key string) {
	e.t.Helper()
	require.NoError(e.t, bucket.Store().Delete(e.t.Context(), key))
}

// selected keeps the objects whose key belongs to an enabled type.
func (e *env) selected(objs map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range objs {
		if _, ok := e.catalog.Match(k); ok {
			out[k] = v
		}
	}
	return out
}

// rows returns every registry row keyed by object key.
func (e *env) rows(tombstones bool) map[string]registry.Row {
	e.t.Helper()
	out := map[string]registry.Row{}
	var after int64
	for {
		rows, err := e.reg.List(e.t.Context(), registry.ListOptions{AfterID: after, Limit: 1000, IncludeTombstones: tombstones})
		require.NoError(e.t, err)
		if len(rows) == 0 {
			return out
		}
		for _, r := range rows {
			out[r.ObjectKey] = r
		}
		after = rows[len(rows)-1].ID
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// requireConverged asserts the secondary holds exactly the primary's
// selected objects, byte for byte, and every live row is synced with the
// right SHA-256 bookkeeping.
func (e *env) requireConverged() {
	e.t.Helper()
	want := e.selected(s3test.Contents(e.t, e.primaryS3))
	got := s3test.Contents(e.t, e.second3)
	require.Equal(e.t, keysOf(want), keysOf(got), "secondary keys")
	for k, b := range want {
		require.True(e.t, bytes.Equal(b, got[k]), "secondary copy of %s differs", k)
	}
	live := e.rows(false)
	require.Equal(e.t, keysOf(want), keysOf(live), "live registry rows")
	for k, r := range live {
		require.Equal(e.t, registry.StateSynced, r.State, "row %s: %s (%s)", k, r.State, r.LastSyncFailure)
		require.Len(e.t, r.PrimarySHA256, 64, "row %s has its checksum", k)
	}
	for k, r := range e.rows(true) {
		if r.Tombstoned() {
			require.Equal(e.t, registry.StateSynced, r.State, "tombstone %s propagated", k)
		}
	}
}

func typedKey(i int) string {
	switch i % 5 {
	case 0:
		return fmt.Sprintf("npm/pkg%d/-/pkg%d-1.0.%d.tgz", i, i, i)
	case 1:
		return fmt.Sprintf("maven/com/example/a%d/1.0/a%d-1.0.jar", i, i)
	case 2:
		return fmt.Sprintf("nuget/p%d/1.0.0/p%d.1.0.0.nupkg", i, i)
	case 3:
		return fmt.Sprintf("generic/g %d/v+1/file%d.bin", i, i) // space and plus survive
	default:
		return fmt.Sprintf("pypi/packages/p%d/p%d-1.0-py3-none-any.whl", i, i)
	}
}

func datatypeCatalog(names ...string) (*datatype.Catalog, error) {
	types, err := datatype.Select(datatype.Builtin(), names)
	if err != nil {
		return nil, err
	}
	return datatype.NewCatalog(types...)
}

func blobstoreAttrs() blobstore.PutAttrs { return blobstore.PutAttrs{} }

// steppingClock returns a clock that moves step forward at every reading,
// so budgets end after a number of steps, not of seconds. It is safe for
// concurrent use.
func steppingClock(step time.Duration) func() time.Time {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(step)
		return now
	}
}
