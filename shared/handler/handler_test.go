package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/handler"
	"github.com/geoblob/geoblob/shared/registry"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const fixtureBucket = "amzn-s3-demo-bucket"

// fixture reads testdata/events/name with its bucket rewritten to the
// test's primary bucket.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	require.NoError(t, err)
	return []byte(strings.ReplaceAll(string(b), fixtureBucket, rt.PrimaryBucket))
}

// rawFixture reads a fixture unchanged (its bucket is not the primary).
func rawFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	require.NoError(t, err)
	return b
}

// fixtureEvents reads the fixture name (see fixture) and returns it with
// the object events it carries.
func fixtureEvents(t *testing.T, name string) ([]byte, []events.ObjectEvent) {
	t.Helper()
	payload := fixture(t, name)
	b, err := events.Parse(payload)
	require.NoError(t, err)
	var out []events.ObjectEvent
	for _, m := range b.Messages {
		out = append(out, m.Events...)
	}
	return payload, out
}

type harness struct {
	env     *rt.Env
	invoke  lambda.Handler
	metrics *bytes.Buffer // CloudWatch EMF lines the handler wrote
}

func newHarness(t *testing.T, opts rt.EnvOptions) *harness {
	t.Helper()
	env := rt.NewEnv(t, opts)
	var emf bytes.Buffer
	h, err := handler.New(env.Engine, handler.Options{
		PrimaryBucket: rt.PrimaryBucket, Function: "test", Logger: env.Logger,
		Rejecter: env.Registry, Metrics: &emf,
	})
	require.NoError(t, err)
	return &harness{env: env, invoke: lambda.NewHandler(h.Handle), metrics: &emf}
}

