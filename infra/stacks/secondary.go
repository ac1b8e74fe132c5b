package stacks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/customresources"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// DatabaseName is the registry's database on the Aurora cluster.
const DatabaseName = "geoblob"

// DatabaseUser is the registry's master user (its password lives only in Secrets Manager).
const DatabaseUser = "geoblob"

// SecondaryStack is the disaster-recovery stack in the secondary region.
type SecondaryStack struct {
	// Stack is the CDK stack.
	Stack awscdk.Stack
	// Bucket is the secondary bucket; Key encrypts it.
	Bucket awss3.Bucket
	// BreakGlassRole alone may change versioning or lifecycle, or delete
	// object versions, on Bucket (disasterRecovery, dr.go).
	BreakGlassRole awsiam.Role
	// Key is the KMS key of the secondary bucket.
	Key awskms.Key
	// EventBus receives the primary bucket's events forwarded from the primary region.
	EventBus awsevents.EventBus
	// Cluster is the Aurora PostgreSQL Serverless v2 registry; Proxy fronts it.
	Cluster awsrds.DatabaseCluster
	// Proxy is the RDS Proxy the functions connect to.
	Proxy awsrds.DatabaseProxy
	// Secret holds the registry credentials (RDS JSON format): the Aurora
	// secret on AWS, the secret imported by name on LocalStack.
	Secret awssecretsmanager.ISecret
	// secretID is GEOBLOB_DATABASE_SECRET_ARN: the secret's ARN, or its name
	// when imported by name.
	secretID *string
	// RuntimeSecret holds the runtime login's credentials (see dbroles.go);
	// runtimeSecretID is its GEOBLOB_DATABASE_SECRET_ARN.
	RuntimeSecret   awssecretsmanager.ISecret
	runtimeSecretID *string
	proxySG         awsec2.SecurityGroup
	// Functions maps function names to the deployed functions.
	Functions map[string]awslambda.Function
	// Queues and DeadLetterQueues map queue-driven function names to their queues.
	Queues, DeadLetterQueues map[string]awssqs.Queue

	// scopes maps function names to the construct grouping each function's resources.
	scopes map[string]constructs.Construct
	// alarmTopic is the SNS topic of the stack's alarms (set by monitoring).
	alarmTopic awssns.ITopic
	// requestScopes group each request queue's resources (requests.go).
	requestScopes map[string]constructs.Construct
}

// EventBusName is the name of the secondary region's event bus (known to the
// primary stack without a cross-region reference).
func EventBusName(c Config) string { return c.Prefix + "-s3-events" }

// newSecondaryStack builds the secondary stack; c is validated.
func newSecondaryStack(scope constructs.Construct, id string, c Config, specs []FunctionSpec) (*SecondaryStack, error) {
	stack := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Env:         env(c, c.SecondaryRegion),
		Description: jsii.String("geoblob disaster-recovery side: secondary bucket, registry (Aurora + RDS Proxy), replication functions"),
	})
	s := &SecondaryStack{
		Stack:            stack,
		Functions:        map[string]awslambda.Function{},
		Queues:           map[string]awssqs.Queue{},
		DeadLetterQueues: map[string]awssqs.Queue{},
		scopes:           map[string]constructs.Construct{},
		requestScopes:    map[string]constructs.Construct{},
	}
	s.storage(c)
	var sg awsec2.ISecurityGroup // nil on LocalStack: no VPC
	if c.LocalStack() {
		s.localRegistry(c)
	} else {
		s.database(c)
		sg = s.functionSecurityGroup()
	}
	s.eventBus(c)

	env := functionEnv(c, s)
	for _, spec := range specs {
		fn, err := s.function(c, spec, sg, env)
		if err != nil {
			return nil, err
		}
		s.Functions[spec.Name] = fn
	}
	var migrations awscdk.CustomResource
	if fn, ok := s.Functions["migrate"]; ok && !c.LocalStack() {
		var err error
		if migrations, err = s.migrations(c, fn); err != nil {
			return nil, err
		}
	}
	s.rotateSecrets(c, migrations)
	for _, spec := range specs {
		fn := s.Functions[spec.Name]
		switch spec.Trigger {
		case TriggerQueue:
			s.queueTrigger(c, spec, fn, migrations)
		case TriggerSchedule:
			if c.LocalStack() {
				s.scheduleRule(c, spec, fn)
			} else {
				s.scheduleTrigger(c, spec, fn, migrations)
			}
		}
	}
	s.requestQueues(c, migrations)
	s.operatorAPI(c)
	s.monitoring(c, specs)
	s.disasterRecovery(c)
	s.requestQueueAlarms(c)
	s.outputs(c)
	return s, nil
}

