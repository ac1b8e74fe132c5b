package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/verify"
)

// recordingFunction answers like a function: it keeps the message ids it
// was given and fails the ones listed (or the whole invocation).
type recordingFunction struct {
	got     []string
	failIDs []string
	err     error
}

func (f *recordingFunction) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev lambdaevents.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	for _, m := range ev.Records {
		f.got = append(f.got, m.MessageId)
	}
	if f.err != nil {
		return nil, f.err
	}
	resp := lambdaevents.SQSEventResponse{}
	for _, id := range f.failIDs {
		resp.BatchItemFailures = append(resp.BatchItemFailures, lambdaevents.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return json.Marshal(resp)
}

func sqsEvent(t *testing.T, bodies map[string]string) []byte {
	t.Helper()
	var ev lambdaevents.SQSEvent
	for _, id := range []string{"1", "2", "3", "4"} {
		if file, ok := bodies[id]; ok {
			b, err := os.ReadFile("../../testdata/events/" + file)
			require.NoError(t, err)
			ev.Records = append(ev.Records, lambdaevents.SQSMessage{MessageId: id, EventSource: "aws:sqs", Body: string(b)})
		}
	}
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	return b
}

func failures(t *testing.T, resp []byte) []string {
	t.Helper()
	var r lambdaevents.SQSEventResponse
	require.NoError(t, json.Unmarshal(resp, &r))
	ids := []string{}
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func TestEventRouterSendsEachMessageToItsFunction(t *testing.T) {
	create, remove := &recordingFunction{failIDs: []string{"3"}}, &recordingFunction{}
	r := &eventRouter{onCreate: create, onDelete: remove}
	resp, err := r.Invoke(t.Context(), sqsEvent(t, map[string]string{
		"1": "minio-put.json", "2": "minio-delete.json", "3": "minio-put.json", "4": "minio-noop.json",
	}))
	require.NoError(t, err)
	assert.Equal(t, []string{"1", "3"}, create.got)
	assert.Equal(t, []string{"2", "4"}, remove.got, "ObjectRemoved (NoOP included) goes to onDelete")
	assert.Equal(t, []string{"3"}, failures(t, resp), "the functions' batch item failures, merged")

	// A function that crashes fails exactly the messages it was given.
	create, remove = &recordingFunction{}, &recordingFunction{err: errors.New("runtime exited")}
	r = &eventRouter{onCreate: create, onDelete: remove, logger: slog.New(slog.DiscardHandler)}
	resp, err = r.Invoke(t.Context(), sqsEvent(t, map[string]string{"1": "minio-put.json", "2": "minio-delete.json"}))
	require.NoError(t, err)
	assert.Equal(t, []string{"2"}, failures(t, resp))

	// A direct (non-SQS) body goes to its function unchanged.
	body, err := os.ReadFile("../../testdata/events/minio-delete.json")
	require.NoError(t, err)
	create, remove = &recordingFunction{}, &recordingFunction{err: errors.New("not an SQS event")}
	r = &eventRouter{onCreate: create, onDelete: remove}
	_, err = r.Invoke(t.Context(), body)
	assert.ErrorContains(t, err, "not an SQS event", "onDelete got it")
}

func TestScheduledEventIsWhatBackfillAccepts(t *testing.T) {
	payload := ScheduledEvent("eu-west-1", "geoblob-backfill", time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	var ev lambdaevents.CloudWatchEvent
	require.NoError(t, json.Unmarshal(payload, &ev))
	assert.Equal(t, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), ev.Time)
	assert.Equal(t, "Scheduled Event", ev.DetailType)
	assert.Equal(t, "aws.events", ev.Source)
	assert.Equal(t, []string{"arn:aws:events:eu-west-1:000000000000:rule/geoblob-backfill"}, ev.Resources)
	assert.JSONEq(t, `{}`, string(ev.Detail))
	req, err := backfill.ParseRequest(payload)
	require.NoError(t, err)
	assert.Equal(t, backfill.Request{}, req, "a scheduled event runs the configured defaults")
	_, err = verify.ParseRequest(payload)
	require.NoError(t, err)
}

// blockingFunction stands for one function process: it reports each
// invocation on entered and returns when release is closed.
type blockingFunction struct {
	entered chan struct{}
	release chan struct{}
}

func (f *blockingFunction) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	f.entered <- struct{}{}
	select {
	case <-f.release:
		return []byte(`{}`), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestWorkerPoolRunsConcurrentInvocationsInSeparateWorkers(t *testing.T) {
	release := make(chan struct{})
	a := &blockingFunction{entered: make(chan struct{}, 4), release: release}
	b := &blockingFunction{entered: make(chan struct{}, 4), release: release}
	p := NewWorkerPool(a, b)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := p.Invoke(t.Context(), nil)
			done <- err
		}()
	}
	// Both run at once, one in each worker (a worker that took both would
	// block on the second until release).
	<-a.entered
	<-b.entered

	// A third invocation waits for a free worker: here until its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Invoke(ctx, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	close(release)
	require.NoError(t, <-done)
	require.NoError(t, <-done)
	assert.Equal(t, PoolStats{Invocations: []int64{1, 1}, Overlapped: 1}, p.Stats())

	// Workers are free again.
	_, err = p.Invoke(t.Context(), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(1), p.Stats().Overlapped, "one at a time does not overlap")
}

func TestSyncWorkersRunTheOnCreateBinary(t *testing.T) {
	names := WorkerNames(FnSyncWorker, SyncQueueConcurrency)
	require.Len(t, names, SyncQueueConcurrency)
	assert.Equal(t, "onCreate-sync-1", names[0])
	for _, n := range names {
		assert.Equal(t, FnOnCreate, binaryOf(n), n)
	}
	assert.Equal(t, FnVerify, binaryOf(FnVerifyWorker+"-2"))
	assert.Equal(t, FnOnCreate, binaryOf(FnOnCreate))
}
