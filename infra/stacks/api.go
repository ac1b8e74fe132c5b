package stacks

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
)

// APIFunction is the name of the operator API function (functions/api).
const APIFunction = "api"

// forwardDeadLetterQueueName is the primary stack's forwarding DLQ (see
// primary.go), named here to reach it across regions without a reference.
func forwardDeadLetterQueueName(c Config) string { return c.Prefix + "-forward-dlq" }

// operatorAPI exposes the api function (when deployed) through a Lambda
// function URL with AuthType AWS_IAM and creates the operator managed
// policy: lambda:InvokeFunctionUrl on that function only, for function URLs
// with AWS_IAM auth. The function reads the registry (its database secret,
// granted like every function), lists and reads both buckets, reads the
// primary's notification configuration and counts the dead-letter queues
// for the health check; it never writes or deletes S3 objects. Actions
// (resync, reverify) are enabled by the apiActions context.
func (s *SecondaryStack) operatorAPI(c Config) {
	fn, ok := s.Functions[APIFunction]
	if !ok {
		return
	}
	scope := s.scopes[APIFunction]
	url := fn.AddFunctionUrl(&awslambda.FunctionUrlOptions{
		AuthType: awslambda.FunctionUrlAuthType_AWS_IAM,
		// lambdaurl (aws-lambda-go) streams the http.Handler's response.
		InvokeMode: awslambda.InvokeMode_RESPONSE_STREAM,
	})

	fn.AddEnvironment(jsii.String("GEOBLOB_API_ACTIONS"), jsii.String(strconv.FormatBool(c.APIActions)), nil)

	// Health check: a read-only probe of the secondary (ListObjectsV2 and a
	// HEAD of an absent key, which answers 404 with s3:ListBucket) ...
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("SecondaryList"),
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &[]*string{s.Bucket.BucketArn()},
	}))
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("SecondaryProbe"),
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &[]*string{s.Bucket.ArnForObjects(jsii.String("*"))},
	}))
	// ... the primary's notification configuration ...
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PrimaryNotificationConfig"),
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings("s3:GetBucketNotification"),
		Resources: jsii.Strings(*primaryBucketArn(s.Stack, c)),
	}))
	// ... and the dead-letter queues' depth (GetQueueAttributes only).
	names := make([]string, 0, len(s.DeadLetterQueues))
	for n := range s.DeadLetterQueues {
		names = append(names, n)
	}
	sort.Strings(names)
	urls := []string{}
	arns := []string{}
	for _, n := range names {
		q := s.DeadLetterQueues[n]
		urls = append(urls, *q.QueueUrl())
		arns = append(arns, *q.QueueArn())
	}
	if !c.LocalStack() {
		fwd := forwardDeadLetterQueueName(c)
		urls = append(urls, fmt.Sprintf("https://sqs.%s.%s/%s/%s", c.PrimaryRegion, *s.Stack.UrlSuffix(), *s.Stack.Account(), fwd))
		arns = append(arns, fmt.Sprintf("arn:%s:sqs:%s:%s:%s", *s.Stack.Partition(), c.PrimaryRegion, *s.Stack.Account(), fwd))
	}
	if len(urls) > 0 {
		fn.AddEnvironment(jsii.String("GEOBLOB_DEAD_LETTER_QUEUES"), jsii.String(strings.Join(urls, ",")), nil)
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("DeadLetterDepth"),
			Effect:    awsiam.Effect_ALLOW,
			Actions:   jsii.Strings("sqs:GetQueueAttributes"),
			Resources: jsii.Strings(arns...),
		}))
	}

	policy := awsiam.NewManagedPolicy(scope, jsii.String("OperatorPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("geoblob operators: call the operator API function URL (geoblob console -aws)"),
		Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("InvokeOperatorAPI"),
			Effect:    awsiam.Effect_ALLOW,
			Actions:   jsii.Strings("lambda:InvokeFunctionUrl"),
			Resources: jsii.Strings(*fn.FunctionArn()),
			Conditions: &map[string]any{
				"StringEquals": map[string]any{"lambda:FunctionUrlAuthType": "AWS_IAM"},
			},
		})},
	})

	awscdk.NewCfnOutput(s.Stack, jsii.String("OperatorApiUrl"), &awscdk.CfnOutputProps{
		Value:       url.Url(),
		Description: jsii.String("operator API and console (AWS_IAM): geoblob console -aws <this URL>"),
	})
	awscdk.NewCfnOutput(s.Stack, jsii.String("OperatorPolicyArn"), &awscdk.CfnOutputProps{
		Value:       policy.ManagedPolicyArn(),
		Description: jsii.String("attach to operators' users or roles to use the operator API"),
	})
}