// env returns the stack environment: a concrete region (needed for the
// cross-region event forwarding), and the account only when configured, so
// `make synth` needs no credentials and does no context lookups.
func env(c Config, region string) *awscdk.Environment {
	e := &awscdk.Environment{Region: jsii.String(region)}
	if c.Account != "" {
		e.Account = jsii.String(c.Account)
	}
	return e
}

// storage creates the KMS key and the secondary bucket.
func (s *SecondaryStack) storage(c Config) {
	s.Key = awskms.NewKey(s.Stack, jsii.String("SecondaryKey"), &awskms.KeyProps{
		Description:       jsii.String("geoblob secondary bucket encryption"),
		EnableKeyRotation: jsii.Bool(true),
		Alias:             jsii.String("alias/" + c.Prefix + "-secondary"),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	props := &awss3.BucketProps{
		Versioned:         jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_KMS,
		EncryptionKey:     s.Key,
		BucketKeyEnabled:  jsii.Bool(true),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		// The secondary copy is the disaster-recovery data: never delete it with the stack.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id: jsii.String("expire-noncurrent-versions"),
			// Deleted or overwritten copies stay recoverable this long, then
			// go, so nothing deleted on the primary lives on in the secondary.
			NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(float64(c.NoncurrentVersionDays))),
			ExpiredObjectDeleteMarker:           jsii.Bool(true),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
		}},
	}
	if c.SecondaryBucket != "" {
		props.BucketName = jsii.String(c.SecondaryBucket)
	}
	s.Bucket = awss3.NewBucket(s.Stack, jsii.String("SecondaryBucket"), props)
}

// vpcOf returns the stack's VPC (created by database).
func vpcOf(stack awscdk.Stack) awsec2.IVpc {
	return stack.Node().FindChild(jsii.String("Vpc")).(awsec2.IVpc)
}

