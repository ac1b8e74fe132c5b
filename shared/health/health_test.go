package health_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/registry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// world: a private PostgreSQL cluster (so the test can stop it), one MinIO
// with real bucket notifications holding both buckets, each bucket reached
// through a fault proxy, a dead-letter directory and a settable clock.
type world struct {
	t        *testing.T
	cluster  interface{ Stop(context.Context) error }
	pool     *pgxpool.Pool
	reg      *registry.Store
	minio    *minioproc.Server
	primary  *s3admin.Bucket
	second   *s3admin.Bucket
	dlq      string
	mu       sync.Mutex
	skew     time.Duration
	rules    map[string]func(*http.Request) s3test.Fault
	readOnly bool
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, dlq: t.TempDir(), rules: map[string]func(*http.Request) s3test.Fault{}}
	c := pgtest.NewCluster(t)
	require.NoError(t, c.CreateDatabase(t.Context(), "geoblob"))
	w.cluster = c
	w.pool = pgtest.Connect(t, c.DSN("geoblob"))
	require.NoError(t, registry.Migrate(t.Context(), w.pool))
	w.reg = registry.New(w.pool, registry.Options{})

	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(receiver.Close)
	w.minio = s3test.NewMinio(t, func(o *minioproc.Options) {
		o.Webhooks = map[string]string{"geoblob": receiver.URL}
		o.NoWebhookQueue = true
	})
	w.primary = s3test.Bucket(t, w.minio.Endpoint(), "primary")
	w.second = s3test.Bucket(t, w.minio.Endpoint(), "secondary")
	w.configureWebhook()
	_, err := w.primary.Put(t.Context(), "generic/pkg/1.0.0/a.bin", []byte("a"), "")
	require.NoError(t, err)
	w.passesNow()
	return w
}

// configureWebhook points the primary's notifications at the webhook and
// waits until MinIO reports them: under load a configuration it accepted
// was seen missing from GetBucketNotificationConfiguration right after.
func (w *world) configureWebhook() {
	w.t.Helper()
	require.NoError(w.t, minioproc.ConfigureWebhook(w.t.Context(), w.primary, "geoblob"))
	require.Eventually(w.t, func() bool {
		n, err := w.primary.Store().Notifications(w.t.Context())
		return err == nil && len(n.Created) > 0 && len(n.Removed) > 0
	}, 15*time.Second, 50*time.Millisecond, "MinIO reports the webhook notifications")
}

func (w *world) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Now().Add(w.skew)
}

func (w *world) setRule(bucket string, rule func(*http.Request) s3test.Fault) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rules[bucket] = rule
}

func (w *world) store(bucket string) *blobstore.Store {
	proxy := s3test.NewFaultProxy(w.t, w.minio.Endpoint(), func(r *http.Request) s3test.Fault {
		w.mu.Lock()
		rule := w.rules[bucket]
		w.mu.Unlock()
		if rule == nil {
			return s3test.Fault{}
		}
		return rule(r)
	})
	client := s3test.Client(w.t.Context(), proxy.Endpoint(), s3test.NoRetry)
	return blobstore.New(client, bucket, blobstore.Options{Logger: slog.New(slog.DiscardHandler)})
}

// passesNow records a successful backfill and verify pass finishing now.
func (w *world) passesNow() {
	for _, job := range []string{registry.JobBackfill, registry.JobVerify} {
		require.NoError(w.t, w.reg.RecordPass(w.t.Context(), registry.PassResult{Job: job, Started: time.Now(), Finished: time.Now()}))
	}
}

func (w *world) check() health.Report {
	w.t.Helper()
	c, err := health.New(health.Options{
		Registry: w.reg, Primary: w.store("primary"), Secondary: w.store("secondary"),
		ReadOnly: w.readOnly, DeadLetters: devstack.DeadLetterDir(w.dlq), Now: w.now,
		CheckTimeout: 5 * time.Second,
	})
	require.NoError(w.t, err)
	return c.Run(w.t.Context())
}

// requireOnlyFailed asserts that exactly the named checks failed, and
// returns the failed results by name.
func requireOnlyFailed(t *testing.T, rep health.Report, names ...string) map[string]health.Result {
	t.Helper()
	failed := map[string]health.Result{}
	var got []string
	for _, c := range rep.Failed() {
		failed[c.Name] = c
		got = append(got, c.Name)
		assert.NotEmpty(t, c.Hint, "failed check %s has a fix hint", c.Name)
	}
	require.ElementsMatch(t, names, got, "failed checks; report: %+v", rep.Checks)
	assert.Equal(t, len(names) == 0, rep.OK)
	return failed
}

