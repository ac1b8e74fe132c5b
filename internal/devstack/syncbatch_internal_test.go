package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/events"
)

// batchRecorder is an Invoker that records the size of every batch and
// acknowledges every message.
type batchRecorder struct {
	mu    sync.Mutex
	sizes []int
}

func (r *batchRecorder) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev lambdaevents.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.sizes = append(r.sizes, len(ev.Records))
	r.mu.Unlock()
	return []byte(`{"batchItemFailures":[]}`), nil
}

func (r *batchRecorder) seen() (total, largest int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.sizes {
		total += n
		largest = max(largest, n)
	}
	return total, largest
}

// TestSyncRequestBatchesHoldAtMostTheCopyCap: the local sync-request
// queue, like the sync-request mapping infra/stacks deploys, hands a
// worker at most GEOBLOB_COPY_CONCURRENCY requests at once, so one batch
// is copied at once; the event queue keeps its batch size.
func TestSyncRequestBatchesHoldAtMostTheCopyCap(t *testing.T) {
	t.Parallel()
	const requests, copyCap = 9, 3
	dir := t.TempDir()
	qo := sqsspool.QueueOptions{Dir: filepath.Join(dir, "spool"), DeadLetterDir: filepath.Join(dir, "dead")}
	// The requests are spooled before delivery starts, so a batch could
	// take all of them.
	pre, err := sqsspool.OpenQueue(requestQueueOptions(sqsspool.QueueOptions{
		Dir: qo.Dir, DeadLetterDir: qo.DeadLetterDir, Invoker: &batchRecorder{}}, "sync", 1))
	require.NoError(t, err)
	for i := range requests {
		body, err := events.EncodeSyncRequests([]events.SyncRequest{{DataType: "npm_package_file", Key: fmt.Sprintf("npm/p%d/-/p%d-1.0.0.tgz", i, i), Generation: 1}})
		require.NoError(t, err)
		_, err = pre.Append(body)
		require.NoError(t, err)
	}

	syncs, evs := &batchRecorder{}, &batchRecorder{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d, err := startDelivery(ctx, "127.0.0.1:0", "token", invokers{events: evs, sync: syncs, syncBatch: copyCap}, qo, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { _ = d.close(context.Background()) }()
	require.Eventually(t, func() bool { total, _ := syncs.seen(); return total == requests }, time.Minute, 10*time.Millisecond)
	_, largest := syncs.seen()
	assert.Equal(t, copyCap, largest, "batches of at most the copy cap, and full ones when requests wait")
}
