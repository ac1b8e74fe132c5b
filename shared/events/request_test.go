package events_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/events"
)

func TestParseSyncRequestFixtures(t *testing.T) {
	t.Parallel()
	b := sqsFixture(t, "sqs-sync-requests.json", 4)

	m := b.Messages[0]
	assert.NoError(t, m.Err)
	assert.Empty(t, m.Events)
	assert.Equal(t, []events.SyncRequest{{DataType: "maven_package_file", Key: "maven/com/example/app/1.0.0/app-1.0.0.jar", Generation: 7}}, m.Syncs)

	m = b.Messages[1]
	assert.NoError(t, m.Err)
	assert.Equal(t, []events.SyncRequest{
		{DataType: "npm_package_file", Key: "npm/left-pad/-/left-pad-1.3.0.tgz", Generation: 3},
		// keys are verbatim: no URL decoding of '+' or spaces
		{DataType: "generic_package_file", Key: "generic/odd names/v1/file with spaces+plus.bin", Generation: 12},
	}, m.Syncs)

	// One bad request makes the message fail; the good one is kept.
	m = b.Messages[2]
	assert.ErrorIs(t, m.Err, events.ErrMalformed)
	assert.Equal(t, []events.SyncRequest{{DataType: "pypi_package_file", Key: "pypi/requests/2.32.3/requests-2.32.3.tar.gz", Generation: 5}}, m.Syncs)

	// Unknown version: malformed, nothing acted on.
	m = b.Messages[3]
	assert.ErrorIs(t, m.Err, events.ErrMalformed)
	assert.Empty(t, m.Syncs)

	// Delivered directly (no SQS envelope).
	d := parseFixture(t, "sync-request.json")
	require.Len(t, d.Messages, 1)
	assert.False(t, d.FromSQS)
	assert.Len(t, d.Messages[0].Syncs, 1)
}

func TestEncodeSyncRequestsRoundTrip(t *testing.T) {
	t.Parallel()
	reqs := []events.SyncRequest{
		{DataType: "npm_package_file", Key: "npm/a b+c%20/-/ü.tgz", Generation: 1},
		{DataType: "maven_package_file", Key: "maven/x/1/x-1.jar", Generation: 1 << 40},
	}
	roundTrip(t, events.EncodeSyncRequests, reqs, func(m events.Message) []events.SyncRequest { return m.Syncs })

	for name, bad := range map[string][]events.SyncRequest{
		"none":          nil,
		"no key":        {{DataType: "t", Generation: 1}},
		"no type":       {{Key: "k", Generation: 1}},
		"no generation": {{DataType: "t", Key: "k"}},
		"too many":      make([]events.SyncRequest, events.MaxRequestsPerMessage+1),
	} {
		_, err := events.EncodeSyncRequests(bad)
		assert.Error(t, err, name)
	}
}

func TestParseRejectsOversizedRequestMessage(t *testing.T) {
	t.Parallel()
	reqs := make([]events.SyncRequest, events.MaxRequestsPerMessage+1)
	for i := range reqs {
		reqs[i] = events.SyncRequest{DataType: "t", Key: "k", Generation: 1}
	}
	body, err := json.Marshal(map[string]any{"geoblob": "sync", "version": 1, "requests": reqs})
	require.NoError(t, err)
	_, err = events.Parse(body)
	assert.ErrorIs(t, err, events.ErrMalformed)
}