// Each broken condition fails its own check, with its own message, and
// nothing else; repairing it makes the report healthy again.
func TestEachCheckFailsOnItsOwnCondition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MinIO process")
	}
	w := newWorld(t)
	ctx := t.Context()
	fault403 := s3test.Fault{Status: http.StatusForbidden}

	t.Run("healthy", func(t *testing.T) {
		rep := w.check()
		requireOnlyFailed(t, rep)
		require.Len(t, rep.Checks, 11)
		var text strings.Builder
		require.NoError(t, health.WriteText(&text, rep))
		assert.Contains(t, text.String(), "healthy")
		assert.Len(t, strings.Split(strings.TrimSpace(text.String()), "\n"), 12, "one line per check and a verdict")
		assert.Empty(t, s3test.Keys(t, w.second), "the probe object was deleted")
	})

	t.Run("migrations behind", func(t *testing.T) {
		var v int64
		require.NoError(t, w.pool.QueryRow(ctx, "SELECT max(version_id) FROM "+registry.MigrationsTable).Scan(&v))
		_, err := w.pool.Exec(ctx, "DELETE FROM "+registry.MigrationsTable+" WHERE version_id = $1", v)
		require.NoError(t, err)
		f := requireOnlyFailed(t, w.check(), health.CheckMigrations)
		assert.Contains(t, f[health.CheckMigrations].Detail, fmt.Sprintf("this build needs %d", v))
		_, err = w.pool.Exec(ctx, "INSERT INTO "+registry.MigrationsTable+" (version_id, is_applied) VALUES ($1, true)", v)
		require.NoError(t, err)
	})

	t.Run("stale backfill pass", func(t *testing.T) {
		old := time.Now().Add(-time.Hour)
		require.NoError(t, w.reg.RecordPass(ctx, registry.PassResult{Job: registry.JobBackfill, Started: old, Finished: old}))
		f := requireOnlyFailed(t, w.check(), health.CheckBackfillPass)
		assert.Contains(t, f[health.CheckBackfillPass].Detail, "more than 10m0s")
		w.passesNow()
	})

	t.Run("failed verify pass", func(t *testing.T) {
		require.NoError(t, w.reg.RecordPass(ctx, registry.PassResult{Job: registry.JobVerify, Started: time.Now(),
			Finished: time.Now(), Err: errors.New("verify: claim: connection refused")}))
		f := requireOnlyFailed(t, w.check(), health.CheckVerifyPass)
		assert.Contains(t, f[health.CheckVerifyPass].Detail, "failed: verify: claim: connection refused")
		w.passesNow()
	})

	t.Run("dead letter", func(t *testing.T) {
		path := filepath.Join(w.dlq, "00000000000000000007.5.json")
		require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o644))
		f := requireOnlyFailed(t, w.check(), health.CheckDeadLetters)
		assert.Contains(t, f[health.CheckDeadLetters].Detail, "1 dead letters in "+w.dlq)
		require.NoError(t, os.Remove(path))
	})

	t.Run("delete brake tripped", func(t *testing.T) {
		require.NoError(t, w.reg.TripBrake(ctx, registry.ScopeAll, "primary bucket missing"))
		f := requireOnlyFailed(t, w.check(), health.CheckDeleteBrake)
		assert.Contains(t, f[health.CheckDeleteBrake].Detail, "tripped (*: primary bucket missing)")
		assert.Contains(t, f[health.CheckDeleteBrake].Hint, "geoblob brake release")
		_, err := w.reg.ResolveHeld(ctx, registry.ActionRelease, registry.HoldFilter{}, "test", false)
		require.NoError(t, err)
		requireOnlyFailed(t, w.check())
	})

	t.Run("skewed clock", func(t *testing.T) {
		w.mu.Lock()
		w.skew = 90 * time.Second
		w.mu.Unlock()
		w.passesNow() // pass ages are read on the skewed clock too
		f := requireOnlyFailed(t, w.check(), health.CheckClockSkew)
		assert.Contains(t, f[health.CheckClockSkew].Detail, "ahead of S3's Date header by 1m3")
		w.mu.Lock()
		w.skew = 0
		w.mu.Unlock()
	})

	t.Run("notifications removed", func(t *testing.T) {
		require.NoError(t, w.primary.ClearNotifications(ctx))
		f := requireOnlyFailed(t, w.check(), health.CheckNotifications)
		assert.Contains(t, f[health.CheckNotifications].Detail, "sends no ObjectCreated notifications")

		require.NoError(t, w.primary.NotifyQueue(ctx, "created-only", minioproc.WebhookARN("geoblob"), "s3:ObjectCreated:*"))
		f = requireOnlyFailed(t, w.check(), health.CheckNotifications)
		assert.Contains(t, f[health.CheckNotifications].Detail, "no ObjectRemoved")
		w.configureWebhook()
	})

	t.Run("primary head denied", func(t *testing.T) {
		w.setRule("primary", s3test.FailOp(s3test.OpHeadObject, fault403))
		f := requireOnlyFailed(t, w.check(), health.CheckPrimary)
		assert.Contains(t, f[health.CheckPrimary].Detail, "head primary/generic/pkg/1.0.0/a.bin")
		assert.Contains(t, f[health.CheckPrimary].Hint, "s3:GetObject")
		w.setRule("primary", nil)
	})

	t.Run("secondary put denied", func(t *testing.T) {
		w.setRule("secondary", s3test.FailOp(s3test.OpPutObject, fault403))
		f := requireOnlyFailed(t, w.check(), health.CheckSecondary)
		assert.Contains(t, f[health.CheckSecondary].Detail, "put secondary/"+health.ProbePrefix)
		w.readOnly = true
		requireOnlyFailed(t, w.check())
		w.readOnly = false
		w.setRule("secondary", nil)
	})

	t.Run("secondary delete denied", func(t *testing.T) {
		w.setRule("secondary", s3test.FailOp(s3test.OpDeleteObject, fault403))
		f := requireOnlyFailed(t, w.check(), health.CheckSecondary)
		assert.Contains(t, f[health.CheckSecondary].Hint, "s3:DeleteObject")
		w.setRule("secondary", nil)
		for _, k := range s3test.Keys(t, w.second) {
			require.NoError(t, w.second.Store().Delete(ctx, k))
		}
	})

	t.Run("secondary bucket gone", func(t *testing.T) {
		require.NoError(t, w.second.Remove(ctx))
		f := requireOnlyFailed(t, w.check(), health.CheckSecondary)
		assert.Contains(t, f[health.CheckSecondary].Detail, "list secondary")
		require.NoError(t, w.second.Create(ctx))
		requireOnlyFailed(t, w.check())
	})

	t.Run("database stopped", func(t *testing.T) {
		require.NoError(t, w.cluster.Stop(ctx))
		f := requireOnlyFailed(t, w.check(), health.CheckRegistry, health.CheckMigrations,
			health.CheckBackfillPass, health.CheckVerifyPass, health.CheckDeleteBrake)
		assert.Contains(t, f[health.CheckMigrations].Detail, "registry unreachable")
	})

	t.Run("MinIO stopped", func(t *testing.T) {
		require.NoError(t, w.minio.Stop())
		f := requireOnlyFailed(t, w.check(), health.CheckRegistry, health.CheckMigrations,
			health.CheckBackfillPass, health.CheckVerifyPass, health.CheckDeleteBrake,
			health.CheckPrimary, health.CheckSecondary, health.CheckNotifications, health.CheckClockSkew)
		assert.Contains(t, f[health.CheckPrimary].Detail, "list primary")
	})
}

