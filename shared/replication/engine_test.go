package replication_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

const key = "maven/com/example/app/1.0.0/app-1.0.0.jar"

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	_, err := replication.New(replication.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Registry")
	assert.Contains(t, err.Error(), "Catalog")
}

func TestDuplicateCreatedIsIdempotent(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	body := rt.Content(key, 4096)
	env.PutPrimary(t, key, body)
	ev := rt.CreatedEvent(key, int64(len(body)), "0055AED6DCD90281E5")

	env.RequireOutcome(t, ev, replication.OutcomeSynced)
	first := env.Row(t, key)

	env.RequireOutcome(t, ev, replication.OutcomeStale)
	again := env.Row(t, key)
	assert.Equal(t, registry.StateSynced, again.State)
	assert.Equal(t, first.Generation, again.Generation, "a duplicate must not touch the row")
	got, ok := env.SecondaryBytes(t, key)
	require.True(t, ok)
	assert.Equal(t, body, got)
}

func TestLateCreateAfterDeleteNeverResurrects(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	body := rt.Content(key, 100)
	env.PutPrimary(t, key, body)
	env.PutSecondary(t, key, body) // a copy from earlier
	env.DeletePrimary(t, key)

	env.RequireOutcome(t, rt.RemovedEvent(key, "20"), replication.OutcomeDeleted)

	// The create that happened before the delete arrives late.
	env.RequireOutcome(t, rt.CreatedEvent(key, 100, "10"), replication.OutcomeStale)
	env.RequireDeleted(t, key, "late create resurrected the secondary copy")
}

func TestLateDeleteNeverRemovesNewerObject(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	v1, v2 := []byte("version one"), []byte("version two, longer")
	env.Upload(t, key, v1, "10")
	assert.Equal(t, replication.OutcomeSynced, env.Upload(t, key, v2, "30"))

	// A delete between the two puts arrives last.
	env.RequireOutcome(t, rt.RemovedEvent(key, "20"), replication.OutcomeStale)
	env.RequireSynced(t, key, v2, "late delete removed the newer object")
}

func TestMissingOnPrimaryIsRecordedNotReturned(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	before := time.Now()
	env.RequireOutcome(t, rt.CreatedEvent(key, 10, "10"), replication.OutcomeMissingOnPrimary, "a vanished source must not be retried hot")
	row := env.RequireFailedOnce(t, key, true, before, 4*time.Hour+time.Minute)
	assert.NotEmpty(t, row.LastSyncFailure)
	_, ok := env.SecondaryBytes(t, key)
	assert.False(t, ok)
}

func TestRemovedKeepsCopyWhenPrimaryHasObjectAgain(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	v1, v2 := []byte("first upload"), []byte("re-uploaded after the delete")
	env.Upload(t, key, v1, "10")
	// Deleted and uploaded again; only the delete's event has arrived.
	env.DeletePrimary(t, key)
	env.PutPrimary(t, key, v2)

	env.RequireOutcome(t, rt.RemovedEvent(key, "20"), replication.OutcomeSynced)
	env.RequireSynced(t, key, v2, "secondary copy deleted although the primary has the object")

	// The late create of the re-upload still syncs (newer sequencer).
	env.RequireOutcome(t, rt.CreatedEvent(key, int64(len(v2)), "30"), replication.OutcomeSynced)
}

func TestRemovedOfUnknownKeyLeavesSyncedTombstone(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	env.RequireOutcome(t, rt.RemovedEvent(key, "10"), replication.OutcomeDeleted)
	row := env.Row(t, key)
	assert.True(t, row.Tombstoned())
	assert.Equal(t, registry.StateSynced, row.State)
}

// faultySecondary puts a fault proxy in front of the secondary whose rule
// applies fault to PutObject while failing is true.
func faultySecondary(failing *atomic.Bool, fault s3test.Fault) rt.EnvOptions {
	return rt.EnvOptions{
		SecondaryEndpoint: func(t testing.TB, endpoint string) string {
			return s3test.NewFaultProxy(t, endpoint, func(r *http.Request) s3test.Fault {
				if failing.Load() && s3test.Op(r) == s3test.OpPutObject {
					return fault
				}
				return s3test.Fault{}
			}).Endpoint()
		},
		SecondaryMaxAttempts: 2,
	}
}

func TestSecondaryFailureMidCopyFailsRowAndRetrySucceeds(t *testing.T) {
	t.Parallel()
	for name, fault := range map[string]s3test.Fault{
		"500":            {Status: http.StatusInternalServerError},
		"503":            {Status: http.StatusServiceUnavailable},
		"cut connection": {Cut: true, CutAfter: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var failing atomic.Bool
			failing.Store(true)
			env := rt.NewEnv(t, faultySecondary(&failing, fault))
			ctx := context.Background()
			body := rt.Content(key, 64<<10)
			env.PutPrimary(t, key, body)
			ev := rt.CreatedEvent(key, int64(len(body)), "10")

			before := time.Now()
			out, err := env.Engine.Apply(ctx, ev)
			require.Error(t, err, "a failed copy must be returned so the event is redelivered")
			assert.ErrorIs(t, err, replication.ErrCopy)
			assert.True(t, replication.IsRetryable(err), "%v", err)
			assert.Equal(t, replication.OutcomeFailed, out)
			row := env.RequireFailedOnce(t, key, false, before, time.Hour+time.Minute)
			assert.Nil(t, row.LastSyncedAt, "nothing may be marked synced")
			assert.Empty(t, row.PrimarySHA256)
			_, ok := env.SecondaryBytes(t, key)
			assert.False(t, ok, "a partial object reached the secondary")

			// The redelivered event retries the failed row.
			failing.Store(false)
			env.RequireOutcome(t, ev, replication.OutcomeSynced)
			env.RequireSynced(t, key, body)
		})
	}
}

