package e2e_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/localstack"
)

// TestLocalStackSmokeProcedure runs the procedure `make smoke-local` runs
// against a LocalStack deployment (internal/localstack.Smoke) against this
// stack, which replicates through the same functions: it passes when the
// chain replicates a create and a delete, and fails when it does not.
func TestLocalStackSmokeProcedure(t *testing.T) {
	var out bytes.Buffer
	opts := localstack.SmokeOptions{
		Primary: fx.settings.Bucket(devstack.Primary), Secondary: fx.settings.Bucket(devstack.Secondary),
		Registry: fx.reg, Catalog: fx.catalog, Timeout: time.Minute, Poll: 100 * time.Millisecond, Out: &out,
	}
	require.NoError(t, localstack.Smoke(t.Context(), opts))
	for _, step := range []string{"uploaded", "the secondary holds the same bytes", "the registry row is synced", "deleted", "the secondary copy is gone", "the registry row is tombstoned"} {
		assert.Contains(t, out.String(), step)
	}

	// A secondary bucket nothing replicates to: the smoke test fails, saying where.
	key := "npm/geoblob-smoke/-/geoblob-smoke-9.9.9.tgz"
	wrong := opts
	wrong.Key = key
	nowhere := fx.settings
	nowhere.SecondaryBucket = fx.settings.PrimaryBucket + "-nowhere"
	wrong.Secondary = nowhere.Bucket(devstack.Secondary)
	wrong.Timeout = time.Second
	err := localstack.Smoke(t.Context(), wrong)
	require.ErrorIs(t, err, localstack.ErrSmoke)
	assert.Contains(t, err.Error(), "the secondary holds the same bytes")
	// Leave the buckets converged for the next test.
	require.NoError(t, fx.settings.Bucket(devstack.Primary).Delete(t.Context(), key))
	m := newModel()
	m.del(key)
	waitConverged(t, m, time.Minute)
	assertBuckets(t, newModel())
}
