package verify_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// slowSide makes every hash take delay and counts the hashes cut off by
// their context.
type slowSide struct {
	verify.Side
	delay            time.Duration
	finished, cutOff atomic.Int64
}

var _ verify.Side = (*slowSide)(nil)

func (s *slowSide) Hash(ctx context.Context, key string) (verify.Digest, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		s.cutOff.Add(1)
		return verify.Digest{}, ctx.Err()
	}
	d, err := s.Side.Hash(ctx, key)
	if err == nil {
		s.finished.Add(1)
	}
	return d, err
}

// TestRunStopsClaimingBeforeTheInvocationDeadline: a pass whose context
// carries a deadline (a Lambda invocation's) well inside its budget stops
// claiming DeadlineMargin before it, so no check is cut off mid-hash, every
// check records its result before the deadline, and no claim is left
// behind for the stuck-claim timeout.
func TestRunStopsClaimingBeforeTheInvocationDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const rows = 40
	for i := range rows {
		e.upload(content(i, 32))
	}
	require.Equal(t, rows, e.syncDue())

	sec := &slowSide{Side: e.secondary, delay: 150 * time.Millisecond}
	v, err := verify.New(e.reg, e.primary, sec, verify.Options{
		Concurrency: 2, BatchSize: 2, Budget: time.Hour, DeadlineMargin: 500 * time.Millisecond,
		NoPrimary: true, ReverifyInterval: 1000 * time.Hour,
	})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(e.ctx, 1200*time.Millisecond)
	defer cancel()
	rep, err := v.Run(ctx, verify.RunOptions{})
	require.NoError(t, err)
	assert.NoError(t, ctx.Err(), "the pass must end before the invocation deadline")
	assert.True(t, rep.BudgetExhausted, "work was left for the next pass")
	assert.Zero(t, sec.cutOff.Load(), "no check may be cut off mid-hash")
	assert.Positive(t, sec.finished.Load())
	assert.Less(t, sec.finished.Load(), int64(rows))

	var started, succeeded int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT
		count(*) FILTER (WHERE verification_state = $1),
		count(*) FILTER (WHERE verification_state = $2) FROM blob_registry`,
		registry.VerificationStarted, registry.VerificationSucceeded).Scan(&started, &succeeded))
	assert.Zero(t, started, "no claim left behind")
	assert.Equal(t, int(sec.finished.Load()), succeeded, "every finished check recorded its result")
}
