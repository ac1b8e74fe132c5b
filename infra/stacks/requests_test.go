package stacks

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queueCase is one request queue as the tests see it.
type queueCase struct {
	construct, name           string
	dispatcher, worker        string // logical ids
	workerName                string
	timeout                   float64 // worker's, seconds
	urlEnv, windowEnv, window string
	instances                 float64  // the mapping's maximum concurrency
	others                    []string // functions that must not know the URL
}

func queueCases() []queueCase {
	return []queueCase{
		{construct: "SyncRequests", name: "geoblob-sync-requests", dispatcher: "BackfillFunction", worker: "OnCreateFunction",
			workerName: "onCreate", timeout: 600, urlEnv: "GEOBLOB_SYNC_QUEUE_URL", windowEnv: "GEOBLOB_SYNC_WINDOW",
			window:    "100", // concurrency.onCreate 10 x copyConcurrency 10
			instances: 8,     // onCreate's 10 less the event mapping's 2
			others:    []string{"OnCreateFunction", "VerifyFunction", "VerifyWorkerFunction", "OnDeleteFunction"}},
		{construct: "VerifyRequests", name: "geoblob-verify-requests", dispatcher: "VerifyFunction", worker: "VerifyWorkerFunction",
			workerName: "verifyWorker", timeout: 900, urlEnv: "GEOBLOB_VERIFY_QUEUE_URL", windowEnv: "GEOBLOB_VERIFY_WINDOW",
			window:    "100", // concurrency.verifyWorker 10 x batchSize 10
			instances: 10,
			others:    []string{"OnCreateFunction", "BackfillFunction", "VerifyWorkerFunction", "OnDeleteFunction"}},
	}
}

// TestRequestQueues: each dispatcher sends to its workers through one
// queue with a dead-letter queue; the workers consume it with partial batch
// failures under their reserved concurrency; the dispatcher knows the URL
// and the window (the workers' cap); both alarms exist. In both targets.
func TestRequestQueues(t *testing.T) {
	for _, target := range []string{"full", "localstack"} {
		s := fixture(t, target)
		for _, qc := range queueCases() {
			qid := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", qc.construct+"Queue")
			dlqID := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", qc.construct+"DeadLetterQueue")
			q := props(resource(t, s.secondaryJSON, qid))
			assert.Equal(t, qc.name, q["QueueName"])
			assert.Equal(t, map[string]any{"deadLetterTargetArn": getAtt(dlqID, "Arn"), "maxReceiveCount": float64(5)}, q["RedrivePolicy"])
			assert.EqualValues(t, 6*qc.timeout, q["VisibilityTimeout"], "six times the worker's timeout")
			assert.Equal(t, true, q["SqsManagedSseEnabled"])

			var mappings int
			for id, m := range resources(s.secondaryJSON, "AWS::Lambda::EventSourceMapping") {
				p := props(m)
				if jsonString(p["EventSourceArn"]) != jsonString(getAtt(qid, "Arn")) {
					continue
				}
				mappings++
				assert.Equal(t, ref(qc.worker), p["FunctionName"], id)
				assert.Equal(t, []any{"ReportBatchItemFailures"}, p["FunctionResponseTypes"], id)
				assert.Equal(t, map[string]any{"MaximumConcurrency": qc.instances}, p["ScalingConfig"], id)
				assert.EqualValues(t, 10, p["BatchSize"], id)
				if target == "full" {
					assert.Contains(t, asList(m["DependsOn"]), logicalIDOf(t, s.secondaryJSON, "Custom::GeoblobMigrations", "migrate"))
				}
			}
			assert.Equal(t, 1, mappings, "%s consumes %s", qc.worker, qc.name)
			worker := props(resource(t, s.secondaryJSON, qc.worker))
			assert.EqualValues(t, s.cfg.Concurrency[qc.workerName], worker["ReservedConcurrentExecutions"], "the workers' cap")

			vars := props(resource(t, s.secondaryJSON, qc.dispatcher))["Environment"].(map[string]any)["Variables"].(map[string]any)
			assert.Equal(t, ref(qid), vars[qc.urlEnv])
			assert.Equal(t, qc.window, vars[qc.windowEnv])
			for _, other := range qc.others {
				v := props(resource(t, s.secondaryJSON, other))["Environment"].(map[string]any)["Variables"].(map[string]any)
				assert.NotContains(t, v, qc.urlEnv, other)
			}

			alarms := map[string]bool{}
			for _, a := range resources(s.secondaryJSON, "AWS::CloudWatch::Alarm") {
				alarms[props(a)["AlarmName"].(string)] = true
			}
			assert.True(t, alarms[qc.name+"-dlq"], "dead-letter alarm of %s", qc.name)
			assert.True(t, alarms[qc.name+"-age"], "queue age alarm of %s", qc.name)
		}
	}
	// The verify workers check a whole batch at once.
	w := props(resource(t, fixture(t, "full").secondaryJSON, "VerifyWorkerFunction"))["Environment"].(map[string]any)["Variables"].(map[string]any)
	assert.Equal(t, "10", w["GEOBLOB_VERIFY_CONCURRENCY"])
}

// TestOnlyDispatchersSendRequests: sqs:SendMessage on each request queue
// is granted to its dispatcher's role and to no one else; only its
// worker's role may consume it.
func TestOnlyDispatchersSendRequests(t *testing.T) {
	s := fixture(t, "full")
	roleOf := func(fn string) string {
		r := props(resource(t, s.secondaryJSON, fn))["Role"]
		return jsonString(r)
	}
	for _, qc := range queueCases() {
		qid := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", qc.construct+"Queue")
		qArn := jsonString(getAtt(qid, "Arn"))
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
					assert.NotContains(t, acts, "sqs:SendMessage", "%s: the worker does not send", id)
				}
			}
		}
		require.Len(t, senders, 1, qc.name)
		assert.Contains(t, senders[0], trimGetAtt(roleOf(qc.dispatcher)))
		require.Len(t, consumers, 1, qc.name)
		assert.Contains(t, consumers[0], trimGetAtt(roleOf(qc.worker)))
	}
}

// TestRequestQueuesOptional: without the dispatcher (or with dispatch
// off) there is no request queue and backfill copies, verify checks, in
// process.
func TestRequestQueuesOptional(t *testing.T) {
	for _, name := range []string{"minimal", "nodispatch"} {
		for id := range resources(fixture(t, name).secondaryJSON, "AWS::SQS::Queue") {
			assert.NotContains(t, id, "SyncRequests", name)
			assert.NotContains(t, id, "VerifyRequests", name)
		}
	}
	c := DefaultConfig()
	c.Concurrency["verifyWorker"] = 30
	assert.Equal(t, 300, c.VerifyWindow())
	c.Concurrency["verifyWorker"] = 0
	assert.Equal(t, 100, c.VerifyWindow(), "unreserved counts as 10 instances")
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
