package stacks

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSyncRequestQueue: backfill dispatches to onCreate through one queue
// with a dead-letter queue; onCreate consumes it with partial batch
// failures under its reserved concurrency; backfill knows the URL and the
// window (the shared copy cap).
func TestSyncRequestQueue(t *testing.T) {
	s := fixture(t, "full")
	qid := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", "SyncRequestsQueue")
	dlqID := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", "SyncRequestsDeadLetterQueue")
	q := props(resource(t, s.secondaryJSON, qid))
	assert.Equal(t, "geoblob-sync-requests", q["QueueName"])
	assert.Equal(t, map[string]any{"deadLetterTargetArn": getAtt(dlqID, "Arn"), "maxReceiveCount": float64(5)}, q["RedrivePolicy"])
	assert.EqualValues(t, 6*600, q["VisibilityTimeout"], "six times onCreate's timeout")
	assert.Equal(t, true, q["SqsManagedSseEnabled"])

	var mappings int
	for id, m := range resources(s.secondaryJSON, "AWS::Lambda::EventSourceMapping") {
		p := props(m)
		if jsonString(p["EventSourceArn"]) != jsonString(getAtt(qid, "Arn")) {
			continue
		}
		mappings++
		assert.Equal(t, ref("OnCreateFunction"), p["FunctionName"], id)
		assert.Equal(t, []any{"ReportBatchItemFailures"}, p["FunctionResponseTypes"], id)
		assert.Equal(t, map[string]any{"MaximumConcurrency": float64(s.cfg.Concurrency["onCreate"])}, p["ScalingConfig"], id)
		assert.Contains(t, asList(m["DependsOn"]), logicalIDOf(t, s.secondaryJSON, "Custom::GeoblobMigrations", "migrate"))
	}
	assert.Equal(t, 1, mappings, "onCreate consumes the sync requests")

	fn := props(resource(t, s.secondaryJSON, "BackfillFunction"))
	vars := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	assert.Equal(t, ref(qid), vars["GEOBLOB_SYNC_QUEUE_URL"])
	assert.Equal(t, "100", vars["GEOBLOB_SYNC_WINDOW"], "concurrency.onCreate 10 x copyConcurrency 10")
	for _, other := range []string{"OnCreateFunction", "VerifyFunction", "OnDeleteFunction"} {
		v := props(resource(t, s.secondaryJSON, other))["Environment"].(map[string]any)["Variables"].(map[string]any)
		assert.NotContains(t, v, "GEOBLOB_SYNC_QUEUE_URL", other)
	}

	alarms := map[string]bool{}
	for _, a := range resources(s.secondaryJSON, "AWS::CloudWatch::Alarm") {
		alarms[props(a)["AlarmName"].(string)] = true
	}
	assert.True(t, alarms["geoblob-sync-requests-dlq"], "dead-letter alarm")
	assert.True(t, alarms["geoblob-sync-requests-age"], "queue age alarm")
}

// TestOnlyBackfillSendsSyncRequests: sqs:SendMessage on the sync queue is
// granted to backfill's role and to no one else; onCreate's role may
// consume it.
func TestOnlyBackfillSendsSyncRequests(t *testing.T) {
	s := fixture(t, "full")
	qid := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", "SyncRequestsQueue")
	qArn := jsonString(getAtt(qid, "Arn"))
	roleOf := func(fn string) string {
		r := props(resource(t, s.secondaryJSON, fn))["Role"]
		return jsonString(r)
	}
	var senders, consumers []string
	for id, p := range resources(s.secondaryJSON, "AWS::IAM::Policy") {
		pp := props(p)
		for _, st := range statements(pp["PolicyDocument"]) {
			if !containsJSON(asList(st["Resource"]), qArn) {
				continue
			}
			roles := jsonString(pp["Roles"])
			acts := actionsOf(st)
			if slices.Contains(acts, "sqs:SendMessage") {
				senders = append(senders, roles)
				assert.Equal(t, []string{"sqs:SendMessage"}, acts, "%s: send only", id)
			}
			if slices.Contains(acts, "sqs:ReceiveMessage") {
				consumers = append(consumers, roles)
			}
		}
	}
	require.Len(t, senders, 1)
	assert.Contains(t, senders[0], trimGetAtt(roleOf("BackfillFunction")))
	require.Len(t, consumers, 1)
	assert.Contains(t, consumers[0], trimGetAtt(roleOf("OnCreateFunction")))
}

// TestSyncQueueOptional: without backfill (or with dispatch off) there is
// no sync queue and backfill copies in process.
func TestSyncQueueOptional(t *testing.T) {
	s := fixture(t, "minimal")
	assert.Empty(t, resources(s.secondaryJSON, "AWS::SQS::Queue")["SyncRequestsQueue"])
	for id := range resources(s.secondaryJSON, "AWS::SQS::Queue") {
		assert.NotContains(t, id, "SyncRequests")
	}
	c := DefaultConfig()
	c.Concurrency["onCreate"] = 25
	c.CopyConcurrency = 8
	assert.Equal(t, 200, c.SyncWindow())
	c.SyncWindowOverride = 50
	assert.Equal(t, 50, c.SyncWindow())
	ctx := validContext()
	ctx["dispatch"] = "false"
	ctx["syncWindow"] = float64(300)
	got, err := ConfigFromContext(mapGetter(ctx))
	require.NoError(t, err)
	assert.False(t, got.Dispatch)
	assert.Equal(t, 300, got.SyncWindow())
	ctx["syncWindow"] = float64(-1)
	_, err = ConfigFromContext(mapGetter(ctx))
	assert.ErrorContains(t, err, "syncWindow")
}

func containsJSON(list []any, want string) bool {
	for _, v := range list {
		if jsonString(v) == want {
			return true
		}
	}
	return false
}

// trimGetAtt turns {"Fn::GetAtt":["RoleId","Arn"]} into "RoleId".
func trimGetAtt(s string) string {
	const p = `{"Fn::GetAtt":["`
	if len(s) > len(p) && s[:len(p)] == p {
		rest := s[len(p):]
		for i := range rest {
			if rest[i] == '"' {
				return rest[:i]
			}
		}
	}
	return s
}
