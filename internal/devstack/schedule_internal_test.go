package devstack

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A schedule whose sibling fails to build never starts: no schedule
// goroutine outlives a failed Run, and what was built is released.
func TestSchedulesFailedBuildStartsNothing(t *testing.T) {
	t.Parallel()
	var passes, closed atomic.Int64
	sc := Schedules{Backfill: time.Millisecond, Verify: time.Millisecond, FirstRun: time.Millisecond}
	boom := errors.New("no verify today")
	err := sc.run(context.Background(), slog.New(slog.DiscardHandler), []scheduledJob{
		{name: "backfill", interval: sc.Backfill, build: func(context.Context) (func(context.Context), func(), error) {
			return func(context.Context) { passes.Add(1) }, func() { closed.Add(1) }, nil
		}},
		{name: "verify", interval: sc.Verify, build: func(context.Context) (func(context.Context), func(), error) {
			return nil, nil, boom
		}},
	})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, int64(1), closed.Load(), "the backfill service built first is released")
	time.Sleep(50 * time.Millisecond)
	assert.Zero(t, passes.Load(), "no pass runs after Run returned")
}

// Run returns only after its schedule goroutines have stopped: no pass
// starts after it returned, and resources are released after the last pass.
func TestSchedulesStopWithTheirContext(t *testing.T) {
	t.Parallel()
	var passes atomic.Int64
	var closedAfter atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	sc := Schedules{Backfill: time.Millisecond, FirstRun: time.Millisecond}
	done := make(chan error, 1)
	go func() {
		done <- sc.run(ctx, slog.New(slog.DiscardHandler), []scheduledJob{
			{name: "backfill", interval: sc.Backfill, build: func(context.Context) (func(context.Context), func(), error) {
				return func(context.Context) { passes.Add(1) }, func() { closedAfter.Store(passes.Load()) }, nil
			}},
		})
	}()
	require.Eventually(t, func() bool { return passes.Load() >= 3 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	n := passes.Load()
	assert.Equal(t, n, closedAfter.Load(), "released after the last pass")
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, n, passes.Load(), "no pass after Run returned")
}
