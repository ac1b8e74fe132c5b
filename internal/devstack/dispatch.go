package devstack

import (
	"context"
	"fmt"

	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/events"
)

// SyncQueueConcurrency is how many invocations the local sync-request
// queue runs at once (the event source mapping's maximum concurrency), so
// backfill's fan-out to the copy workers is exercised locally.
const SyncQueueConcurrency = 4

// QueueDispatcher is backfill's Dispatcher on the local stack: it puts
// each sync request into a local queue (the SQS stand-in), whose worker
// hands it to the onCreate handler exactly as the sync-request queue's
// event source mapping does in AWS.
type QueueDispatcher struct {
	Queue *sqsspool.Queue
}

var _ backfill.Dispatcher = QueueDispatcher{}

// SendSync spools one message per request.
func (d QueueDispatcher) SendSync(_ context.Context, reqs []events.SyncRequest) error {
	for _, r := range reqs {
		body, err := events.EncodeSyncRequests([]events.SyncRequest{r})
		if err != nil {
			return fmt.Errorf("devstack: sync request: %w", err)
		}
		if _, err := d.Queue.Append(body); err != nil {
			return fmt.Errorf("devstack: spool sync request: %w", err)
		}
	}
	return nil
}

// syncQueueOptions derives the sync-request queue's options from the
// event queue's: its own spool and dead-letter directories next to the
// event spool's, SyncQueueConcurrency invocations at once; Observe sees
// its deliveries too (from its own goroutine).
func syncQueueOptions(qo sqsspool.QueueOptions) sqsspool.QueueOptions {
	so := qo
	so.Dir, so.DeadLetterDir = qo.Dir+"-sync", qo.DeadLetterDir+"-sync"
	so.Concurrency = SyncQueueConcurrency
	return so
}
