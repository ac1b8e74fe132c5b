package sqsspool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/dispatch"
	geoevents "github.com/geoblob/geoblob/shared/events"
)

func TestReceiverSpoolsBeforeAnswering(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, err := sqsspool.OpenQueue(sqsspool.QueueOptions{
		Dir: filepath.Join(dir, "spool"), DeadLetterDir: filepath.Join(dir, "dlq"),
		Invoker: lambda.NewHandler(func(context.Context, json.RawMessage) (any, error) { return nil, nil }),
	})
	require.NoError(t, err)
	const token = "stack-secret"
	srv, err := sqsspool.ListenEvents("127.0.0.1:0", sqsspool.NewReceiver(q, nil, sqsspool.ReceiverOptions{Token: token}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	url := "http://" + srv.Addr() + "/minio/events"

	postAs := func(auth, body string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(body string) (int, string) { return postAs("Bearer "+token, body) }

	// Without the stack's secret (as MinIO sends its webhook auth token),
	// nothing is spooled.
	for _, auth := range []string{"", "Bearer wrong", token, "Bearer " + token + "x"} {
		code, _ := postAs(auth, `{"Records":[]}`)
		assert.Equal(t, http.StatusUnauthorized, code, "authorization %q", auth)
	}
	code, answer := post(`{"EventName":"s3:ObjectCreated:Put","Records":[]}`)
	require.Equal(t, http.StatusOK, code, answer)
	assert.Contains(t, answer, `"MessageId":"00000000000000000001"`)
	b, err := os.ReadFile(filepath.Join(dir, "spool", "00000000000000000001.0.json"))
	require.NoError(t, err, "answered 200 only once the body is in the spool")
	assert.Equal(t, `{"EventName":"s3:ObjectCreated:Put","Records":[]}`, string(b), "body spooled unchanged")
	st, err := os.Stat(filepath.Join(dir, "spool", "00000000000000000001.0.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "spool files are the owner's only")
	for _, d := range []string{"spool", "dlq", filepath.Join("spool", "tmp")} {
		st, err := os.Stat(filepath.Join(dir, d))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), d)
	}

	// A spool that cannot persist refuses the event (MinIO logs it; the
	// backfill schedule reconciles it).
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "spool", "tmp")))
	code, _ = post(`{"Records":[]}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	resp, err := http.Head(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	c, err := sqsspool.CountSpool(filepath.Join(dir, "spool"), filepath.Join(dir, "dlq"))
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
	open := func() *sqsspool.Queue {
		q, err := sqsspool.OpenQueue(sqsspool.QueueOptions{Dir: spool, DeadLetterDir: dlq, Invoker: lambda.NewHandler(h.Handle),
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
		c, err := sqsspool.CountSpool(spool, dlq)
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

// The real dispatcher (dispatch.SQS on aws-sdk-go-v2's sqs client, which
// checks every message's MD5) sends through the SQS API stand-in into a
// spool whose queue worker delivers the requests, 3 invocations at once.
func TestSQSAPIDeliversDispatchedRequests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var (
		mu       sync.Mutex
		got      []geoevents.VerifyRequest
		inFlight int
		peak     int
	)
	worker := lambda.NewHandler(func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		inFlight--
		for _, m := range ev.Records {
			b, err := geoevents.Parse([]byte(m.Body))
			if err == nil {
				got = append(got, b.Messages[0].Verifies...)
			}
		}
		return events.SQSEventResponse{}, nil
	})
	q, err := sqsspool.OpenQueue(sqsspool.QueueOptions{Dir: filepath.Join(dir, "spool"), DeadLetterDir: filepath.Join(dir, "dlq"),
		Invoker: worker, BatchSize: 2, Concurrency: 3})
	require.NoError(t, err)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	defer func() { stop(); <-done }()

	srv := httptest.NewServer(sqsspool.NewSQSAPI(map[string]sqsspool.Enqueuer{"geoblob-verify-requests": q}, nil))
	defer srv.Close()
	client := sqs.New(sqs.Options{BaseEndpoint: aws.String(srv.URL), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	sender := dispatch.NewSQS(client, sqsspool.QueueURL(srv.URL, "geoblob-verify-requests"), 2)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var reqs []geoevents.VerifyRequest
	for i := range 25 {
		reqs = append(reqs, geoevents.VerifyRequest{DataType: "npm_package_file", Key: "npm/p/-/p-" + string(rune('a'+i)) + ".tgz",
			Side: geoevents.SideSecondary, Generation: int64(i + 1), ClaimedAt: at})
	}
	require.NoError(t, sender.SendVerify(t.Context(), reqs))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(reqs) }, 30*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.ElementsMatch(t, reqs, got)
	assert.Greater(t, peak, 1, "several invocations at once")
	assert.LessOrEqual(t, peak, 3)
	mu.Unlock()

	// A queue it does not serve is an error the sender reports.
	bad := dispatch.NewSQS(client, sqsspool.QueueURL(srv.URL, "nope"), 1)
	assert.ErrorIs(t, bad.SendVerify(t.Context(), reqs[:1]), dispatch.ErrSend)
}