// rejected returns the keys (raw bytes) and reasons of the rejected_events rows, oldest first.
func (h *harness) rejected(t *testing.T) (keys, reasons []string) {
	t.Helper()
	rows, err := h.env.Pool.Query(context.Background(), `SELECT object_key, reason FROM rejected_events ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var k []byte
		var r string
		require.NoError(t, rows.Scan(&k, &r))
		keys, reasons = append(keys, string(k)), append(reasons, r)
	}
	require.NoError(t, rows.Err())
	return keys, reasons
}

func lambdaCtx() context.Context {
	return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "test-request-1"})
}

// direct invokes with a direct payload and decodes the summary.
// handled invokes the function directly with payload and returns its
// summary; the invocation must succeed (msgAndArgs say why).
func (h *harness) handled(t *testing.T, payload []byte, msgAndArgs ...any) handler.Summary {
	t.Helper()
	sum, err := h.direct(t, payload)
	require.NoError(t, err, msgAndArgs...)
	return sum
}

func (h *harness) direct(t *testing.T, payload []byte) (handler.Summary, error) {
	t.Helper()
	out, err := h.invoke.Invoke(lambdaCtx(), payload)
	if err != nil {
		return handler.Summary{}, err
	}
	var s handler.Summary
	require.NoError(t, json.Unmarshal(out, &s), "summary: %s", out)
	return s, nil
}

// sqs invokes with an SQS payload and returns the failed message ids.
func (h *harness) sqs(t *testing.T, payload []byte) []string {
	t.Helper()
	out, err := h.invoke.Invoke(lambdaCtx(), payload)
	require.NoError(t, err, "an SQS invocation reports failures per message, never as an error")
	var resp lambdaevents.SQSEventResponse
	require.NoError(t, json.Unmarshal(out, &resp), "response: %s", out)
	ids := []string{}
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func (h *harness) assertSynced(t *testing.T, key string, body []byte) {
	t.Helper()
	got, ok := h.env.SecondaryBytes(t, key)
	require.True(t, ok, "no secondary copy of %q", key)
	assert.Equal(t, body, got, "secondary bytes of %q", key)
	row := h.env.Row(t, key)
	assert.Equal(t, registry.StateSynced, row.State, key)
	assert.Equal(t, rt.SHA256(body), row.PrimarySHA256, key)
	assert.False(t, row.Tombstoned(), key)
}

func (h *harness) assertDeleted(t *testing.T, key string) {
	t.Helper()
	_, ok := h.env.SecondaryBytes(t, key)
	assert.False(t, ok, "secondary copy of %q survived", key)
	row := h.env.Row(t, key)
	assert.True(t, row.Tombstoned(), key)
	assert.Equal(t, registry.StateSynced, row.State, key)
}

func TestCreatedFixturesReplicate(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"s3-put.json", "s3-copy.json", "s3-multipart-complete.json",
		"s3-key-spaces.json", "s3-key-plus.json", "s3-key-unicode.json", "s3-key-mixed.json",
		"eventbridge-created.json", "minio-put.json",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, rt.EnvOptions{})
			payload, evs := fixtureEvents(t, name)
			require.NotEmpty(t, evs)
			for _, ev := range evs {
				h.env.PutPrimary(t, ev.Key, rt.Content(ev.Key, 777))
			}
			sum := h.handled(t, payload)
			assert.Equal(t, len(evs), sum.Received)
			assert.Equal(t, len(evs), sum.Synced)
			assert.Zero(t, sum.Failed)
			for _, ev := range evs {
				h.assertSynced(t, ev.Key, rt.Content(ev.Key, 777))
			}
		})
	}
}

func TestRemovedFixturesDelete(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"s3-delete.json", "s3-delete-marker.json", "s3-lifecycle-expiration.json",
		"eventbridge-deleted.json", "eventbridge-lifecycle-expiration.json",
		"minio-delete.json", "minio-noop.json",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, rt.EnvOptions{})
			payload, evs := fixtureEvents(t, name)
			require.Len(t, evs, 1)
			key := evs[0].Key
			if name != "minio-noop.json" { // NoOP: the key never existed
				h.env.PutSecondary(t, key, []byte("an earlier copy"))
			}
			sum := h.handled(t, payload)
			assert.Equal(t, 1, sum.Deleted)
			h.assertDeleted(t, key)
		})
	}
}

func TestNonActionableFixtures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})

	sum := h.handled(t, fixture(t, "s3-test-event.json"))
	assert.Equal(t, 1, sum.TestEvents)

	sum = h.handled(t, fixture(t, "s3-restore-completed.json"), "unsupported events are not retried")
	assert.Equal(t, 1, sum.Unsupported)
	assert.False(t, h.env.HasRow(t, "maven/com/example/app/1.0.0/app-1.0.0.jar"))

	// The fixture's own bucket is not the primary: counted, not replicated, not retried.
	key := "maven/com/example/app/1.0.0/app-1.0.0.jar"
	h.env.PutPrimary(t, key, []byte("x"))
	sum = h.handled(t, rawFixture(t, "s3-put.json"))
	assert.Equal(t, 1, sum.ForeignBucket)
	assert.Zero(t, sum.Synced)
	assert.False(t, h.env.HasRow(t, key))

	// A key of no data type is ignored.
	payload := strings.ReplaceAll(string(fixture(t, "s3-put.json")), "maven/com/example/app/1.0.0/app-1.0.0.jar", "tmp/scratch.bin")
	sum = h.handled(t, []byte(payload))
	assert.Equal(t, 1, sum.Ignored)

	_, err := h.direct(t, []byte(`{"not":"an event"}`))
	require.ErrorIs(t, err, handler.ErrFailed)
}

func TestDirectInvalidEscapeFailsButKeepsGoodRecords(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	h.env.PutPrimary(t, "generic/good/ok.bin", []byte("ok!"))
	_, err := h.direct(t, fixture(t, "s3-key-invalid-escape.json"))
	require.Error(t, err, "a malformed record fails the direct invocation")
	assert.ErrorIs(t, err, handler.ErrFailed)
	h.assertSynced(t, "generic/good/ok.bin", []byte("ok!"))
}

func TestSQSPartialBatchFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	jar := "maven/com/example/app/1.0.0/app-1.0.0.jar"
	h.env.PutPrimary(t, jar, rt.Content(jar, 1024))
	// left-pad is deleted on the primary (SNS-wrapped delete); its older
	// copy event comes after the delete in the same batch and is stale.
	h.env.PutSecondary(t, "npm/left-pad/-/left-pad-1.3.0.tgz", []byte("old copy"))

	failed := h.sqs(t, fixture(t, "sqs-batch.json"))
	assert.ElementsMatch(t, []string{
		"2e1424d4-f796-459a-8184-9c92662be6da", // not JSON
		"4c6f5cab-8e6d-4d66-ab10-1f5d6b7c8d9e", // invalid %-escape
	}, failed)
	h.assertSynced(t, jar, rt.Content(jar, 1024))
	h.assertDeleted(t, "npm/left-pad/-/left-pad-1.3.0.tgz")

	// Redelivering the whole batch changes nothing and fails the same messages.
	failed = h.sqs(t, fixture(t, "sqs-batch.json"))
	assert.Len(t, failed, 2)
	h.assertSynced(t, jar, rt.Content(jar, 1024))
	h.assertDeleted(t, "npm/left-pad/-/left-pad-1.3.0.tgz")
}

func TestSQSEventBridge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	created := "generic/odd names/v1/file with spaces+plus%percent ü.bin"
	h.env.PutPrimary(t, created, []byte("hello"))
	h.env.PutSecondary(t, "npm/@scope/util/-/util-2.0.1.tgz", []byte("old"))
	assert.Empty(t, h.sqs(t, fixture(t, "sqs-eventbridge.json")))
	h.assertSynced(t, created, []byte("hello"))
	h.assertDeleted(t, "npm/@scope/util/-/util-2.0.1.tgz")
}

func TestReorderedDirectInvocations(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	key := "maven/com/example/app/1.0.0/app-1.0.0.jar"
	// The delete (sequencer ...F0) is delivered before the put (...E5).
	sum := h.handled(t, fixture(t, "s3-delete.json"))
	assert.Equal(t, 1, sum.Deleted)
	sum = h.handled(t, fixture(t, "s3-put.json"))
	assert.Equal(t, 1, sum.Stale)
	h.assertDeleted(t, key)
}

func TestMissingOnPrimaryIsNotAnError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	sum := h.handled(t, fixture(t, "s3-put.json"), "a vanished object must not make Lambda retry")
	assert.Equal(t, 1, sum.MissingOnPrimary)
	row := h.env.Row(t, "maven/com/example/app/1.0.0/app-1.0.0.jar")
	assert.Equal(t, registry.StateFailed, row.State)
	assert.True(t, row.MissingOnPrimary)
	require.NotNil(t, row.RetryAt)
	assert.True(t, row.RetryAt.After(time.Now()))
}

func TestSecondaryFailureIsBatchFailureThenRetrySucceeds(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	h := newHarness(t, rt.EnvOptions{
		SecondaryEndpoint: func(t testing.TB, endpoint string) string {
			return s3test.NewFaultProxy(t, endpoint, func(r *http.Request) s3test.Fault {
				if failing.Load() && s3test.Op(r) == s3test.OpPutObject {
					return s3test.Fault{Status: http.StatusServiceUnavailable}
				}
				return s3test.Fault{}
			}).Endpoint()
		},
		SecondaryMaxAttempts: 2,
	})
	key := "npm/left-pad/-/left-pad-1.3.0.tgz"
	body := rt.Content(key, 2048)
	h.env.PutPrimary(t, key, body)
	payload := sqsOf(t, "msg-1", fixture(t, "s3-copy.json"))

	assert.Equal(t, []string{"msg-1"}, h.sqs(t, payload))
	row := h.env.Row(t, key)
	assert.Equal(t, registry.StateFailed, row.State)
	assert.Nil(t, row.LastSyncedAt)
	_, ok := h.env.SecondaryBytes(t, key)
	assert.False(t, ok)

	failing.Store(false)
	assert.Empty(t, h.sqs(t, payload), "the redelivery must succeed")
	h.assertSynced(t, key, body)
}

func TestDatabaseRestartLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := pgtest.NewCluster(t)
	require.NoError(t, cluster.CreateDatabase(ctx, "geoblob"))
	h := newHarness(t, rt.EnvOptions{DSN: cluster.DSN("geoblob")})
	jar := "maven/com/example/app/1.0.0/app-1.0.0.jar"
	tgz := "npm/left-pad/-/left-pad-1.3.0.tgz"
	h.env.PutPrimary(t, jar, []byte("jar bytes"))
	h.env.PutPrimary(t, tgz, []byte("tgz bytes"))

	assert.Empty(t, h.sqs(t, sqsOf(t, "m-jar", fixture(t, "s3-put.json"))))
	h.assertSynced(t, jar, []byte("jar bytes"))

	require.NoError(t, cluster.Stop(ctx))
	payload := sqsOf(t, "m-tgz", fixture(t, "s3-copy.json"))
	assert.Equal(t, []string{"m-tgz"}, h.sqs(t, payload), "the event must be failed back to SQS while the database is down")
	_, err := h.direct(t, fixture(t, "s3-copy.json"))
	assert.Error(t, err, "a direct invocation must fail while the database is down")

	require.NoError(t, cluster.Restart(ctx))
	// SQS redelivers; pooled connections broken by the restart may cost
	// one more delivery.
	var failed []string
	for range 3 {
		if failed = h.sqs(t, payload); len(failed) == 0 {
			break
		}
	}
	assert.Empty(t, failed, "the redelivery after the restart must succeed")
	h.assertSynced(t, tgz, []byte("tgz bytes"))
	h.assertSynced(t, jar, []byte("jar bytes"))
}

// sqsOf wraps a notification body in a one-message SQS event.
func sqsOf(t *testing.T, id string, body []byte) []byte {
	t.Helper()
	b, err := json.Marshal(lambdaevents.SQSEvent{Records: []lambdaevents.SQSMessage{{
		MessageId: id, Body: string(body), EventSource: "aws:sqs",
		EventSourceARN: "arn:aws:sqs:us-west-2:123456789012:geoblob-on-create", AWSRegion: "us-west-2",
	}}})
	require.NoError(t, err)
	return b
}

// TestSQSInvalidRecordsAreRejectedNotRetried: a message whose records can
// never succeed (NUL key, negative size) is not a batch item failure (which
// SQS would redeliver until maxReceiveCount); its valid records are applied.
func TestSQSInvalidRecordsAreRejectedNotRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	h.env.PutPrimary(t, "generic/good/ok.bin", []byte("ok!"))
	h.env.PutPrimary(t, "generic/good/other.bin", []byte("other"))

	failed := h.sqs(t, fixture(t, "sqs-invalid.json"))
	assert.Empty(t, failed, "invalid records are rejected at once, never retried")
	h.assertSynced(t, "generic/good/ok.bin", []byte("ok!"))
	h.assertSynced(t, "generic/good/other.bin", []byte("other"))

	keys, reasons := h.rejected(t)
	assert.Equal(t, []string{"generic/bad/nul\x00byte.bin", "generic/bad/negative.bin"}, keys, "recorded once each, exact bytes")
	assert.Contains(t, reasons[0], "NUL")
	assert.Contains(t, reasons[1], "negative size")
	assert.Contains(t, h.metrics.String(), `"RejectedEvents":2`)
	assert.False(t, h.env.HasRow(t, "generic/bad/negative.bin"), "nothing registered for an invalid event")
}

// TestDirectInvalidRecordsAreRejectedNotFailed: a direct invocation whose
// invalid records are recorded succeeds (Lambda would otherwise retry it).
func TestDirectInvalidRecordsAreRejectedNotFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	h.env.PutPrimary(t, "generic/good/ok.bin", []byte("ok!"))
	big := "generic/good/" + strings.Repeat("k", 1007) + ".bin"
	h.env.PutPrimary(t, big, []byte("1024-byte key"))
	sum := h.handled(t, fixture(t, "s3-invalid-records.json"))
	assert.Equal(t, 7, sum.Invalid)
	assert.Equal(t, 2, sum.Synced)
	assert.Equal(t, 9, sum.Received)
	keys, _ := h.rejected(t)
	assert.Len(t, keys, 7)
	h.assertSynced(t, big, []byte("1024-byte key"))
}

// TestInvalidRecordsAreRetriedWhenTheyCannotBeRecorded: with the registry
// down, a rejection cannot be stored, so the message fails and SQS
// redelivers it; nothing is dropped silently.
func TestInvalidRecordsAreRetriedWhenTheyCannotBeRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	h.env.Pool.Close()
	failed := h.sqs(t, fixture(t, "sqs-invalid.json"))
	assert.Contains(t, failed, "a1b2c3d4-0000-4000-8000-000000000001")
	assert.NotContains(t, h.metrics.String(), "RejectedEvents")
}
