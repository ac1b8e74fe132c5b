package stacks

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The delete brake has its own alarm and SNS topic; the secondary bucket
// keeps noncurrent versions at least as long as configured; only the
// break-glass role may change versioning or lifecycle, or delete object
// versions, on it; and no function role is granted any of those actions.
func TestDisasterRecovery(t *testing.T) {
	s := fixture(t, "full")

	var brake map[string]any
	for _, a := range resources(s.secondaryJSON, "AWS::CloudWatch::Alarm") {
		if p := props(a); p["AlarmName"] == "geoblob-delete-brake" {
			brake = p
		}
	}
	require.NotNil(t, brake, "alarm geoblob-delete-brake")
	assert.Equal(t, MetricsNamespace, brake["Namespace"])
	assert.Equal(t, MetricDeleteBrakeTripped, brake["MetricName"])
	assert.EqualValues(t, 1, brake["Threshold"])
	assert.Equal(t, "GreaterThanOrEqualToThreshold", brake["ComparisonOperator"])
	topicID := logicalIDOf(t, s.secondaryJSON, "AWS::SNS::Topic", "DisasterRecoveryDeleteBrakeTopic")
	assert.Contains(t, asList(brake["AlarmActions"]), ref(topicID), "the alarm notifies the delete-brake topic")

	// Noncurrent versions live at least as long as the configured retention.
	bucket := props(resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::S3::Bucket", "SecondaryBucket")))
	assert.Equal(t, map[string]any{"Status": "Enabled"}, bucket["VersioningConfiguration"])
	var kept bool
	for _, r := range asList(bucket["LifecycleConfiguration"].(map[string]any)["Rules"]) {
		rule := r.(map[string]any)
		if nv, ok := rule["NoncurrentVersionExpiration"].(map[string]any); ok {
			assert.GreaterOrEqual(t, nv["NoncurrentDays"], float64(s.cfg.NoncurrentVersionDays))
			kept = true
		}
		assert.Nil(t, rule["ExpirationInDays"], "current versions never expire")
	}
	assert.True(t, kept)

	// Bucket policy: Deny the protected actions to everyone but break-glass.
	roleID := logicalIDOf(t, s.secondaryJSON, "AWS::IAM::Role", "DisasterRecoveryBreakGlassRole")
	var deny map[string]any
	for _, p := range resources(s.secondaryJSON, "AWS::S3::BucketPolicy") {
		for _, st := range statements(props(p)["PolicyDocument"]) {
			if st["Sid"] == "OnlyBreakGlassMayEraseVersions" {
				deny = st
			}
		}
	}
	require.NotNil(t, deny, "bucket policy statement OnlyBreakGlassMayEraseVersions")
	assert.Equal(t, "Deny", deny["Effect"])
	assert.Equal(t, map[string]any{"AWS": "*"}, deny["Principal"])
	assert.ElementsMatch(t, ProtectedSecondaryActions, asList(deny["Action"]))
	assert.Len(t, asList(deny["Resource"]), 2, "bucket and objects")
	assert.Equal(t, map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": getAtt(roleID, "Arn")}}, deny["Condition"])

	// No role of the stack may make the protected calls.
	for id, pol := range resources(s.secondaryJSON, "AWS::IAM::Policy") {
		for _, st := range statements(props(pol)["PolicyDocument"]) {
			if st["Effect"] != "Allow" {
				continue
			}
			for _, a := range asList(st["Action"]) {
				assert.False(t, slices.Contains(ProtectedSecondaryActions, a.(string)) || a == "s3:*",
					"policy %s grants %s", id, a)
			}
		}
	}
}
