package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
)

func TestReceiverSpoolsBeforeAnswering(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, err := devstack.OpenQueue(devstack.QueueOptions{
		Dir: filepath.Join(dir, "spool"), DeadLetterDir: filepath.Join(dir, "dlq"),
		Invoker: lambda.NewHandler(func(context.Context, json.RawMessage) (any, error) { return nil, nil }),
	})
	require.NoError(t, err)
	srv, err := devstack.ListenEvents("127.0.0.1:0", devstack.NewReceiver(q, nil, devstack.ReceiverOptions{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	url := "http://" + srv.Addr() + "/minio/events"

	post := func(body string) (int, string) {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, answer := post(`{"EventName":"s3:ObjectCreated:Put","Records":[]}`)
	require.Equal(t, http.StatusOK, code, answer)
	assert.Contains(t, answer, `"MessageId":"00000000000000000001"`)
	b, err := os.ReadFile(filepath.Join(dir, "spool", "00000000000000000001.0.json"))
	require.NoError(t, err, "answered 200 only once the body is in the spool")
	assert.Equal(t, `{"EventName":"s3:ObjectCreated:Put","Records":[]}`, string(b), "body spooled unchanged")

	// A spool that cannot persist refuses the event (MinIO logs it; the
	// backfill schedule reconciles it).
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "spool", "tmp")))
	code, _ = post(`{"Records":[]}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	resp, err := http.Head(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	c, err := devstack.CountSpool(filepath.Join(dir, "spool"), filepath.Join(dir, "dlq"))
	require.NoError(t, err)
	assert.Equal(t, 1, c.Queued)
}

// sqsRecorder is a handler taking SQS events: it records every batch and
// fails the messages whose body contains "fail".
type sqsRecorder struct {
	mu       sync.Mutex
	batches  [][]events.SQSMessage
	inFlight map[string]bool
	overlap  []string
}

func (h *sqsRecorder) Handle(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	h.mu.Lock()
	h.batches = append(h.batches, ev.Records)
	for _, m := range ev.Records {
		g := groupOf(m.Body)
		if g != "" && h.inFlight[g] {
			h.overlap = append(h.overlap, g)
		}
		h.inFlight[g] = true
	}
	h.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range ev.Records {
		delete(h.inFlight, groupOf(m.Body))
		if strings.Contains(m.Body, "fail") {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

func groupOf(body string) string {
	var b struct {
		Records []struct {
			S3 struct {
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
	}
	if json.Unmarshal([]byte(body), &b) != nil || len(b.Records) == 0 {
		return ""
	}
	return b.Records[0].S3.Object.Key
}

func minioBody(key string, n int) string {
	return fmt.Sprintf(`{"EventName":"s3:ObjectCreated:Put","Key":"b/%s","Records":[{"eventSource":"minio:s3","s3":{"bucket":{"name":"b"},"object":{"key":%q,"sequencer":"%X"}}}]}`, key, key, n)
}

// TestQueueDeliversLikeAnSQSEventSource drives the queue with a recording
// handler: SQS event shape, batches of at most 10, one message per key in
// flight and per-key order, retries with a growing receive count, dead
// letters after MaxReceives, and messages left by a stopped worker
// delivered by the next one.
func TestQueueDeliversLikeAnSQSEventSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spool, dlq := filepath.Join(dir, "spool"), filepath.Join(dir, "dlq")
	h := &sqsRecorder{inFlight: map[string]bool{}}
	open := func() *devstack.Queue {
		q, err := devstack.OpenQueue(devstack.QueueOptions{Dir: spool, DeadLetterDir: dlq, Invoker: lambda.NewHandler(h.Handle),
			MaxReceives: 3, Visibility: 10 * time.Millisecond, Concurrency: 3})
		require.NoError(t, err)
		return q
	}

	// Spooled by a worker that never ran: the next one delivers them.
	q := open()
	var bodies []string
	for i := range 30 {
		bodies = append(bodies, minioBody(fmt.Sprintf("k%d", i%4), i))
		_, err := q.Append([]byte(bodies[i]))
		require.NoError(t, err)
	}
	_, err := q.Append([]byte("fail: not json"))
	require.NoError(t, err)
	q = open()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	require.Eventually(t, func() bool {
		c, err := devstack.CountSpool(spool, dlq)
		return err == nil && c.Queued == 0 && c.DeadLetters == 1
	}, 20*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Empty(t, h.overlap, "two messages of one key were in flight at once")
	perKey := map[string][]string{}
	failReceives := []string{}
	for _, batch := range h.batches {
		assert.LessOrEqual(t, len(batch), 10)
		keys := map[string]bool{}
		for _, m := range batch {
			assert.Equal(t, "aws:sqs", m.EventSource)
			assert.NotEmpty(t, m.ReceiptHandle)
			if strings.HasPrefix(m.Body, "fail") {
				failReceives = append(failReceives, m.Attributes["ApproximateReceiveCount"])
				continue
			}
			g := groupOf(m.Body)
			assert.False(t, keys[g], "key %s twice in one batch", g)
			keys[g] = true
			perKey[g] = append(perKey[g], m.Body)
			assert.Equal(t, "1", m.Attributes["ApproximateReceiveCount"])
		}
	}
	assert.Equal(t, []string{"1", "2", "3"}, failReceives, "retried, then dead-lettered after MaxReceives")
	for i := range 4 {
		var want []string
		for j, b := range bodies {
			if j%4 == i {
				want = append(want, b)
			}
		}
		assert.Equal(t, want, perKey[fmt.Sprintf("k%d", i)], "bodies unchanged, in order, each once")
	}
	reason, err := os.ReadFile(filepath.Join(dlq, "00000000000000000031.reason.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(reason), "3 receives")
	dead, err := os.ReadFile(filepath.Join(dlq, "00000000000000000031.3.json"))
	require.NoError(t, err)
	assert.Equal(t, "fail: not json", string(dead))
}

func TestSettingsEnvIsTheFunctionsConfig(t *testing.T) {
	t.Parallel()
	s := devstack.DefaultSettings("/tmp/x y")
	cfg, err := config.FromEnv(s.Getenv(nil))
	require.NoError(t, err)
	assert.Equal(t, "geoblob-primary", cfg.Primary.Name)
	assert.Equal(t, "http://127.0.0.1:9200", cfg.Secondary.Endpoint)
	assert.Equal(t, "eu-west-1", cfg.Secondary.Region)
	assert.True(t, cfg.PathStyle)
	env := s.EnvFileContent()
	assert.Contains(t, env, "export GEOBLOB_DATABASE_URL='postgres://postgres@127.0.0.1:9432/geoblob?sslmode=disable'")
	assert.Contains(t, env, "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:9100")
	assert.Contains(t, env, "source '/tmp/x y/env'", "paths with spaces are quoted")
}

func TestWriteStatus(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	err := devstack.WriteStatus(&b, []string{"maven_package_file", "npm_package_file"}, []registry.TypeStats{
		{DataType: "maven_package_file", Files: 3, Synced: 2, Pending: 1, Bytes: 2048, Tombstones: 1},
		{DataType: "helm_chart_file", Files: 1, Failed: 1},
	})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 6, b.String())
	assert.Regexp(t, `^\s*DATA TYPE\s+FILES\s+SYNCED\s+FAILED\s+PENDING\s+VERIFIED\s+DELETED\s+BYTES$`, lines[0])
	assert.Regexp(t, `maven_package_file\s+3\s+2\s+0\s+1\s+0\s+1\s+2.0 KiB$`, lines[1])
	assert.Regexp(t, `npm_package_file\s+0\s+0\s+0\s+0\s+0\s+0\s+0 B$`, lines[2])
	assert.Regexp(t, `helm_chart_file\s+1\s+0\s+1\s+0`, lines[3])
	assert.Regexp(t, `TOTAL\s+4\s+2\s+1\s+1\s+0\s+1\s+2.0 KiB$`, lines[5])
}

func TestComparisonProblems(t *testing.T) {
	t.Parallel()
	a := &devstack.ObjectSum{Key: "k", Size: 1, SHA256: strings.Repeat("a", 64)}
	b := &devstack.ObjectSum{Key: "k", Size: 1, SHA256: strings.Repeat("b", 64)}
	c := devstack.Comparison{Objects: []devstack.Compared{
		{Key: "same", Primary: a, Secondary: a},
		{Key: "diff", Primary: a, Secondary: b},
		{Key: "missing", Primary: a},
		{Key: "orphan", Secondary: b},
	}}
	require.Len(t, c.Mismatches(), 3)
	var out strings.Builder
	require.NoError(t, c.Write(&out, false))
	assert.Contains(t, out.String(), `MISMATCH "diff": SHA-256 differs`)
	assert.Contains(t, out.String(), `MISMATCH "missing": missing on secondary`)
	assert.Contains(t, out.String(), `MISMATCH "orphan": only on secondary`)
	assert.Contains(t, out.String(), "3 of 4 objects differ")
}
