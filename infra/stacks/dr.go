package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/geoblob/geoblob/shared/metrics"
)

// Disaster-recovery metrics (published by functions/backfill with the
// registry health, shared/metrics).
const (
	// MetricDeleteBrakeTripped counts tripped delete-brake scopes.
	MetricDeleteBrakeTripped = metrics.NameDeleteBrakeTripped
	// MetricHeldDeletes counts deletes the brake holds.
	MetricHeldDeletes = metrics.NameHeldDeletes
)

// ProtectedSecondaryActions are the S3 actions on the secondary bucket that
// only the break-glass role may perform: turning versioning off, shortening
// the lifecycle, or deleting object versions would erase the copies a
// disaster recovery needs. geoblob's functions never make these calls (the
// failed-write cleanup deletes by key).
var ProtectedSecondaryActions = []string{
	"s3:PutBucketVersioning",
	"s3:PutLifecycleConfiguration",
	"s3:DeleteObjectVersion",
}

// disasterRecovery adds the delete-brake alarm with its own SNS topic, the
// break-glass role, and the secondary bucket policy that reserves
// ProtectedSecondaryActions to that role.
func (s *SecondaryStack) disasterRecovery(c Config) {
	scope := constructs.NewConstruct(s.Stack, jsii.String("DisasterRecovery"))
	topic := awssns.NewTopic(scope, jsii.String("DeleteBrakeTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("geoblob delete brake"),
		EnforceSSL:  jsii.Bool(true),
	})
	if c.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(c.AlarmEmail), nil))
	}
	tripped := registryMetric(MetricDeleteBrakeTripped, "Maximum")
	alarm(scope, "DeleteBrakeTripped", c.Prefix+"-delete-brake",
		"geoblob: the delete brake tripped: deletes are held and the secondary keeps the objects; "+
			"see docs/disaster-recovery.md (geoblob brake, geoblob restore)", tripped, 1, 1, topic)

	breakGlass := awsiam.NewRole(scope, jsii.String("BreakGlassRole"), &awsiam.RoleProps{
		Description: jsii.String("geoblob break-glass: the only principal that may change versioning or lifecycle, " +
			"or delete object versions, on the secondary bucket"),
		AssumedBy:          awsiam.NewAccountRootPrincipal(),
		MaxSessionDuration: awscdk.Duration_Hours(jsii.Number(1)),
	})
	s.BreakGlassRole = breakGlass
	s.Bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyBreakGlassMayEraseVersions"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings(ProtectedSecondaryActions...),
		Resources:  &[]*string{s.Bucket.BucketArn(), s.Bucket.ArnForObjects(jsii.String("*"))},
		Conditions: &map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": breakGlass.RoleArn()}},
	}))
	awscdk.NewCfnOutput(s.Stack, jsii.String("BreakGlassRoleArn"), &awscdk.CfnOutputProps{
		Value:       breakGlass.RoleArn(),
		Description: jsii.String("role that may change versioning/lifecycle or delete versions on the secondary bucket"),
	})
	awscdk.NewCfnOutput(s.Stack, jsii.String("DeleteBrakeTopicArn"), &awscdk.CfnOutputProps{
		Value: topic.TopicArn(), Description: jsii.String("SNS topic of the delete-brake alarm"),
	})
}
