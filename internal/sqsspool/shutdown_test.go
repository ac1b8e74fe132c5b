package sqsspool_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/sqsspool"
)

// stuckInvoker never answers on its own: it returns only when its context
// is cancelled, and counts the invocations that have returned.
type stuckInvoker struct {
	started, returned atomic.Int64
}

func (s *stuckInvoker) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	s.started.Add(1)
	defer s.returned.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// No invocation outlives the queue worker: when the grace period after
// shutdown ends, the invocations still running are cancelled and Run
// returns only after they (and their result senders) are done; the
// messages stay spooled for the next worker.
func TestRunLeavesNoInvocationBehind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inv := &stuckInvoker{}
	q, err := sqsspool.OpenQueue(sqsspool.QueueOptions{
		Dir: filepath.Join(dir, "spool"), DeadLetterDir: filepath.Join(dir, "dlq"),
		Invoker: inv, Concurrency: 2, BatchSize: 1, ShutdownGrace: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "c"} {
		_, err := q.Append([]byte(minioBody(k, 1)))
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	require.Eventually(t, func() bool { return inv.started.Load() == 2 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its grace period")
	}
	assert.Equal(t, inv.started.Load(), inv.returned.Load(), "every invocation returned before Run did")
	c, err := sqsspool.CountSpool(filepath.Join(dir, "spool"), filepath.Join(dir, "dlq"))
	require.NoError(t, err)
	assert.Equal(t, 3, c.Queued, "unacknowledged messages stay spooled")
	assert.Zero(t, c.Retrying, "a shutdown is not a failed receive")
}