// database creates the VPC, the Aurora PostgreSQL Serverless v2 cluster, its
// secret and the RDS Proxy.
func (s *SecondaryStack) database(c Config) {
	vpc := awsec2.NewVpc(s.Stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(float64(c.NatGateways)),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("functions"), SubnetType: privateSubnetType(c), CidrMask: jsii.Number(22)},
			{Name: jsii.String("database"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)},
		},
		GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
			// Same-region S3 (the secondary bucket) without NAT charges.
			"S3": {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
		},
	})
	secret := awsrds.NewDatabaseSecret(s.Stack, jsii.String("RegistrySecret"), &awsrds.DatabaseSecretProps{
		Username: jsii.String(DatabaseUser),
		Dbname:   jsii.String(DatabaseName),
	})
	// Keep the credentials with the retained cluster snapshot.
	secret.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
	s.Secret, s.secretID = secret, secret.SecretArn()
	clusterID := c.Prefix + "-registry"
	// The cluster's PostgreSQL log group, created here with its retention
	// (instead of CDK's log-retention custom resource).
	dbLogs := awslogs.NewLogGroup(s.Stack, jsii.String("RegistryLogs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String("/aws/rds/cluster/" + clusterID + "/postgresql"),
		Retention:     retention(c.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	s.Cluster = awsrds.NewDatabaseCluster(s.Stack, jsii.String("Registry"), &awsrds.DatabaseClusterProps{
		ClusterIdentifier: jsii.String(clusterID),
		Engine: awsrds.DatabaseClusterEngine_AuroraPostgres(&awsrds.AuroraPostgresClusterEngineProps{
			Version: awsrds.AuroraPostgresEngineVersion_VER_16_6(),
		}),
		Credentials:             awsrds.Credentials_FromSecret(secret, nil),
		DefaultDatabaseName:     jsii.String(DatabaseName),
		Writer:                  awsrds.ClusterInstance_ServerlessV2(jsii.String("writer"), &awsrds.ServerlessV2ClusterInstanceProps{}),
		ServerlessV2MinCapacity: jsii.Number(c.DatabaseMinACU),
		ServerlessV2MaxCapacity: jsii.Number(c.DatabaseMaxACU),
		Vpc:                     vpc,
		VpcSubnets:              &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		StorageEncrypted:        jsii.Bool(true),
		DeletionProtection:      jsii.Bool(c.DatabaseDeletionProtection),
		Backup:                  &awsrds.BackupProps{Retention: awscdk.Duration_Days(jsii.Number(7))},
		RemovalPolicy:           awscdk.RemovalPolicy_SNAPSHOT,
		CloudwatchLogsExports:   jsii.Strings("postgresql"),
	})
	s.Cluster.Node().AddDependency(dbLogs)
	s.proxySG = awsec2.NewSecurityGroup(s.Stack, jsii.String("ProxySecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:         vpc,
		Description: jsii.String("geoblob RDS Proxy"),
	})
	s.Proxy = awsrds.NewDatabaseProxy(s.Stack, jsii.String("RegistryProxy"), &awsrds.DatabaseProxyProps{
		ProxyTarget:    awsrds.ProxyTarget_FromCluster(s.Cluster),
		Secrets:        &[]awssecretsmanager.ISecret{secret, s.runtimeSecret()},
		Vpc:            vpc,
		VpcSubnets:     &awsec2.SubnetSelection{SubnetType: privateSubnetType(c)},
		SecurityGroups: &[]awsec2.ISecurityGroup{s.proxySG},
		RequireTLS:     jsii.Bool(true),
		DbProxyName:    jsii.String(c.Prefix + "-registry"),
	})
	s.Cluster.Connections().AllowDefaultPortFrom(s.proxySG, jsii.String("RDS Proxy"))
}

// functionSecurityGroup creates the functions' security group: HTTPS out and
// PostgreSQL to the RDS Proxy only.
func (s *SecondaryStack) functionSecurityGroup() awsec2.ISecurityGroup {
	sg := awsec2.NewSecurityGroup(s.Stack, jsii.String("FunctionSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              vpcOf(s.Stack),
		Description:      jsii.String("geoblob functions: HTTPS to AWS APIs (S3 of both regions, Secrets Manager, KMS), PostgreSQL to the RDS Proxy"),
		AllowAllOutbound: jsii.Bool(false),
	})
	sg.AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to AWS APIs"), nil)
	sg.AddEgressRule(awsec2.Peer_SecurityGroupId(s.proxySG.SecurityGroupId(), nil),
		awsec2.Port_Tcp(jsii.Number(5432)), jsii.String("PostgreSQL to the RDS Proxy"), nil)
	s.Proxy.Connections().AllowFrom(sg, awsec2.Port_Tcp(jsii.Number(5432)), jsii.String("geoblob functions"))
	return sg
}

// privateSubnetType is the functions' subnet type: with egress through NAT,
// or isolated when natGateways=0 (then the functions reach only same-region
// S3 through the gateway endpoint; documented as unsupported for AWS).
func privateSubnetType(c Config) awsec2.SubnetType {
	if c.NatGateways == 0 {
		return awsec2.SubnetType_PRIVATE_ISOLATED
	}
	return awsec2.SubnetType_PRIVATE_WITH_EGRESS
}

// eventBus creates the bus the primary region forwards object events to.
func (s *SecondaryStack) eventBus(c Config) {
	s.EventBus = awsevents.NewEventBus(s.Stack, jsii.String("ObjectEvents"), &awsevents.EventBusProps{
		EventBusName: jsii.String(EventBusName(c)),
		Description:  jsii.String("geoblob: S3 object events of the primary bucket, forwarded from " + c.PrimaryRegion),
	})
}

// functionEnv is the configuration every function receives (the names of
// shared/config's Reference).
func functionEnv(c Config, s *SecondaryStack) map[string]*string {
	e := map[string]*string{
		"GEOBLOB_DATABASE_SECRET_ARN": s.secretID,
		"GEOBLOB_PRIMARY_BUCKET":      jsii.String(c.PrimaryBucket),
		"GEOBLOB_PRIMARY_REGION":      jsii.String(c.PrimaryRegion),
		"GEOBLOB_SECONDARY_BUCKET":    s.Bucket.BucketName(),
		"GEOBLOB_SECONDARY_REGION":    jsii.String(c.SecondaryRegion),
		"GEOBLOB_COPY_CONCURRENCY":    jsii.String(strconv.Itoa(c.CopyConcurrency)),
		"GEOBLOB_LOG_LEVEL":           jsii.String(strings.ToLower(c.LogLevel)),
		"GEOBLOB_REVERIFY_INTERVAL":   jsii.String(c.ReverifyInterval.String()),
	}
	if s.Proxy != nil {
		e["GEOBLOB_DATABASE_HOST"] = s.Proxy.Endpoint()
	}
	e["GEOBLOB_DATABASE_SSLMODE"] = jsii.String(databaseSSLMode(c))
	if c.BackfillInventory != "" {
		e["GEOBLOB_BACKFILL_INVENTORY"] = jsii.String(c.BackfillInventory)
	}
	if len(c.DataTypes) > 0 {
		e["GEOBLOB_DATA_TYPES"] = jsii.String(strings.Join(c.DataTypes, ","))
	}
	if c.PrimaryEndpoint != "" {
		e["GEOBLOB_PRIMARY_ENDPOINT"] = jsii.String(c.PrimaryEndpoint)
	}
	if c.SecondaryEndpoint != "" {
		e["GEOBLOB_SECONDARY_ENDPOINT"] = jsii.String(c.SecondaryEndpoint)
	}
	if c.S3PathStyle || c.LocalStack() {
		e["GEOBLOB_S3_PATH_STYLE"] = jsii.String("true")
	}
	for k, v := range c.ExtraEnv {
		e[k] = jsii.String(v)
	}
	if c.LocalInvoke {
		// Placeholders that testdata/sam/env.json overrides; the URL wins over the secret.
		e["GEOBLOB_DATABASE_URL"] = jsii.String("postgres://set-by-sam-env-vars/geoblob")
		for _, k := range []string{"GEOBLOB_PRIMARY_ENDPOINT", "GEOBLOB_SECONDARY_ENDPOINT"} {
			if e[k] == nil {
				e[k] = jsii.String("http://set-by-sam-env-vars")
			}
		}
		e["GEOBLOB_S3_PATH_STYLE"] = jsii.String("true")
	}
	return e
}

// function creates one function with its log group and least-privilege role.
func (s *SecondaryStack) function(c Config, spec FunctionSpec, sg awsec2.ISecurityGroup, env map[string]*string) (awslambda.Function, error) {
	scope := constructs.NewConstruct(s.Stack, jsii.String(spec.Name))
	s.scopes[spec.Name] = scope
	logs := awslogs.NewLogGroup(scope, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retention(c.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	envCopy := make(map[string]*string, len(env))
	for k, v := range env {
		envCopy[k] = v
	}
	s.databaseEnv(spec, envCopy)
	assetDir, err := filepath.Abs(filepath.Join(c.AssetRoot, spec.binary()))
	if err != nil {
		return nil, fmt.Errorf("infra: asset dir of %s: %w", spec.Name, err)
	}
	props := &awslambda.FunctionProps{
		Description:   jsii.String(spec.Description),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  architecture(c),
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(assetDir), nil),
		MemorySize:    jsii.Number(float64(spec.MemoryMB)),
		Timeout:       awscdk.Duration_Seconds(jsii.Number(spec.Timeout.Seconds())),
		Environment:   &envCopy,
		LogGroup:      logs,
		LoggingFormat: awslambda.LoggingFormat_JSON,
	}
	if sg != nil {
		props.Vpc = vpcOf(s.Stack)
		props.VpcSubnets = &awsec2.SubnetSelection{SubnetType: privateSubnetType(c)}
		props.SecurityGroups = &[]awsec2.ISecurityGroup{sg}
	}
	if n := c.Concurrency[spec.Name]; n > 0 {
		props.ReservedConcurrentExecutions = jsii.Number(float64(n))
	}
	if spec.Trigger == TriggerSchedule {
		// Scheduler invokes asynchronously: a tick that cannot run (throttled
		// by the concurrency cap) is dropped, not queued behind the next ones.
		props.RetryAttempts = jsii.Number(0)
		props.MaxEventAge = awscdk.Duration_Minutes(jsii.Number(2))
	}
	fn := awslambda.NewFunction(scope, jsii.String("Function"), props)
	fn.Node().DefaultChild().(awslambda.CfnFunction).OverrideLogicalId(jsii.String(spec.LogicalID))

	for _, st := range s.bucketStatements(c, effectiveS3(c, spec)) {
		fn.AddToRolePolicy(st)
	}
	// The registry credentials: read its own secret(s), nothing else.
	s.grantDatabase(spec, fn)
	return fn, nil
}

// primaryBucketArn is the ARN of the primary bucket (in another region and
// possibly not managed by CDK, so it is built from its name).
func primaryBucketArn(stack awscdk.Stack, c Config) *string {
	return jsii.String(fmt.Sprintf("arn:%s:s3:::%s", *stack.Partition(), c.PrimaryBucket))
}

// bucketStatements returns the S3 and KMS statements for access a: explicit
// actions only, on the two named buckets only.
func (s *SecondaryStack) bucketStatements(c Config, a S3Access) []awsiam.PolicyStatement {
	var sts []awsiam.PolicyStatement
	stmt := func(sid string, actions []string, resources ...*string) {
		sts = append(sts, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(sid),
			Effect:    awsiam.Effect_ALLOW,
			Actions:   jsii.Strings(actions...),
			Resources: &resources,
		}))
	}
	primary := primaryBucketArn(s.Stack, c)
	primaryObjects := jsii.String(*primary + "/*")
	secondary := s.Bucket.BucketArn()
	secondaryObjects := s.Bucket.ArnForObjects(jsii.String("*"))
	// Each action below is needed by a call some function makes; the
	// recorded calls prove it (iam_proof_test.go, internal/iamcheck).
	if a.PrimaryRead {
		stmt("PrimaryReadObjects", []string{"s3:GetObject"}, primaryObjects)
		stmt("PrimaryList", []string{"s3:ListBucket"}, primary)
	}
	if bucket, prefix, _ := inventoryLocation(c); a.InventoryRead && bucket != "" {
		arn := fmt.Sprintf("arn:%s:s3:::%s", *s.Stack.Partition(), bucket)
		stmt("InventoryReadObjects", []string{"s3:GetObject"}, jsii.String(arn+"/"+prefix+"*"))
		stmt("InventoryList", []string{"s3:ListBucket"}, jsii.String(arn))
	}
	if a.PrimaryRead && c.PrimaryKMSKeyARN != "" {
		stmt("PrimaryKey", []string{"kms:Decrypt"}, jsii.String(c.PrimaryKMSKeyARN))
	}
	if a.SecondaryRead || a.SecondaryWrite || a.SecondaryList {
		stmt("SecondaryList", []string{"s3:ListBucket"}, secondary)
	}
	if a.SecondaryRead {
		stmt("SecondaryReadObjects", []string{"s3:GetObject"}, secondaryObjects)
	}
	if a.SecondaryWrite {
		stmt("SecondaryWriteObjects", []string{
			"s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:AbortMultipartUpload",
			"s3:GetObjectVersion", // HEAD of the version just written
		}, secondaryObjects)
	}
	if a.SecondaryDelete || a.SecondaryWrite {
		// A delete marker; noncurrent versions expire by lifecycle, and no
		// role may delete a version (s3:DeleteObjectVersion).
		stmt("SecondaryDeleteObjects", []string{"s3:DeleteObject"}, secondaryObjects)
	}
	var kms []string
	if a.SecondaryRead || a.SecondaryWrite {
		kms = append(kms, "kms:Decrypt")
	}
	if a.SecondaryWrite {
		kms = append(kms, "kms:GenerateDataKey")
	}
	if len(kms) > 0 {
		stmt("SecondaryKey", kms, s.Key.KeyArn())
	}
	return sts
}

// queueTrigger creates the function's queue and dead-letter queue, routes the
// matching events of the bus to it and attaches it with partial batch responses.
func (s *SecondaryStack) queueTrigger(c Config, spec FunctionSpec, fn awslambda.Function, after constructs.IConstruct) {
	scope := s.scopes[spec.Name]
	name := c.Prefix + "-" + strings.ToLower(spec.Name)
	dlq := awssqs.NewQueue(scope, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(name + "-dlq"),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	// AWS recommends a visibility timeout of six times the function timeout.
	visibility := min(6*spec.Timeout, 12*time.Hour)
	q := awssqs.NewQueue(scope, jsii.String("Queue"), &awssqs.QueueProps{
		QueueName:         jsii.String(name),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(visibility.Seconds())),
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(float64(c.MaxReceiveCount)),
		},
	})
	s.Queues[spec.Name] = q
	s.DeadLetterQueues[spec.Name] = dlq

	awsevents.NewRule(scope, jsii.String("Rule"), &awsevents.RuleProps{
		EventBus:    s.EventBus,
		Description: jsii.String(fmt.Sprintf("geoblob: %s events of %s to %s", strings.Join(spec.EventTypes, ", "), c.PrimaryBucket, spec.Name)),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.s3"),
			DetailType: jsii.Strings(spec.EventTypes...),
			Detail: &map[string]any{
				"bucket": map[string]any{"name": []string{c.PrimaryBucket}},
			},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(q, &awseventstargets.SqsQueueProps{
			// An event the bus cannot deliver lands in the same DLQ, in the
			// same shape as a message the function gave up on.
			DeadLetterQueue: dlq,
			RetryAttempts:   jsii.Number(185),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
		})},
	})

	props := &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(float64(c.BatchSize)),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(1)),
		ReportBatchItemFailures: jsii.Bool(true),
	}
	if n := c.EventInstances(spec.Name); n >= 2 {
		// The function's mappings together never ask for more than its
		// reserved concurrency (see SyncRequestInstances).
		props.MaxConcurrency = jsii.Number(float64(n))
	}
	src := awslambdaeventsources.NewSqsEventSource(q, props)
	fn.AddEventSource(src)
	if after != nil {
		// Do not consume events before the registry schema exists.
		for _, child := range *fn.Node().Children() {
			if m, ok := child.(awslambda.EventSourceMapping); ok {
				m.Node().AddDependency(after)
			}
		}
	}
}

