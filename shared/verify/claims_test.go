package verify_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

func (e *env) due(limit int) registry.VerifyClaimOptions {
	return registry.VerifyClaimOptions{Limit: limit, ReverifyInterval: verify.DefaultReverifyInterval, ReverifySpread: 0}
}

func TestConcurrentClaimsAreDisjoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const rows = 60
	for i := 0; i < rows; i++ {
		e.upload(content(i, 10))
	}
	require.Equal(t, rows, e.syncDue())

	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				claims, err := e.reg.ClaimSecondary(context.Background(), e.due(7))
				if !assert.NoError(t, err) || len(claims) == 0 {
					return
				}
				mu.Lock()
				for _, c := range claims {
					seen[c.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Len(t, seen, rows)
	for id, n := range seen {
		assert.Equal(t, 1, n, "row %d claimed %d times", id, n)
	}
}

// A claim abandoned by a crashed pass is recovered after the timeout, not
// before, and a late finish by the crashed owner is ignored.
func TestStuckClaimsRecoveredAfterTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	v := e.verifier(verify.Options{Timeout: 30 * time.Minute, NoPrimary: true})
	key := e.uploadSynced(content(1, 100))
	abandoned, err := e.reg.ClaimSecondary(e.ctx, e.due(10))
	require.NoError(t, err)
	require.Len(t, abandoned, 1)

	e.clock.Advance(29 * time.Minute)
	rep := e.run(v, verify.RunOptions{})
	assert.Zero(t, rep.Recovered)
	assert.Zero(t, rep.Secondary.Checked)
	assert.Equal(t, registry.VerificationStarted, e.row(key).VerificationState)

	e.clock.Advance(2 * time.Minute)
	rep = e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Recovered)
	assert.Equal(t, int64(1), rep.Secondary.Matched)
	assert.Equal(t, registry.VerificationSucceeded, e.row(key).VerificationState)

	// The crashed owner wakes up with a bogus result: compare-and-set fails.
	e.finishLost(abandoned[0], registry.VerifyResult{
		Outcome: verify.OutcomeMismatch, SHA256: sha([]byte("x")), Failure: "stale",
	})
	it := e.row(key)
	assert.Equal(t, registry.VerificationSucceeded, it.VerificationState)
	assert.False(t, it.ChecksumMismatch)
	assert.Equal(t, registry.StateSynced, it.State)
}

// An event that changes the row during a check makes the result stale: it
// is not written.
func TestResultOfChangedRowIsDiscarded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	key := e.uploadSynced(content(2, 100))
	claims, err := e.reg.ClaimSecondary(e.ctx, e.due(10))
	require.NoError(t, err)
	require.Len(t, claims, 1)
	e.putPrimary(key, content(3, 200))
	e.recordCreated(key) // new content: pending sync, generation+1

	resync := e.finishLost(claims[0], registry.VerifyResult{Outcome: verify.OutcomeMismatch, Failure: "x"})
	assert.False(t, resync)
	it := e.row(key)
	assert.Equal(t, registry.StatePending, it.State)
	assert.Nil(t, it.RetryAt)
	assert.Equal(t, registry.VerificationDisabled, it.VerificationState)
}

// limitSide wraps a Side and records the most checks in flight at once.
type limitSide struct {
	verify.Side
	inFlight, peak atomic.Int64
}

var _ verify.Side = (*limitSide)(nil)

func (l *limitSide) Hash(ctx context.Context, key string) (verify.Digest, error) {
	n := l.inFlight.Add(1)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	defer l.inFlight.Add(-1)
	return l.Side.Hash(ctx, key)
}

func TestConcurrencyCapAndBudgetResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const rows = 30
	keys := make([]string, rows)
	for i := range keys {
		keys[i] = e.upload(content(i, 64))
	}
	require.Equal(t, rows, e.syncDue())

	sec := &limitSide{Side: e.secondary}
	// A budget clock that moves three minutes every time the pass reads it
	// (once per claim round): a 10-minute budget runs out after a few
	// batches.
	var ticks atomic.Int64
	base := e.clock.Now()
	tick := func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * 3 * time.Minute) }
	v, err := verify.New(e.reg, e.primary, sec, verify.Options{
		Concurrency: 3, BatchSize: 4, Budget: 10 * time.Minute, Now: tick, NoPrimary: true,
		ReverifyInterval: 1000 * time.Hour,
	})
	require.NoError(t, err)

	rep, err := v.Run(e.ctx, verify.RunOptions{})
	require.NoError(t, err)
	assert.True(t, rep.BudgetExhausted)
	first := rep.Secondary.Matched
	assert.Greater(t, first, int64(0))
	assert.Less(t, first, int64(rows))
	assert.LessOrEqual(t, sec.peak.Load(), int64(3))

	var total = first
	for i := 0; i < 20 && total < rows; i++ {
		rep, err = v.Run(e.ctx, verify.RunOptions{})
		require.NoError(t, err)
		total += rep.Secondary.Matched
	}
	assert.Equal(t, int64(rows), total, "later passes resume and finish, each row verified once")
	for _, k := range keys {
		assert.Equal(t, registry.VerificationSucceeded, e.row(k).VerificationState, k)
	}
	rep, err = v.Run(e.ctx, verify.RunOptions{Budget: time.Hour})
	require.NoError(t, err)
	assert.Zero(t, rep.Secondary.Checked)
	assert.False(t, rep.BudgetExhausted)
	assert.Equal(t, int64(3), sec.peak.Load(), "the cap was reached, never passed")
}

// Selective sync applies to verification too: a registry limited to key
// prefixes claims only rows under them, for both sides.
func TestVerificationHonoursKeyPrefixes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	inside := e.upload(content(1, 100))
	outside := e.upload(content(2, 100))
	require.Equal(t, 2, e.syncDue())
	prefix := inside[:strings.LastIndex(inside, "/")+1]
	require.False(t, strings.HasPrefix(outside, prefix))
	selected := e.reg.WithKeyPrefixes(prefix)

	claims, err := selected.ClaimSecondary(e.ctx, e.due(10))
	require.NoError(t, err)
	require.Len(t, claims, 1)
	assert.Equal(t, inside, claims[0].ObjectKey)
	require.NoError(t, selected.ReleaseSecondary(e.ctx, claims[0]))

	// Primary side: both rows come due for reverification; only one is claimed.
	e.clock.Advance(2 * verify.DefaultReverifyInterval)
	claims, err = selected.ClaimPrimary(e.ctx, e.due(10))
	require.NoError(t, err)
	require.Len(t, claims, 1)
	assert.Equal(t, inside, claims[0].ObjectKey)
	require.NoError(t, selected.ReleasePrimary(e.ctx, claims[0]))

	v, err := verify.New(selected, e.primary, e.secondary,
		verify.Options{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	rep, err := v.Run(e.ctx, verify.RunOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(1), rep.Secondary.Matched)
	assert.Equal(t, int64(1), rep.Primary.Matched)
	assert.Equal(t, registry.VerificationSucceeded, e.row(inside).VerificationState)
	assert.Equal(t, registry.VerificationPending, e.row(outside).VerificationState, "outside the prefixes: never claimed")
}
