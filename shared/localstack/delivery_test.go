package localstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/localstack"
	"github.com/geoblob/geoblob/shared/minioproc"
)

// flakyHandler fails the first delivery of every key, then records it.
type flakyHandler struct {
	mu       sync.Mutex
	attempts map[string]int
	done     map[string]time.Time
}

func (h *flakyHandler) Handle(_ context.Context, payload json.RawMessage) (any, error) {
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range ev.Records {
		k := r.EventName + " " + r.S3.Object.URLDecodedKey
		h.attempts[k]++
		if h.attempts[k] == 1 {
			return nil, errors.New("first delivery fails on purpose")
		}
		h.done[k] = time.Now()
	}
	return map[string]string{"ok": "yes"}, nil
}

func (h *flakyHandler) seen(k string) (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.done[k]
	return h.attempts[k], ok
}

func requireMinio(t *testing.T) {
	t.Helper()
	_, err := minioproc.FindBinary()
	require.NoError(t, err, "these tests need a MinIO binary: run `make tools` (or set GEOBLOB_MINIO_BIN)")
}

// TestMinioRetriesFailedDeliveries shows the delivery contract the stack
// relies on: a non-2xx answer keeps the event in MinIO's queue and MinIO
// delivers it again; events posted while the receiver is down are kept and
// delivered when it is back.
func TestMinioRetriesFailedDeliveries(t *testing.T) {
	requireMinio(t)
	ctx := t.Context()
	s, err := localstack.FreeSettings(stateDir(t))
	require.NoError(t, err)
	h := &flakyHandler{attempts: map[string]int{}, done: map[string]time.Time{}}
	runner := &localstack.InProcess{Invoker: lambda.NewHandler(h.Handle)}
	st, err := localstack.Up(ctx, localstack.UpOptions{Settings: s, Events: runner})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = runner.Close(context.Background())
		_ = st.Close(context.Background())
	})
	primary := s.Bucket(localstack.Primary)

	require.NoError(t, primary.Put(ctx, "generic/a/1.0.0/a.bin", []byte("hello"), ""))
	require.Eventually(t, func() bool {
		_, ok := h.seen("s3:ObjectCreated:Put generic/a/1.0.0/a.bin")
		return ok
	}, 30*time.Second, 50*time.Millisecond, "MinIO did not redeliver an event answered with 500")
	n, _ := h.seen("s3:ObjectCreated:Put generic/a/1.0.0/a.bin")
	assert.Equal(t, 2, n, "one failed and one successful delivery")

	// Receiver down: the event waits in MinIO's queue directory.
	require.NoError(t, runner.Close(ctx))
	require.NoError(t, primary.Put(ctx, "generic/b/1.0.0/b.bin", []byte("while down"), ""))
	time.Sleep(4 * time.Second) // more than MinIO's 3 s retry interval
	_, ok := h.seen("s3:ObjectCreated:Put generic/b/1.0.0/b.bin")
	require.False(t, ok)
	runner2 := &localstack.InProcess{Invoker: lambda.NewHandler(h.Handle)}
	_, err = runner2.StartEvents(ctx, s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner2.Close(context.Background()) })
	require.Eventually(t, func() bool {
		_, ok := h.seen("s3:ObjectCreated:Put generic/b/1.0.0/b.bin")
		return ok
	}, 30*time.Second, 50*time.Millisecond, "event posted while the receiver was down was lost")
}

// stateDir is a temporary state directory PostgreSQL's user can enter
// (t.TempDir is private to root).
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localstack-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