// scheduleInput is the payload of a scheduled invocation: the shape of an
// EventBridge scheduled event (aws-lambda-go events.CloudWatchEvent).
func scheduleInput(task string) awsscheduler.ScheduleTargetInput {
	return awsscheduler.ScheduleTargetInput_FromObject(map[string]any{
		"version":     "0",
		"id":          *awsscheduler.ContextAttribute_ExecutionId(),
		"detail-type": "Scheduled Event",
		"source":      "aws.scheduler",
		"time":        *awsscheduler.ContextAttribute_ScheduledTime(),
		"resources":   []string{*awsscheduler.ContextAttribute_ScheduleArn()},
		"detail":      map[string]any{"task": task},
	})
}

// scheduleTrigger invokes the function on its EventBridge Scheduler schedule.
func (s *SecondaryStack) scheduleTrigger(c Config, spec FunctionSpec, fn awslambda.Function, after constructs.IConstruct) {
	expr := c.ScheduleFor(spec.Name)
	sched := awsscheduler.NewSchedule(s.scopes[spec.Name], jsii.String("Schedule"), &awsscheduler.ScheduleProps{
		ScheduleName: jsii.String(c.Prefix + "-" + strings.ToLower(spec.Name)),
		Description:  jsii.String("geoblob: run " + spec.Name),
		Schedule:     awsscheduler.ScheduleExpression_Expression(jsii.String(expr), nil),
		Target: awsschedulertargets.NewLambdaInvoke(fn, &awsschedulertargets.ScheduleTargetBaseProps{
			Input:         scheduleInput(spec.Name),
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
		}),
	})
	if after != nil {
		sched.Node().AddDependency(after)
	}
}

