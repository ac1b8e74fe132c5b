package registry_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConformance runs the shared suite against the pgx Store.
func TestConformance(t *testing.T) {
	t.Parallel()
	registrytest.Run(t, func(t *testing.T, opts registry.Options) *registry.Store {
		return registrytest.NewStore(t, opts)
	})
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		pool := pgtest.Connect(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = registry.Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "concurrent migrations serialise")
	}
	pool := pgtest.Connect(t, dsn)
	require.NoError(t, registry.Migrate(ctx, pool), "running again is a no-op")

	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	var applied, distinct int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT version_id) FROM "+
		registry.MigrationsTable+" WHERE version_id > 0 AND is_applied").Scan(&applied, &distinct))
	assert.Equal(t, len(files), applied, "every migration file applied exactly once")
	assert.Equal(t, applied, distinct)

	var names []string
	rows, err := pool.Query(ctx, "SELECT indexname::text FROM pg_indexes WHERE tablename = 'blob_registry'")
	require.NoError(t, err)
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, want := range []string{"blob_registry_pkey", "blob_registry_type_key_uniq",
		"blob_registry_pending_idx", "blob_registry_failed_retry_idx", "blob_registry_started_idx",
		"blob_registry_verification_due_idx", "blob_registry_verification_failed_idx",
		"blob_registry_verified_at_idx", "blob_registry_verification_started_idx"} {
		assert.Contains(t, names, want)
	}
}

func TestSchemaChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := registrytest.NewPool(t)
	insert := func(cols, vals string) error {
		_, err := pool.Exec(ctx, "INSERT INTO blob_registry (data_type, object_key, created_at, updated_at"+cols+
			") VALUES ('t', 'k', now(), now()"+vals+")")
		return err
	}
	require.NoError(t, insert("", ""))
	_, err := pool.Exec(ctx, "DELETE FROM blob_registry")
	require.NoError(t, err)
	for name, c := range map[string][2]string{
		"replication state 4":     {", state", ", 4"},
		"verification state 5":    {", verification_state", ", 5"},
		"started without time":    {", state", ", 1"},
		"failed without retry_at": {", state", ", 3"},
		"upper-case sha":          {", primary_sha256", ", '" + strings.Repeat("A", 64) + "'"},
		"failure longer than 255": {", last_sync_failure", ", '" + strings.Repeat("x", 256) + "'"},
		"negative size":           {", size", ", -1"},
	} {
		assert.Error(t, insert(c[0], c[1]), name)
	}
	require.NoError(t, insert("", ""))
	assert.Error(t, insert("", ""), "unique (data_type, object_key)")
}

func TestNormalizeSequencer(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "", registry.NormalizeSequencer(""))
	assert.Equal(t, strings.Repeat("0", 30)+"1F", registry.NormalizeSequencer("1f"))
	assert.Equal(t, registry.NormalizeSequencer("0055AED6DCD90281E5"), registry.NormalizeSequencer("55aed6dcd90281e5"))
	assert.Len(t, registry.NormalizeSequencer("0055AED6DCD90281E5"), registry.SequencerWidth)
	assert.Less(t, registry.NormalizeSequencer("F"), registry.NormalizeSequencer("10"))
	long := strings.Repeat("A", 40)
	assert.Equal(t, long, registry.NormalizeSequencer(strings.ToLower(long)))
}

func TestTruncateFailure(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "short", registry.TruncateFailure("short"))
	s := registry.TruncateFailure(strings.Repeat("日", 300))
	assert.Equal(t, registry.MaxFailureLen, utf8.RuneCountInString(s))
	assert.True(t, utf8.ValidString(s))
	exact := strings.Repeat("é", registry.MaxFailureLen)
	assert.Equal(t, exact, registry.TruncateFailure(exact))
	assert.Equal(t, "a\uFFFDb", registry.TruncateFailure("a\xffb\x00"))
}

func TestGeoBackoff(t *testing.T) {
	t.Parallel()
	zero := registry.GeoBackoff{Rand: func() float64 { return 0 }}
	assert.Equal(t, 15*time.Second, zero.Backoff(0, false))
	assert.Equal(t, 16*time.Second, zero.Backoff(1, false))
	assert.Equal(t, 31*time.Second, zero.Backoff(2, false))
	assert.Equal(t, (2401+15)*time.Second, zero.Backoff(7, false))
	assert.Equal(t, time.Hour, zero.Backoff(8, false))
	assert.Equal(t, (4096+15)*time.Second, zero.Backoff(8, true))
	assert.Equal(t, 4*time.Hour, zero.Backoff(11, true))
	assert.Equal(t, time.Hour, zero.Backoff(math.MaxInt, false), "no overflow")

	maxJitter := registry.GeoBackoff{Rand: func() float64 { return 0.999999 }}
	got := maxJitter.Backoff(2, false)
	assert.Greater(t, got, 31*time.Second)
	assert.LessOrEqual(t, got, 34100*time.Millisecond, "jitter at most 10 %")
	capped := registry.GeoBackoff{Cap: 2500 * time.Second, Rand: maxJitter.Rand}
	assert.Equal(t, 2500*time.Second, capped.Backoff(7, false), "jitter never exceeds the cap")

	custom := registry.GeoBackoff{Base: time.Second, Cap: time.Minute, Jitter: -1, Rand: func() float64 { return 0.5 }}
	assert.Equal(t, 2*time.Second, custom.Backoff(1, false), "negative jitter disables it")
	assert.Equal(t, time.Minute, custom.Backoff(3, false))

	// Default randomness stays within bounds.
	var def registry.GeoBackoff
	for range 100 {
		d := def.Backoff(3, false)
		assert.GreaterOrEqual(t, d, 96*time.Second)
		assert.LessOrEqual(t, d, 105600*time.Millisecond)
	}
}
