package stacks

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// The LocalStack target (Config.Target = TargetLocalStack) builds the same
// functions, queues, dead-letter queues, buses, rules and alarms as the AWS
// target, with what LocalStack 4.14's free edition cannot run left out or
// replaced:
//   - no VPC, NAT gateway, Elastic IP or security groups (AWS::EC2::EIP is
//     not provided there);
//   - no Aurora or RDS Proxy: the registry is a PostgreSQL the user runs
//     beside LocalStack, reached through a Secrets Manager secret that
//     `make deploy-local` writes before the deploy and the stack imports by
//     name (localRegistry), so no credential is in the template;
//   - no custom resources (LocalStack skips them): migrations run when
//     `make deploy-local` invokes the migrate function after the deploy, and
//     the primary bucket turns on EventBridge through its own CloudFormation
//     property (enableEventBridge, used by the AWS target too);
//   - no EventBridge Scheduler (schedules are created there but never fire):
//     scheduled EventBridge rules with the same expressions (scheduleRule);
//   - no CloudWatch dashboard (AWS::CloudWatch::Dashboard is not provided);
//   - the functions run on the host's architecture (x86_64 by default).

// localRegistry imports the registry secret written outside CloudFormation.
func (s *SecondaryStack) localRegistry(c Config) {
	s.Secret = awssecretsmanager.Secret_FromSecretNameV2(s.Stack, jsii.String("RegistrySecret"), jsii.String(c.SecretName()))
	// The name is a valid SecretId for GetSecretValue; the partial ARN of a
	// secret imported by name is not one everywhere.
	s.secretID = jsii.String(c.SecretName())
	// One PostgreSQL user there: the runtime functions use the same secret.
	s.RuntimeSecret, s.runtimeSecretID = s.Secret, s.secretID
}

// scheduleRule invokes the function on a scheduled EventBridge rule (the
// LocalStack target's stand-in for Scheduler). The function receives the
// rule's own "Scheduled Event" (source aws.events), which backfill and verify
// accept like the Scheduler's.
func (s *SecondaryStack) scheduleRule(c Config, spec FunctionSpec, fn awslambda.Function) {
	awsevents.NewRule(s.scopes[spec.Name], jsii.String("ScheduleRule"), &awsevents.RuleProps{
		RuleName:    jsii.String(c.Prefix + "-" + strings.ToLower(spec.Name)),
		Description: jsii.String("geoblob: run " + spec.Name),
		Schedule:    awsevents.Schedule_Expression(jsii.String(c.ScheduleFor(spec.Name))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
		})},
	})
}

// ScheduleFor returns the schedule expression of a scheduled function.
func (c Config) ScheduleFor(function string) string {
	if function == "verify" {
		return c.VerifySchedule
	}
	return c.BackfillSchedule
}

// architecture returns the functions' CDK architecture.
func architecture(c Config) awslambda.Architecture {
	if c.LambdaArchitecture() == ArchX8664 {
		return awslambda.Architecture_X86_64()
	}
	return awslambda.Architecture_ARM_64()
}

// enableEventBridge turns on EventBridge notifications of a bucket the stack
// creates through the bucket's own CloudFormation property
// (NotificationConfiguration.EventBridgeConfiguration), instead of the
// custom resource CDK's EventBridgeEnabled uses: valid on AWS, and applied
// by LocalStack, which skips custom resources.
func enableEventBridge(b awss3.Bucket) {
	b.Node().DefaultChild().(awss3.CfnBucket).AddPropertyOverride(
		jsii.String("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled"), jsii.Bool(true))
}