func TestInvalidConfigIsTheOnlyCheck(t *testing.T) {
	t.Parallel()
	_, err := config.FromEnv(func(string) string { return "" })
	require.Error(t, err)
	c, err := health.New(health.Options{ConfigErr: err})
	require.NoError(t, err)
	rep := c.Run(t.Context())
	require.Len(t, rep.Checks, 1)
	f := requireOnlyFailed(t, rep, health.CheckConfig)
	assert.Contains(t, f[health.CheckConfig].Detail, "GEOBLOB_PRIMARY_BUCKET")
}

func TestNoDeadLetterSourceFails(t *testing.T) {
	t.Parallel()
	_, queues, err := health.OptionsFromEnv(func(k string) string {
		if k == "GEOBLOB_DEAD_LETTER_QUEUES" {
			return "https://sqs.eu-west-1.amazonaws.com/123456789012/a-dlq, https://sqs.eu-west-1.amazonaws.com/123456789012/b-dlq"
		}
		return ""
	})
	require.NoError(t, err)
	assert.Len(t, queues, 2)
	_, _, err = health.OptionsFromEnv(func(k string) string {
		if k == "GEOBLOB_HEALTH_VERIFY_MAX_AGE" {
			return "soon"
		}
		return ""
	})
	require.ErrorIs(t, err, health.ErrInvalid)
	assert.Contains(t, err.Error(), "GEOBLOB_HEALTH_VERIFY_MAX_AGE")
}
