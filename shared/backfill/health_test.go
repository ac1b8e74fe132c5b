package backfill_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/metrics"
)

// TestHealthTracksUnsyncedFailedAndQuarantined drives one row into
// quarantine and another into a retried failure and checks the health the
// alarms are fed with, then that it goes back to zero once all is synced.
func TestHealthTracksUnsyncedFailedAndQuarantined(t *testing.T) {
	t.Parallel()
	e, clock := newRetryEnv(t, 2)
	doomed, flaky := typedKey(1), typedKey(2)
	e.put(doomed, []byte("always fails"))
	e.put(flaky, []byte("fails for now"))
	e.refuseSecondaryPuts()
	e.run(backfill.Request{}) // registers both, first attempt fails
	clock.Advance(2 * time.Hour)
	e.run(backfill.Request{}) // second attempt fails: both quarantined (MaxAttempts 2)
	_, err := e.runner().ResyncQuarantined(t.Context(), nil, flaky)
	require.NoError(t, err)
	e.run(backfill.Request{}) // flaky fails once more: failed, retried later
	clock.Advance(10 * time.Minute)

	h, err := e.runner().Health(t.Context())
	require.NoError(t, err)
	assert.EqualValues(t, 1, h.Quarantined)
	assert.EqualValues(t, 1, h.Failed)
	assert.GreaterOrEqual(t, h.OldestUnsyncedAge, 10*time.Minute, "the retried failure has waited since its last attempt")
	assert.Less(t, h.OldestUnsyncedAge, time.Hour)

	var out bytes.Buffer
	require.NoError(t, metrics.WriteEMF(&out, h, clock.Now()))
	var doc struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Oldest      float64 `json:"OldestUnsyncedAgeSeconds"`
		Failed      int64   `json:"FailedBlobs"`
		Quarantined int64   `json:"QuarantinedBlobs"`
	}
	require.NoError(t, json.Unmarshal(bytes.TrimSuffix(out.Bytes(), []byte("\n")), &doc))
	assert.Equal(t, clock.Now().UnixMilli(), doc.AWS.Timestamp)
	require.Len(t, doc.AWS.CloudWatchMetrics, 1)
	assert.Equal(t, metrics.Namespace, doc.AWS.CloudWatchMetrics[0].Namespace)
	assert.Len(t, doc.AWS.CloudWatchMetrics[0].Metrics, 6)
	assert.InDelta(t, h.OldestUnsyncedAge.Seconds(), doc.Oldest, 0.001)
	assert.EqualValues(t, 1, doc.Failed)
	assert.EqualValues(t, 1, doc.Quarantined)
	assert.Equal(t, 1, bytes.Count(out.Bytes(), []byte("\n")), "one line per report")

	e.setRules(nil, nil)
	_, err = e.runner().ResyncQuarantined(t.Context(), nil, doomed)
	require.NoError(t, err)
	clock.Advance(2 * time.Hour)
	e.run(backfill.Request{})
	e.requireConverged()
	h, err = e.runner().Health(t.Context())
	require.NoError(t, err)
	assert.Equal(t, metrics.Health{}, h)
}

// TestHealthReportsAMissingPrimaryBucket: the health the alarms read says
// when the primary bucket is gone (PrimaryBucketMissing), so a renamed or
// deleted bucket alarms instead of looking like an empty one.
func TestHealthReportsAMissingPrimaryBucket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	h, err := e.runner().Health(t.Context())
	require.NoError(t, err)
	assert.Zero(t, h.PrimaryBucketMissing)
	require.NoError(t, e.primaryS3.Remove(t.Context()))
	h, err = e.runner().Health(t.Context())
	require.NoError(t, err)
	assert.EqualValues(t, 1, h.PrimaryBucketMissing)
	var out bytes.Buffer
	require.NoError(t, metrics.WriteEMF(&out, h, time.Now()))
	assert.Contains(t, out.String(), `"PrimaryBucketMissing":1`)
}
