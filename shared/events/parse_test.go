package events_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/events"
)

const fixtureBucket = "amzn-s3-demo-bucket"

// parseFixture parses the event fixture name, which must parse.
func parseFixture(t *testing.T, name string) events.Batch {
	t.Helper()
	b, err := events.Parse(fixture(t, name))
	require.NoError(t, err)
	return b
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	require.NoError(t, err)
	return b
}

// want is the expected outcome of one message.
type want struct {
	id          string
	events      []events.ObjectEvent // only Kind, EventName, Source, Key, Size, Sequencer, VersionID compared
	skipped     int
	unsupported []string // event names
	malformed   bool
}

func ev(kind events.Kind, name, source, key string, size int64, seq string) events.ObjectEvent {
	norm, err := events.NormalizeSequencer(seq)
	if err != nil {
		panic(err)
	}
	return events.ObjectEvent{Kind: kind, EventName: name, Source: source, Bucket: fixtureBucket, Key: key, Size: size, Sequencer: norm}
}

func TestParseFixtures(t *testing.T) {
	t.Parallel()
	const (
		created = events.KindCreated
		removed = events.KindRemoved
		s3      = events.SourceS3
		eb      = events.SourceEventBridge
		minio   = events.SourceMinIO
	)
	tests := []struct {
		file    string
		fromSQS bool
		msgs    []want
	}{
		{"s3-put.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "maven/com/example/app/1.0.0/app-1.0.0.jar", 1024, "0055AED6DCD90281E5")}}}},
		{"s3-copy.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Copy", s3, "npm/left-pad/-/left-pad-1.3.0.tgz", 2048, "0055AED6DCD90281E6")}}}},
		{"s3-multipart-complete.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:CompleteMultipartUpload", s3, "pypi/requests/2.32.3/requests-2.32.3.tar.gz", 52428800, "0055AED6DCD90281E7")}}}},
		{"s3-delete.json", false, []want{{events: []events.ObjectEvent{ev(removed, "ObjectRemoved:Delete", s3, "maven/com/example/app/1.0.0/app-1.0.0.jar", 0, "0055AED6DCD90281F0")}}}},
		{"s3-delete-marker.json", false, []want{{events: []events.ObjectEvent{ev(removed, "ObjectRemoved:DeleteMarkerCreated", s3, "nuget/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.nupkg", 0, "0055AED6DCD90281F1")}}}},
		{"s3-lifecycle-expiration.json", false, []want{{events: []events.ObjectEvent{ev(removed, "LifecycleExpiration:Delete", s3, "conan/zlib/1.3.1/_/_/0/export/conanfile.py", 0, "0055AED6DCD90281F2")}}}},
		{"s3-test-event.json", false, []want{{skipped: 1}}},
		{"s3-key-spaces.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "generic/odd names/v1/file with spaces.bin", 11, "0055AED6DCD9028200")}}}},
		{"s3-key-plus.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "generic/c++/1.0/lib+extra.tar.gz", 11, "0055AED6DCD9028201")}}}},
		{"s3-key-unicode.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "generic/über/1.0/müller.bin", 11, "0055AED6DCD9028202")}}}},
		{"s3-key-mixed.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "generic/odd names/v1/file with spaces+plus%percent ü.bin", 11, "0055AED6DCD9028203")}}}},
		{"s3-key-invalid-escape.json", false, []want{{malformed: true, events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "generic/good/ok.bin", 3, "0055AED6DCD9028205")}}}},
		{"s3-restore-completed.json", false, []want{{unsupported: []string{"ObjectRestore:Completed"}}}},
		{"eventbridge-created.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", eb, "generic/odd names/v1/file with spaces+plus%percent ü.bin", 5, "617f08299329d189")}}}},
		{"eventbridge-deleted.json", false, []want{{events: []events.ObjectEvent{ev(removed, "ObjectRemoved:Delete", eb, "npm/@scope/util/-/util-2.0.1.tgz", 0, "617f0837b476e463")}}}},
		{"eventbridge-lifecycle-expiration.json", false, []want{{events: []events.ObjectEvent{ev(removed, "LifecycleExpiration:DeleteMarkerCreated", eb, "pypi/requests/2.32.3/requests-2.32.3-py3-none-any.whl", 0, "617f0837b476e464")}}}},
		{"minio-put.json", false, []want{{events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", minio, "generic/my-tool/1.2.0/my-tool-linux-amd64.tar.gz", 11, "1879E8A41F5A6C1B")}}}},
		{"minio-delete.json", false, []want{{events: []events.ObjectEvent{ev(removed, "ObjectRemoved:Delete", minio, "generic/my-tool/1.2.0/my-tool-linux-amd64.tar.gz", 0, "1879E8A4A1B2C3D4")}}}},
		{"minio-noop.json", false, []want{{events: []events.ObjectEvent{ev(removed, "ObjectRemoved:NoOP", minio, "generic/never/existed.bin", 0, "1879E8A4B2C3D4E5")}}}},
		{"sqs-batch.json", true, []want{
			{id: "059f36b4-87a3-44ab-83d2-661975830a7d", events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", s3, "maven/com/example/app/1.0.0/app-1.0.0.jar", 1024, "0055AED6DCD90281E5")}},
			{id: "2e1424d4-f796-459a-8184-9c92662be6da", malformed: true},
			{id: "3b5e4b9a-7d5c-4c55-9a0f-0e4c5a6b7c8d", skipped: 1},
			{id: "4c6f5cab-8e6d-4d66-ab10-1f5d6b7c8d9e", malformed: true},
			{id: "5d7060bc-9f7e-4e77-bc21-206e7c8d9eaf", events: []events.ObjectEvent{ev(removed, "ObjectRemoved:Delete", s3, "npm/left-pad/-/left-pad-1.3.0.tgz", 0, "0055AED6DCD90281F9")}},
			{id: "6e8171cd-a08f-4f88-cd32-317f8d9eafb0", events: []events.ObjectEvent{ev(created, "ObjectCreated:Copy", s3, "npm/left-pad/-/left-pad-1.3.0.tgz", 2048, "0055AED6DCD90281E6")}},
		}},
		{"sqs-eventbridge.json", true, []want{
			{id: "7f9282de-b18f-4099-de43-4280aeafb0c1", events: []events.ObjectEvent{ev(created, "ObjectCreated:Put", eb, "generic/odd names/v1/file with spaces+plus%percent ü.bin", 5, "617f08299329d189")}},
			{id: "80a393ef-c29f-40aa-ef54-5391bfb0c1d2", events: []events.ObjectEvent{ev(removed, "ObjectRemoved:Delete", eb, "npm/@scope/util/-/util-2.0.1.tgz", 0, "617f0837b476e463")}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b := parseFixture(t, tc.file)
			assert.Equal(t, tc.fromSQS, b.FromSQS)
			require.Len(t, b.Messages, len(tc.msgs))
			for i, w := range tc.msgs {
				m := b.Messages[i]
				assert.Equal(t, w.id, m.ID, "message %d", i)
				if w.malformed {
					assert.ErrorIs(t, m.Err, events.ErrMalformed, "message %d", i)
				} else {
					assert.NoError(t, m.Err, "message %d", i)
				}
				assert.Equal(t, w.skipped, m.Skipped, "message %d skipped", i)
				var unsupported []string
				for _, u := range m.Unsupported {
					assert.Equal(t, events.KindUnknown, u.Kind)
					unsupported = append(unsupported, u.EventName)
				}
				assert.Equal(t, w.unsupported, unsupported, "message %d unsupported", i)
				require.Len(t, m.Events, len(w.events), "message %d events", i)
				for j, got := range m.Events {
					exp := w.events[j]
					assert.False(t, got.EventTime.IsZero(), "event time")
					got.EventTime = time.Time{}
					got.ETag, got.VersionID = "", ""
					assert.Equal(t, exp, got, "message %d event %d", i, j)
				}
			}
		})
	}
}

func TestParseKeepsVersionAndETag(t *testing.T) {
	t.Parallel()
	b := parseFixture(t, "s3-put.json")
	e := b.Messages[0].Events[0]
	assert.Equal(t, "096fKKXTRTtl3on89fVO.nfljtsv6qko", e.VersionID)
	assert.Equal(t, "d41d8cd98f00b204e9800998ecf8427e", e.ETag)
	assert.Equal(t, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), e.EventTime.UTC())

	b = parseFixture(t, "eventbridge-created.json")
	e = b.Messages[0].Events[0]
	assert.Equal(t, "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", e.VersionID)
	assert.Equal(t, "b1946ac92492d2347c6235b4d2611184", e.ETag)
}

func TestParseRejectsUnknownPayloads(t *testing.T) {
	t.Parallel()
	for name, payload := range map[string]string{
		"not json":          `{"Records": [`,
		"empty object":      `{}`,
		"array":             `[1,2]`,
		"unknown source":    `{"Records":[{"eventSource":"aws:kinesis"}]}`,
		"eventbridge other": `{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}`,
		"bad key only":      `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`,
		"missing key":       `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := events.Parse([]byte(payload))
			assert.ErrorIs(t, err, events.ErrMalformed)
		})
	}
}

func TestParseSQSBodyVariants(t *testing.T) {
	t.Parallel()
	// A body that is valid JSON but no known notification is a per-message
	// failure; an empty Records list is a message with nothing to do.
	payload := `{"Records":[
	 {"messageId":"a","eventSource":"aws:sqs","body":"{\"hello\":\"world\"}"},
	 {"messageId":"b","eventSource":"aws:sqs","body":"{\"Records\":[]}"},
	 {"messageId":"c","eventSource":"aws:sqs","body":"{\"Type\":\"Notification\",\"Message\":\"{\\\"Service\\\":\\\"Amazon S3\\\",\\\"Event\\\":\\\"s3:TestEvent\\\"}\"}"}
	]}`
	b, err := events.Parse([]byte(payload))
	require.NoError(t, err)
	require.True(t, b.FromSQS)
	require.Len(t, b.Messages, 3)
	assert.ErrorIs(t, b.Messages[0].Err, events.ErrMalformed)
	assert.NoError(t, b.Messages[1].Err)
	assert.Empty(t, b.Messages[1].Events)
	assert.NoError(t, b.Messages[2].Err)
	assert.Equal(t, 1, b.Messages[2].Skipped)
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]events.Kind{
		"ObjectCreated:Put":                       events.KindCreated,
		"s3:ObjectCreated:Post":                   events.KindCreated,
		"ObjectCreated:CompleteMultipartUpload":   events.KindCreated,
		"ObjectRemoved:Delete":                    events.KindRemoved,
		"ObjectRemoved:DeleteMarkerCreated":       events.KindRemoved,
		"s3:ObjectRemoved:NoOP":                   events.KindRemoved,
		"LifecycleExpiration:Delete":              events.KindRemoved,
		"LifecycleExpiration:DeleteMarkerCreated": events.KindRemoved,
		"s3:LifecycleTransition":                  events.KindUnknown,
		"ObjectRestore:Completed":                 events.KindUnknown,
		"ObjectTagging:Put":                       events.KindUnknown,
		"":                                        events.KindUnknown,
	} {
		assert.Equal(t, want, events.KindOf(name), name)
	}
	assert.Equal(t, "created", events.KindCreated.String())
	assert.Equal(t, "removed", events.KindRemoved.String())
	assert.Equal(t, "unknown", events.KindUnknown.String())
}
