package events_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/events"
)

func TestParseSyncRequestFixtures(t *testing.T) {
	t.Parallel()
	b := parseFixture(t, "sqs-sync-requests.json")
	require.True(t, b.FromSQS)
	require.Len(t, b.Messages, 4)

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
	body, err := events.EncodeSyncRequests(reqs)
	require.NoError(t, err)
	b, err := events.Parse(body)
	require.NoError(t, err)
	require.Len(t, b.Messages, 1)
	assert.NoError(t, b.Messages[0].Err)
	assert.Equal(t, reqs, b.Messages[0].Syncs)

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