// FuzzParse feeds every fixture (and mutations of it, and the corpus in
// testdata/fuzz/FuzzParse) to Parse: it must never panic, every message
// must either decode or carry an error wrapping ErrMalformed, decoded
// object events keep Parse's documented invariants (checkParseInvariants),
// and decoded sync requests must be usable (type, valid key, positive
// generation) and survive an encode/parse round trip.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"geoblob":"sync","version":1,"requests":[{"data_type":"t","key":"k","generation":1}]}`))
	f.Add([]byte(`{"geoblob":null}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, err := events.Parse(payload)
		if err != nil {
			if !strings.Contains(err.Error(), "malformed") {
				t.Fatalf("error does not say malformed: %v", err)
			}
			return
		}
		checkParseInvariants(t, b)
		for _, m := range b.Messages {
			for _, r := range m.Syncs {
				if r.DataType == "" || r.Key == "" || r.Generation <= 0 {
					t.Fatalf("unusable sync request decoded: %+v", r)
				}
			}
			if len(m.Syncs) == 0 {
				continue
			}
			body, err := events.EncodeSyncRequests(m.Syncs[:min(len(m.Syncs), events.MaxRequestsPerMessage)])
			if err != nil {
				t.Fatalf("decoded requests do not encode: %v", err)
			}
			again, err := events.Parse(body)
			if err != nil || len(again.Messages) != 1 || len(again.Messages[0].Syncs) != len(m.Syncs) {
				t.Fatalf("round trip of %+v: %v", m.Syncs, err)
			}
		}
	})
}

func TestParseVerifyRequestFixture(t *testing.T) {
	t.Parallel()
	b := sqsFixture(t, "sqs-verify-requests.json", 3)
	assert.NoError(t, b.Messages[0].Err)
	assert.Empty(t, b.Messages[0].Syncs)
	assert.Equal(t, []events.VerifyRequest{{DataType: "npm_package_file", Key: "npm/left-pad/-/left-pad-1.3.0.tgz",
		Side: events.SideSecondary, Generation: 3, ClaimedAt: time.Date(2026, 11, 30, 17, 0, 0, 123456000, time.UTC)}}, b.Messages[0].Verifies)
	assert.NoError(t, b.Messages[1].Err)
	assert.Equal(t, events.SidePrimary, b.Messages[1].Verifies[0].Side)
	assert.Equal(t, "fast", b.Messages[1].Verifies[0].Mode)
	// An unknown side and a missing claim time: the message fails, nothing is acted on.
	assert.ErrorIs(t, b.Messages[2].Err, events.ErrMalformed)
	assert.Empty(t, b.Messages[2].Verifies)
	assert.True(t, events.IsSQSEvent(fixture(t, "sqs-verify-requests.json")))
	assert.False(t, events.IsSQSEvent([]byte(`{"mode":"deep"}`)))
}

func TestEncodeVerifyRequestsRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 1000, time.UTC)
	reqs := []events.VerifyRequest{
		{DataType: "npm_package_file", Key: "npm/a b+c%20/-/ü.tgz", Side: events.SideSecondary, Generation: 1, ClaimedAt: at},
		{DataType: "maven_package_file", Key: "maven/x/1/x-1.jar", Side: events.SidePrimary, Generation: 1 << 40, ClaimedAt: at, Mode: "deep"},
	}
	roundTrip(t, events.EncodeVerifyRequests, reqs, func(m events.Message) []events.VerifyRequest { return m.Verifies })
	for name, bad := range map[string][]events.VerifyRequest{
		"none":       nil,
		"no side":    {{DataType: "t", Key: "k", Generation: 1, ClaimedAt: at}},
		"no time":    {{DataType: "t", Key: "k", Side: events.SidePrimary, Generation: 1}},
		"bad mode":   {{DataType: "t", Key: "k", Side: events.SidePrimary, Generation: 1, ClaimedAt: at, Mode: "quick"}},
		"generation": {{DataType: "t", Key: "k", Side: events.SidePrimary, ClaimedAt: at}},
	} {
		_, err := events.EncodeVerifyRequests(bad)
		assert.Error(t, err, name)
	}
}

// roundTrip encodes reqs into one message and parses them back unchanged.
func roundTrip[R any](t *testing.T, encode func([]R) ([]byte, error), reqs []R, got func(events.Message) []R) {
	t.Helper()
	body, err := encode(reqs)
	require.NoError(t, err)
	b, err := events.Parse(body)
	require.NoError(t, err)
	require.Len(t, b.Messages, 1)
	assert.NoError(t, b.Messages[0].Err)
	assert.Equal(t, reqs, got(b.Messages[0]))
}

// sqsFixture parses testdata/events/name, an SQS event of n messages.
func sqsFixture(t *testing.T, name string, n int) events.Batch {
	t.Helper()
	b := parseFixture(t, name)
	require.True(t, b.FromSQS)
	require.Len(t, b.Messages, n)
	return b
}
