package minioproc_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
)

func TestStartAttachStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := minioproc.Start(t.Context(), minioproc.Options{Dir: dir, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	resp, err := http.Get(srv.Endpoint() + "/minio/health/live")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	pid, err := os.ReadFile(filepath.Join(dir, minioproc.PidFile))
	require.NoError(t, err)
	assert.NotEmpty(t, strings.TrimSpace(string(pid)))

	_, err = minioproc.Start(t.Context(), minioproc.Options{Dir: dir})
	require.Error(t, err, "a second server in the same dir is refused")

	// Another process (make down) attaches through the state file.
	att, err := minioproc.Attach(dir)
	require.NoError(t, err)
	assert.Equal(t, srv.State(), att.State())
	require.NoError(t, att.Stop())

	_, err = http.Get(srv.Endpoint() + "/minio/health/live")
	require.Error(t, err, "server is gone")
	_, err = minioproc.Attach(dir)
	require.ErrorIs(t, err, minioproc.ErrNotRunning)
	require.NoError(t, srv.Stop(), "stopping twice is fine")
}

func TestFindBinaryEnv(t *testing.T) {
	t.Setenv(minioproc.BinEnv, filepath.Join(t.TempDir(), "nope"))
	_, err := minioproc.FindBinary()
	require.ErrorIs(t, err, minioproc.ErrBinaryNotFound)
	assert.Contains(t, err.Error(), "make tools")
	_, err = minioproc.Start(t.Context(), minioproc.Options{Dir: t.TempDir()})
	require.ErrorIs(t, err, minioproc.ErrBinaryNotFound)
}

// hook collects webhook deliveries.
type hook struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, b)
	h.mu.Unlock()
}

// records decodes every delivery as an S3 event and returns its records.
func (h *hook) records(t *testing.T) []events.S3EventRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []events.S3EventRecord
	for _, b := range h.bodies {
		var ev events.S3Event
		require.NoError(t, json.Unmarshal(b, &ev), "webhook body decodes into events.S3Event: %s", b)
		out = append(out, ev.Records...)
	}
	return out
}

func (h *hook) waitFor(t *testing.T, key string, timeout time.Duration) []events.S3EventRecord {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []events.S3EventRecord
		for _, r := range h.records(t) {
			if r.S3.Object.URLDecodedKey == key || r.S3.Object.Key == key {
				got = append(got, r)
			}
		}
		if len(got) > 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWebhookNotifications(t *testing.T) {
	t.Parallel()
	h := &hook{}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	srv := s3test.NewMinio(t, func(o *minioproc.Options) { o.Webhooks = map[string]string{"geoblob": hs.URL + "/hook"} })
	bucket := s3test.Bucket(t, srv.Endpoint(), "events")
	require.NoError(t, minioproc.ConfigureWebhook(t.Context(), bucket, "geoblob"))

	const key = "dir/a b+c%ü.txt"
	_, err := bucket.Put(t.Context(), key, []byte("hi"), "")
	require.NoError(t, err)
	created := h.waitFor(t, key, 10*time.Second)
	require.Len(t, created, 1)
	rec := created[0]
	assert.Equal(t, "s3:ObjectCreated:Put", rec.EventName, "MinIO prefixes event names with s3:")
	assert.Equal(t, "minio:s3", rec.EventSource)
	assert.Equal(t, "events", rec.S3.Bucket.Name)
	assert.Equal(t, int64(2), rec.S3.Object.Size)
	assert.NotEmpty(t, rec.S3.Object.Sequencer)
	assert.Equal(t, "dir%2Fa+b%2Bc%25%C3%BC.txt", rec.S3.Object.Key, "keys are query-escaped: space as '+', even '/' as %2F")
	assert.Equal(t, key, rec.S3.Object.URLDecodedKey)

	require.NoError(t, bucket.Store().Delete(t.Context(), key))
	require.NoError(t, bucket.Store().Delete(t.Context(), "never/existed"))
	require.Eventually(t, func() bool { return len(h.waitFor(t, key, 0)) == 2 && len(h.waitFor(t, "never/existed", 0)) == 1 },
		10*time.Second, 50*time.Millisecond)
	assert.Equal(t, "s3:ObjectRemoved:Delete", h.waitFor(t, key, 0)[1].EventName)
	assert.Equal(t, "s3:ObjectRemoved:NoOP", h.waitFor(t, "never/existed", 0)[0].EventName)
	h.mu.Lock()
	t.Logf("sample webhook body: %s", h.bodies[0])
	h.mu.Unlock()
}

// TestWebhookDownAtStart records what MinIO does when the webhook endpoint
// is unreachable: it starts anyway, accepts the bucket notification
// configuration, and, with the on-disk queue (the default here), delivers
// the events of that period once the endpoint is up. Without the queue
// those events are lost.
func TestWebhookDownAtStart(t *testing.T) {
	t.Parallel()
	for _, queued := range []bool{true, false} {
		name := map[bool]string{true: "queue", false: "no-queue"}[queued]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := l.Addr().String()
			require.NoError(t, l.Close()) // nothing listens there yet

			start := time.Now()
			srv := s3test.NewMinio(t, func(o *minioproc.Options) {
				o.Webhooks = map[string]string{"down": "http://" + addr + "/hook"}
				o.NoWebhookQueue = !queued
			})
			t.Logf("%s: MinIO ready in %v with its webhook endpoint down", name, time.Since(start).Round(time.Millisecond))
			bucket := s3test.Bucket(t, srv.Endpoint(), "bkt")
			require.NoError(t, minioproc.ConfigureWebhook(t.Context(), bucket, "down"),
				"the notification configuration is accepted while the target is down")
			_, err = bucket.Put(t.Context(), "while-down", nil, "")
			require.NoError(t, err, "writes are not blocked by a down webhook")

			time.Sleep(500 * time.Millisecond)
			h := &hook{}
			l, err = net.Listen("tcp", addr)
			require.NoError(t, err)
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = hs.Serve(l) }()
			t.Cleanup(func() { _ = hs.Shutdown(context.Background()) })
			up := time.Now()

			_, err = bucket.Put(t.Context(), "after-up", nil, "")
			require.NoError(t, err)
			after := h.waitFor(t, "after-up", 20*time.Second)
			t.Logf("%s: event after the endpoint came up delivered: %v (%v)", name, len(after) > 0, time.Since(up).Round(time.Millisecond))
			if queued {
				during := h.waitFor(t, "while-down", 20*time.Second)
				t.Logf("%s: event from the down period delivered: %v (%v after the endpoint came up)", name, len(during) > 0, time.Since(up).Round(time.Millisecond))
				assert.NotEmpty(t, during, "queued events are replayed")
				assert.NotEmpty(t, after)
			} else {
				during := h.waitFor(t, "while-down", 3*time.Second)
				t.Logf("%s: event from the down period delivered: %v", name, len(during) > 0)
				assert.Empty(t, during, "without a queue, events of the down period are dropped")
			}
		})
	}
}

func TestConfigureWebhookUnknownTarget(t *testing.T) {
	t.Parallel()
	bucket := s3test.Bucket(t, s3test.NewMinio(t).Endpoint(), "nohook")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err := minioproc.ConfigureWebhook(ctx, bucket, "missing")
	require.Error(t, err, "a target the server was not started with is refused")
}