// migrations runs the migrate function through the custom resource provider
// framework on every deploy that changes its binary (the binary embeds the
// migrations), after the database and proxy exist.
func (s *SecondaryStack) migrations(c Config, fn awslambda.Function) (awscdk.CustomResource, error) {
	sum, err := fileSHA256(filepath.Join(c.AssetRoot, "migrate", "bootstrap"))
	if err != nil {
		return nil, err
	}
	scope := s.scopes["migrate"]
	provider := customresources.NewProvider(scope, jsii.String("Provider"), &customresources.ProviderProps{
		OnEventHandler: fn,
		LogGroup: awslogs.NewLogGroup(scope, jsii.String("ProviderLogs"), &awslogs.LogGroupProps{
			Retention:     retention(c.LogRetentionDays),
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		}),
	})
	cr := awscdk.NewCustomResource(scope, jsii.String("Migrations"), &awscdk.CustomResourceProps{
		ServiceToken: provider.ServiceToken(),
		ResourceType: jsii.String("Custom::GeoblobMigrations"),
		Properties: &map[string]any{
			"BootstrapSha256": sum,
			"Database":        DatabaseName,
		},
	})
	cr.Node().AddDependency(s.Proxy, s.Cluster, vpcOf(s.Stack))
	return cr, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("infra: hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("infra: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// retention converts validated days into the RetentionDays enum.
func retention(days int) awslogs.RetentionDays { return retentionDays[days] }

// outputs exports what an operator or the functions' local runs need.
func (s *SecondaryStack) outputs(c Config) {
	out := func(id string, value *string, desc string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(desc)})
	}
	out("SecondaryBucketName", s.Bucket.BucketName(), "GEOBLOB_SECONDARY_BUCKET")
	out("SecondaryKeyArn", s.Key.KeyArn(), "KMS key of the secondary bucket")
	out("RegistrySecretArn", s.secretID, "GEOBLOB_DATABASE_SECRET_ARN")
	if s.Proxy != nil {
		out("RegistryProxyEndpoint", s.Proxy.Endpoint(), "GEOBLOB_DATABASE_HOST")
		out("RegistryClusterEndpoint", s.Cluster.ClusterEndpoint().Hostname(), "Aurora writer endpoint (migrations and maintenance go through the proxy)")
	}
	out("EventBusArn", s.EventBus.EventBusArn(), "bus receiving the primary bucket's events")
	for name, q := range s.Queues {
		out(exportID(name)+"QueueUrl", q.QueueUrl(), name+" queue")
		out(exportID(name)+"DeadLetterQueueUrl", s.DeadLetterQueues[name].QueueUrl(), name+" dead-letter queue")
	}
	for name, fn := range s.Functions {
		out(exportID(name)+"FunctionName", fn.FunctionName(), name+" function")
	}
}

// exportID turns a function name into an output id prefix ("onCreate" -> "OnCreate").
func exportID(name string) string {
	return strings.ToUpper(name[:1]) + name[1:]
}