// raceFirstCopy returns an env whose secondary, when the first PutObject
// of a copy reaches it, runs during (which changes the object and its row
// under the copy) before answering; puts counts the PutObject requests.
func raceFirstCopy(t *testing.T, during func(env *rt.Env)) (env *rt.Env, puts *atomic.Int32) {
	t.Helper()
	puts = new(atomic.Int32)
	ready := make(chan struct{})
	env = rt.NewEnv(t, rt.EnvOptions{SecondaryEndpoint: func(t testing.TB, endpoint string) string {
		return s3test.NewFaultProxy(t, endpoint, func(r *http.Request) s3test.Fault {
			if s3test.Op(r) == s3test.OpPutObject && puts.Add(1) == 1 {
				<-ready
				during(env)
			}
			return s3test.Fault{}
		}).Endpoint()
	}})
	close(ready)
	return env, puts
}

// TestEventDuringCopyForcesAnotherCopy injects a newer event while the first
// copy is being written: its compare-and-set must fail and the engine must
// copy again, so the secondary ends with the newest bytes.
func TestEventDuringCopyForcesAnotherCopy(t *testing.T) {
	t.Parallel()
	v2 := []byte("the newer upload that raced the copy")
	env, puts := raceFirstCopy(t, func(env *rt.Env) {
		env.PutPrimary(t, key, v2)
		_, err := env.Registry.RecordCreated(context.Background(), registry.ObjectEvent{
			DataType: "maven_package_file", Key: key, Size: int64(len(v2)), Sequencer: "20",
		})
		assert.NoError(t, err)
	})
	v1 := []byte("the first upload")
	out := env.Upload(t, key, v1, "10")
	assert.Equal(t, replication.OutcomeSynced, out)
	assert.EqualValues(t, 2, puts.Load(), "the engine must copy again after losing the compare-and-set")
	env.RequireSynced(t, key, v2)
}

// TestDeleteDuringCopyWins: a delete that arrives while the copy is written
// must not leave the copy behind.
func TestDeleteDuringCopyWins(t *testing.T) {
	t.Parallel()
	env, _ := raceFirstCopy(t, func(env *rt.Env) {
		env.DeletePrimary(t, key)
		_, err := env.Registry.RecordRemoved(context.Background(), registry.ObjectEvent{
			DataType: "maven_package_file", Key: key, Sequencer: "20",
		})
		assert.NoError(t, err)
	})
	v1 := []byte("uploaded then deleted")
	out := env.Upload(t, key, v1, "10")
	assert.Equal(t, replication.OutcomeDeleted, out)
	env.RequireDeleted(t, key, "the copy survived a delete that raced it")
}

func TestRegistryDownIsReturnedAsRetryable(t *testing.T) {
	t.Parallel()
	env := rt.NewEnv(t, rt.EnvOptions{})
	env.PutPrimary(t, key, []byte("x"))
	env.Pool.Close() // the database is unreachable from now on
	out, err := env.Engine.Apply(context.Background(), rt.CreatedEvent(key, 1, "10"))
	require.Error(t, err)
	assert.ErrorIs(t, err, replication.ErrRegistry)
	assert.True(t, replication.IsRetryable(err))
	assert.Equal(t, replication.OutcomeFailed, out)
	_, ok := env.SecondaryBytes(t, key)
	assert.False(t, ok)
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "synced", replication.OutcomeSynced.String())
	assert.Equal(t, "missing_on_primary", replication.OutcomeMissingOnPrimary.String())
	assert.Equal(t, "unknown", replication.Outcome(99).String())
}

// TestDatabaseRestartDuringCopyStillRecordsResult stops PostgreSQL while the
// secondary PUT is in flight and starts it again a moment later: the engine
// must record the finished copy once the database is back instead of leaving
// the row claimed (started) until stuck recovery.
func TestDatabaseRestartDuringCopyStillRecordsResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := pgtest.NewCluster(t)
	require.NoError(t, cluster.CreateDatabase(ctx, "geoblob"))
	var (
		puts      atomic.Int32
		restarted = make(chan error, 1)
	)
	opts := rt.EnvOptions{DSN: cluster.DSN("geoblob"), SecondaryEndpoint: func(t testing.TB, endpoint string) string {
		return s3test.NewFaultProxy(t, endpoint, func(r *http.Request) s3test.Fault {
			if s3test.Op(r) == s3test.OpPutObject && puts.Add(1) == 1 {
				if err := cluster.Stop(ctx); err != nil {
					restarted <- err
					return s3test.Fault{}
				}
				go func() {
					time.Sleep(time.Second)
					restarted <- cluster.Restart(ctx)
				}()
			}
			return s3test.Fault{}
		}).Endpoint()
	}}
	env := rt.NewEnv(t, opts)
	body := []byte("copied while the registry restarted")
	env.PutPrimary(t, key, body)

	out, err := env.Engine.Apply(ctx, rt.CreatedEvent(key, int64(len(body)), "10"))
	require.NoError(t, <-restarted)
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeSynced, out)
	row := env.Row(t, key)
	assert.Equal(t, registry.StateSynced, row.State, "the row must not stay claimed")
	assert.Equal(t, rt.SHA256(body), row.PrimarySHA256)
	got, ok := env.SecondaryBytes(t, key)
	require.True(t, ok)
	assert.Equal(t, body, got)
}
