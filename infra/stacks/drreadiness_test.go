package stacks

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rpoAlarm returns the RPO objective alarm's properties.
func rpoAlarm(t *testing.T, tmpl map[string]any) map[string]any {
	t.Helper()
	for _, a := range resources(tmpl, "AWS::CloudWatch::Alarm") {
		if p := props(a); p["AlarmName"] == "geoblob-rpo-objective" {
			return p
		}
	}
	t.Fatal("alarm geoblob-rpo-objective is missing")
	return nil
}

// The RPO objective alarm exists in both targets, watches the registry-wide
// RPO that functions/backfill writes, fires above the objective from the
// CDK context (default 900 s) and notifies the stack's alarm topic; the
// AWS dashboard shows the RPO against the objective and the objects and
// bytes at risk.
func TestRPOObjectiveAlarm(t *testing.T) {
	for _, name := range []string{"full", "localstack"} {
		s := fixture(t, name)
		a := rpoAlarm(t, s.secondaryJSON)
		assert.Equal(t, MetricsNamespace, a["Namespace"], name)
		assert.Equal(t, MetricOldestUnsyncedAge, a["MetricName"], name)
		assert.Nil(t, a["Dimensions"], "%s: the registry-wide series, as backfill writes it", name)
		assert.Equal(t, "Maximum", a["Statistic"], name)
		assert.EqualValues(t, DefaultRPOObjectiveSeconds, a["Threshold"], name)
		assert.Equal(t, "GreaterThanThreshold", a["ComparisonOperator"], name)
		topic := ref(logicalIDOf(t, s.secondaryJSON, "AWS::SNS::Topic", "MonitoringAlarmTopic"))
		assert.Contains(t, asList(a["AlarmActions"]), topic, "%s: the alarm topic", name)
		assert.Contains(t, asList(a["OKActions"]), topic, name)
	}
	assert.Empty(t, resources(fixture(t, "localstack").secondaryJSON, "AWS::CloudWatch::Dashboard"), "LocalStack has no dashboards")
	for _, d := range resources(fixture(t, "full").secondaryJSON, "AWS::CloudWatch::Dashboard") {
		body := jsonString(props(d)["DashboardBody"])
		for _, want := range []string{MetricAtRiskObjects, MetricAtRiskBytes, "RPO objective"} {
			assert.Contains(t, body, want)
		}
	}

	// The objective comes from the context.
	ctx := validContext()
	c, err := ConfigFromContext(mapGetter(ctx))
	require.NoError(t, err)
	assert.Equal(t, DefaultRPOObjectiveSeconds, c.RPOObjectiveSeconds, "default")
	ctx["rpoObjectiveSeconds"] = "30"
	_, err = ConfigFromContext(mapGetter(ctx))
	assert.ErrorContains(t, err, "rpoObjectiveSeconds")
	ctx["rpoObjectiveSeconds"] = "300"
	c, err = ConfigFromContext(mapGetter(ctx))
	require.NoError(t, err)
	assert.Equal(t, 300, c.RPOObjectiveSeconds)
	cfg := baseConfig()
	cfg.RPOObjectiveSeconds = c.RPOObjectiveSeconds
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	st, err := Build(app, cfg)
	require.NoError(t, err)
	assert.EqualValues(t, 300, rpoAlarm(t, toMap(t, assertions.Template_FromStack(st.Secondary.Stack, nil)))["Threshold"])
}

// The DR readiness metrics are EMF lines functions/backfill writes to its
// own log group: its role needs the log permissions every function has and
// no CloudWatch API action; no role of the stack is granted one.
func TestDRMetricsNeedNoCloudWatchGrant(t *testing.T) {
	s := fixture(t, "full")
	for _, ps := range allStatements(s.secondaryJSON) {
		for _, a := range actionsOf(ps.stmt) {
			assert.False(t, strings.HasPrefix(a, "cloudwatch:"), "%s grants %s: EMF needs no CloudWatch API call", ps.where, a)
		}
	}
	var backfill FunctionSpec
	for _, f := range KnownFunctions() {
		if f.Name == "backfill" {
			backfill = f
		}
	}
	fn := props(resource(t, s.secondaryJSON, backfill.LogicalID))
	logging, _ := fn["LoggingConfig"].(map[string]any)
	require.NotNil(t, logging, "backfill logs to its own log group")
	assert.Equal(t, "JSON", logging["LogFormat"], "EMF lines are JSON objects, kept as such")
	assert.Equal(t, ref(logicalIDOf(t, s.secondaryJSON, "AWS::Logs::LogGroup", "backfillLogs")), logging["LogGroup"])
	role := props(resource(t, s.secondaryJSON, fn["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)))
	assert.Contains(t, jsonString(role["ManagedPolicyArns"]), "service-role/AWSLambdaBasicExecutionRole",
		"backfill may write its logs (and with them the EMF metrics)")
}
