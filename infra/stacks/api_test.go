package stacks

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/metrics"
)

// apiRoleStatements returns the statements of the api function's role
// policies (inline and attached IAM::Policy resources).
func apiRoleStatements(t *testing.T, tmpl map[string]any) []map[string]any {
	t.Helper()
	fn := props(resource(t, tmpl, "ApiFunction"))
	roleID := fn["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	var out []map[string]any
	for _, p := range resources(tmpl, "AWS::IAM::Policy") {
		pp := props(p)
		for _, r := range asList(pp["Roles"]) {
			if m, ok := r.(map[string]any); ok && m["Ref"] == roleID {
				out = append(out, statements(pp["PolicyDocument"])...)
			}
		}
	}
	require.NotEmpty(t, out, "api role has policies")
	return out
}

func TestOperatorAPIFunctionURLIsIAMOnly(t *testing.T) {
	for _, name := range []string{"full", "localstack"} {
		s := fixture(t, name)
		urls := resources(s.secondaryJSON, "AWS::Lambda::Url")
		require.Len(t, urls, 1, "%s: one function URL", name)
		for _, u := range urls {
			p := props(u)
			assert.Equal(t, "AWS_IAM", p["AuthType"], "%s: nothing public", name)
			assert.Equal(t, "RESPONSE_STREAM", p["InvokeMode"], "%s: lambdaurl streams", name)
			assert.Equal(t, getAtt("ApiFunction", "Arn"), p["TargetFunctionArn"])
			assert.Nil(t, p["Cors"], "no CORS: the console is served by geoblob console -aws, same origin")
		}
		for _, perm := range resources(s.secondaryJSON, "AWS::Lambda::Permission") {
			p := props(perm)
			if p["Action"] == "lambda:InvokeFunctionUrl" {
				assert.NotEqual(t, "*", p["Principal"], "%s: no public invoke permission on the URL", name)
			}
		}
		outs := s.secondaryJSON["Outputs"].(map[string]any)
		assert.Contains(t, outs, "OperatorApiUrl")
		assert.Contains(t, outs, "OperatorPolicyArn")
	}
}

func TestOperatorPolicyHasOneActionOnOneFunction(t *testing.T) {
	s := fixture(t, "full")
	var policies []map[string]any
	for _, p := range resources(s.secondaryJSON, "AWS::IAM::ManagedPolicy") {
		for _, st := range statements(props(p)["PolicyDocument"]) {
			for _, a := range actionsOf(st) {
				if strings.HasPrefix(a, "lambda:InvokeFunctionUrl") {
					policies = append(policies, props(p))
				}
			}
		}
	}
	require.Len(t, policies, 1, "one operator policy")
	sts := statements(policies[0]["PolicyDocument"])
	require.Len(t, sts, 1, "exactly one statement")
	st := sts[0]
	assert.Equal(t, "Allow", st["Effect"])
	assert.Equal(t, []string{"lambda:InvokeFunctionUrl"}, actionsOf(st), "exactly one action")
	assert.Equal(t, getAtt("ApiFunction", "Arn"), st["Resource"], "exactly the api function")
	assert.Equal(t, map[string]any{"StringEquals": map[string]any{"lambda:FunctionUrlAuthType": "AWS_IAM"}}, st["Condition"])
}

// The api role reads the registry (its secret) and both buckets, and may not
// write or delete any object.
func TestAPIRoleReadsRegistryButNeverWritesS3(t *testing.T) {
	s := fixture(t, "full")
	sts := apiRoleStatements(t, s.secondaryJSON)
	var actions []string
	secretRead := false
	for _, st := range sts {
		require.Equal(t, "Allow", st["Effect"])
		for _, a := range actionsOf(st) {
			actions = append(actions, a)
			if a == "secretsmanager:GetSecretValue" {
				secretRead = true
				res, _ := json.Marshal(st["Resource"])
				assert.Contains(t, string(res), "Secret", "the registry secret only")
			}
		}
	}
	assert.True(t, secretRead, "api role reads the registry credentials")
	for _, a := range actions {
		assert.False(t, strings.HasPrefix(a, "s3:Put") || strings.HasPrefix(a, "s3:Delete") ||
			strings.HasPrefix(a, "s3:Abort") || strings.HasPrefix(a, "s3:Restore") || a == "s3:*" || a == "*",
			"api role must not write or delete S3 objects: %s", a)
		assert.NotContains(t, []string{"kms:GenerateDataKey", "kms:Encrypt"}, a, "no encryption for writes")
	}
	for _, want := range []string{"s3:ListBucket", "s3:GetObject", "s3:GetBucketNotification", "sqs:GetQueueAttributes"} {
		assert.Contains(t, actions, want)
	}
	fn := props(resource(t, s.secondaryJSON, "ApiFunction"))
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	assert.Equal(t, "false", env["GEOBLOB_API_ACTIONS"], "read-only by default")
	dlqs, _ := json.Marshal(env["GEOBLOB_DEAD_LETTER_QUEUES"])
	assert.Contains(t, string(dlqs), "forward-dlq", "the primary's forwarding DLQ is counted too")
}

func TestPerTypeAlarmsAndDashboard(t *testing.T) {
	s := fixture(t, "full")
	alarms := map[string]map[string]any{}
	for _, a := range resources(s.secondaryJSON, "AWS::CloudWatch::Alarm") {
		alarms[props(a)["AlarmName"].(string)] = props(a)
	}
	for _, typ := range s.cfg.DataTypes {
		for suffix, metric := range map[string]string{"-failed": metrics.NameTypeFailed, "-oldest-unsynced": metrics.NameTypeOldestUnsyncedAge} {
			a, ok := alarms["geoblob-"+typ+suffix]
			if !assert.True(t, ok, "alarm geoblob-%s%s", typ, suffix) {
				continue
			}
			assert.Equal(t, MetricsNamespace, a["Namespace"])
			assert.Equal(t, metric, a["MetricName"])
			assert.Equal(t, []any{map[string]any{"Name": metrics.DimensionDataType, "Value": typ}}, a["Dimensions"])
			assert.NotEmpty(t, a["AlarmActions"])
		}
	}
	assert.EqualValues(t, 3600, alarms["geoblob-npm_package_file-oldest-unsynced"]["Threshold"])
	for _, d := range resources(s.secondaryJSON, "AWS::CloudWatch::Dashboard") {
		body := jsonString(props(d)["DashboardBody"])
		for _, typ := range s.cfg.DataTypes {
			assert.Contains(t, body, typ)
		}
		assert.Contains(t, body, metrics.NameReplicationLatency)
	}
}

func TestAPIActionsContext(t *testing.T) {
	t.Parallel()
	c, err := ConfigFromContext(mapGetter(validContext()))
	require.NoError(t, err)
	assert.False(t, c.APIActions, "read-only by default")
	ctx := validContext()
	ctx["apiActions"] = "true"
	c, err = ConfigFromContext(mapGetter(ctx))
	require.NoError(t, err)
	assert.True(t, c.APIActions)
}
