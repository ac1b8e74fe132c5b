package verify_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// setVerifiedAt ages a verified row (test setup: the clock of a past pass).
func (e *env) setVerifiedAt(key string, at time.Time) {
	e.t.Helper()
	it := e.row(key)
	_, err := e.pool.Exec(e.ctx, `UPDATE blob_registry SET verified_at = $2 WHERE id = $1 AND verification_state = 2`, it.ID, at)
	require.NoError(e.t, err)
}

// verifiedRows uploads, syncs and verifies n rows and returns their keys.
func (e *env) verifiedRows(v *verify.Verifier, n int) []string {
	e.t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = e.upload(content(100+i, 1000+i))
	}
	require.Equal(e.t, n, e.syncDue())
	rep := e.run(v, verify.RunOptions{})
	require.Equal(e.t, int64(n), rep.Secondary.Matched)
	return keys
}

func TestReverifyPicksOnlyRowsOlderThanTheInterval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const interval = 90 * 24 * time.Hour
	v := e.verifier(verify.Options{ReverifyInterval: interval, ReverifySpread: 0, NoPrimary: true})
	keys := e.verifiedRows(v, 5)
	now := e.clock.Now()
	ages := []time.Duration{interval + time.Hour, interval + time.Microsecond, interval - time.Second, interval / 2, 0}
	for i, k := range keys {
		e.setVerifiedAt(k, now.Add(-ages[i]))
	}

	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(2), rep.Secondary.Checked)
	for i, k := range keys {
		got := e.row(k).VerifiedAt.UTC()
		if ages[i] > interval {
			assert.Equal(t, now, got, "row aged %s is reverified", ages[i])
		} else {
			assert.Equal(t, now.Add(-ages[i]), got, "row aged %s is left alone", ages[i])
		}
	}
	// Nothing is due any more.
	rep = e.run(v, verify.RunOptions{})
	assert.Zero(t, rep.Secondary.Checked)
}

// With a spread, a row comes due interval - spread*offset(id) after its
// verification: never later than the interval, never earlier than
// interval - spread, and rows are spread over that window.
func TestReverifySpreadIsStableAndBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const interval, spread = 100 * time.Hour, 10 * time.Hour
	v := e.verifier(verify.Options{ReverifyInterval: interval, ReverifySpread: spread, NoPrimary: true})
	keys := e.verifiedRows(v, 40)
	base := e.clock.Now()
	for _, k := range keys {
		e.setVerifiedAt(k, base)
	}
	dueAt := func(k string) time.Time {
		id := e.row(k).ID
		f := float64(id) * 0.6180339887498949
		off := time.Duration(float64(spread) * (f - math.Floor(f)))
		return base.Add(interval - off).Truncate(time.Microsecond)
	}

	e.clock.Set(base.Add(interval - spread - time.Second))
	assert.Zero(t, e.run(v, verify.RunOptions{}).Secondary.Checked, "nothing comes due before interval - spread")

	// Walk through the window hour by hour: each pass verifies exactly the
	// rows whose due time has passed since the previous pass.
	seen := map[string]bool{}
	hoursWithWork := 0
	for h := time.Duration(0); h <= spread; h += time.Hour {
		now := base.Add(interval - spread + h)
		e.clock.Set(now)
		want := 0
		for _, k := range keys {
			if !seen[k] && !dueAt(k).After(now) {
				want++
				seen[k] = true
			}
		}
		rep := e.run(v, verify.RunOptions{})
		assert.Equal(t, int64(want), rep.Secondary.Checked, "at interval-spread+%s", h)
		if want > 0 {
			hoursWithWork++
		}
	}
	assert.GreaterOrEqual(t, hoursWithWork, 9, "40 rows verified together come due spread over the 10 h window")
	assert.Len(t, seen, len(keys), "every row is due by the interval")
	for _, k := range keys {
		it := e.row(k)
		assert.Equal(t, registry.VerificationSucceeded, it.VerificationState)
		assert.True(t, it.VerifiedAt.After(base))
	}
}
