package stacks

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFunctions(t *testing.T) {
	s := fixture(t, "full")
	// Seven geoblob functions plus the Provider framework's own handler.
	check(t, "function count", func() { s.secondary.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(8)) })
	for _, spec := range KnownFunctions() {
		t.Run(spec.Name, func(t *testing.T) {
			check(t, "properties", func() {
				s.secondary.HasResource(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Properties": assertions.Match_ObjectLike(&map[string]any{
						"Runtime":                      "provided.al2023",
						"Architectures":                []any{"arm64"},
						"Handler":                      "bootstrap",
						"MemorySize":                   spec.MemoryMB,
						"Timeout":                      spec.Timeout.Seconds(),
						"ReservedConcurrentExecutions": s.cfg.Concurrency[spec.Name],
						"VpcConfig":                    assertions.Match_ObjectLike(&map[string]any{"SubnetIds": assertions.Match_AnyValue()}),
						"LoggingConfig":                assertions.Match_ObjectLike(&map[string]any{"LogFormat": "JSON"}),
					}),
				})
			})
			fn := resource(t, s.secondaryJSON, spec.LogicalID)
			p := props(fn)
			assert.Equal(t, "provided.al2023", p["Runtime"])
			assert.Equal(t, []any{"arm64"}, p["Architectures"])
			assert.EqualValues(t, spec.MemoryMB, p["MemorySize"])
			assert.EqualValues(t, spec.Timeout.Seconds(), p["Timeout"])
			assert.EqualValues(t, s.cfg.Concurrency[spec.Name], p["ReservedConcurrentExecutions"])

			vars := p["Environment"].(map[string]any)["Variables"].(map[string]any)
			assert.Equal(t, "registry-packages", vars["GEOBLOB_PRIMARY_BUCKET"])
			assert.Equal(t, "us-east-1", vars["GEOBLOB_PRIMARY_REGION"])
			assert.Equal(t, "us-west-2", vars["GEOBLOB_SECONDARY_REGION"])
			assert.Equal(t, ref(logicalIDOf(t, s.secondaryJSON, "AWS::S3::Bucket", "SecondaryBucket")), vars["GEOBLOB_SECONDARY_BUCKET"])
			if spec.Name == "migrate" {
				assert.Equal(t, ref(logicalIDOf(t, s.secondaryJSON, "AWS::SecretsManager::Secret", "RegistrySecret")), vars["GEOBLOB_DATABASE_SECRET_ARN"], "only migrate connects as the owner")
			} else {
				assert.Equal(t, ref(logicalIDOf(t, s.secondaryJSON, "AWS::SecretsManager::SecretTargetAttachment", "RuntimeSecret")), vars["GEOBLOB_DATABASE_SECRET_ARN"], "the runtime login (DML only)")
			}
			assert.Equal(t, getAtt(logicalIDOf(t, s.secondaryJSON, "AWS::RDS::DBProxy", "RegistryProxy"), "Endpoint"), vars["GEOBLOB_DATABASE_HOST"])
			assert.Equal(t, "npm_package_file,maven_package_file", vars["GEOBLOB_DATA_TYPES"])
			assert.Equal(t, "10", vars["GEOBLOB_COPY_CONCURRENCY"])
			assert.Equal(t, "2160h0m0s", vars["GEOBLOB_REVERIFY_INTERVAL"])
			assert.Equal(t, "info", vars["GEOBLOB_LOG_LEVEL"])
			assert.Equal(t, "9m", vars["GEOBLOB_BACKFILL_BUDGET"], "extraEnv")
			assert.NotContains(t, vars, "GEOBLOB_DATABASE_URL", "no password in the environment")
			assert.Equal(t, "verify-full", vars["GEOBLOB_DATABASE_SSLMODE"], "the proxy's certificate and host name are verified")
			assert.NotContains(t, vars, "GEOBLOB_DATABASE_CA_FILE", "system roots: RDS Proxy's ACM certificates chain to the Amazon roots")

			// Its log group keeps logs for the configured retention.
			lg := p["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
			assert.EqualValues(t, 30, props(resource(t, s.secondaryJSON, lg))["RetentionInDays"])
		})
	}
}

func TestLogRetentionEverywhere(t *testing.T) {
	s := fixture(t, "full")
	groups := resources(s.secondaryJSON, "AWS::Logs::LogGroup")
	// One per function, the provider framework's, the database's.
	assert.Len(t, groups, len(KnownFunctions())+2)
	for id, g := range groups {
		assert.EqualValues(t, 30, props(g)["RetentionInDays"], id)
	}
	assert.Empty(t, resources(s.secondaryJSON, "Custom::LogRetention"), "log groups are created with their retention, no custom resource")
	check(t, "database log group", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{
			"LogGroupName": "/aws/rds/cluster/geoblob-registry/postgresql", "RetentionInDays": 30,
		})
	})
}

func TestQueuesAndDeadLetters(t *testing.T) {
	s := fixture(t, "full")
	// Two event queues and two request queues, each with its dead-letter queue.
	check(t, "queue count", func() { s.secondary.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(8)) })
	for _, spec := range KnownFunctions() {
		if spec.Trigger != TriggerQueue {
			continue
		}
		t.Run(spec.Name, func(t *testing.T) {
			qid := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", spec.Name+"Queue")
			dlqID := logicalIDOf(t, s.secondaryJSON, "AWS::SQS::Queue", spec.Name+"DeadLetterQueue")
			q := props(resource(t, s.secondaryJSON, qid))
			assert.Equal(t, "geoblob-"+strings.ToLower(spec.Name), q["QueueName"])
			assert.Equal(t, map[string]any{"deadLetterTargetArn": getAtt(dlqID, "Arn"), "maxReceiveCount": float64(5)}, q["RedrivePolicy"])
			assert.EqualValues(t, 6*spec.Timeout.Seconds(), q["VisibilityTimeout"], "six times the function timeout")
			assert.Equal(t, true, q["SqsManagedSseEnabled"])
			dlq := props(resource(t, s.secondaryJSON, dlqID))
			assert.EqualValues(t, 14*24*3600, dlq["MessageRetentionPeriod"])

			// The event source mapping reports partial batch failures and is capped.
			var found bool
			for id, m := range resources(s.secondaryJSON, "AWS::Lambda::EventSourceMapping") {
				p := props(m)
				if jsonString(p["EventSourceArn"]) != jsonString(getAtt(qid, "Arn")) {
					continue
				}
				found = true
				assert.Equal(t, ref(spec.LogicalID), p["FunctionName"], id)
				assert.Equal(t, []any{"ReportBatchItemFailures"}, p["FunctionResponseTypes"], id)
				assert.EqualValues(t, 10, p["BatchSize"], id)
				assert.Equal(t, map[string]any{"MaximumConcurrency": float64(s.cfg.EventInstances(spec.Name))}, p["ScalingConfig"], id)
				assert.Contains(t, asList(m["DependsOn"]), logicalIDOf(t, s.secondaryJSON, "Custom::GeoblobMigrations", "migrate"),
					"no event is consumed before the schema exists")
			}
			assert.True(t, found, "event source mapping of %s", spec.Name)

			// The bus routes the primary bucket's events of the right kind to the queue.
			rule := props(resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::Events::Rule", spec.Name+"Rule")))
			assert.Equal(t, map[string]any{
				"source":      []any{"aws.s3"},
				"detail-type": toAny(spec.EventTypes),
				"detail":      map[string]any{"bucket": map[string]any{"name": []any{"registry-packages"}}},
			}, rule["EventPattern"])
			target := rule["Targets"].([]any)[0].(map[string]any)
			assert.Equal(t, getAtt(qid, "Arn"), target["Arn"])
			assert.Equal(t, map[string]any{"Arn": getAtt(dlqID, "Arn")}, target["DeadLetterConfig"])
		})
	}
	// Lifecycle expirations are "Object Deleted" events with reason "Lifecycle Expiration".
	check(t, "deleted events rule", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
			"EventPattern": assertions.Match_ObjectLike(&map[string]any{"detail-type": []any{"Object Deleted"}}),
		})
	})
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func TestSecondaryBucket(t *testing.T) {
	s := fixture(t, "full")
	keyID := logicalIDOf(t, s.secondaryJSON, "AWS::KMS::Key", "SecondaryKey")
	check(t, "bucket", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
			"BucketName":              "registry-packages-dr",
			"VersioningConfiguration": map[string]any{"Status": "Enabled"},
			"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{map[string]any{
				"BucketKeyEnabled": true,
				"ServerSideEncryptionByDefault": map[string]any{
					"SSEAlgorithm":   "aws:kms",
					"KMSMasterKeyID": getAtt(keyID, "Arn"),
				},
			}}},
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"LifecycleConfiguration": map[string]any{"Rules": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"NoncurrentVersionExpiration": map[string]any{"NoncurrentDays": 30}}),
			})},
		})
	})
	bucket := resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::S3::Bucket", "SecondaryBucket"))
	assert.Equal(t, "Retain", bucket["DeletionPolicy"], "the disaster-recovery copy outlives the stack")
	check(t, "key rotation", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	})
}

func TestSecondaryBucketIsTLSOnly(t *testing.T) {
	s := fixture(t, "full")
	bucketID := logicalIDOf(t, s.secondaryJSON, "AWS::S3::Bucket", "SecondaryBucket")
	policies := resources(s.secondaryJSON, "AWS::S3::BucketPolicy")
	require.Len(t, policies, 1)
	for _, p := range policies {
		assert.Equal(t, ref(bucketID), props(p)["Bucket"])
		var tlsDeny bool
		for _, st := range statements(props(p)["PolicyDocument"]) {
			cond := jsonString(st["Condition"])
			if st["Effect"] == "Deny" && st["Action"] == "s3:*" && cond == `{"Bool":{"aws:SecureTransport":"false"}}` {
				tlsDeny = true
				assert.Equal(t, map[string]any{"AWS": "*"}, st["Principal"])
				assert.Len(t, asList(st["Resource"]), 2, "bucket and objects")
			}
		}
		assert.True(t, tlsDeny, "a Deny of s3:* when aws:SecureTransport is false")
	}
}

func TestDatabase(t *testing.T) {
	s := fixture(t, "full")
	check(t, "cluster", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::RDS::DBCluster"), map[string]any{
			"Engine":                           "aurora-postgresql",
			"StorageEncrypted":                 true,
			"DeletionProtection":               true,
			"DatabaseName":                     "geoblob",
			"ServerlessV2ScalingConfiguration": map[string]any{"MinCapacity": 0.5, "MaxCapacity": 4},
			"EnableCloudwatchLogsExports":      []any{"postgresql"},
		})
	})
	check(t, "serverless v2 writer", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::RDS::DBInstance"), map[string]any{
			"DBInstanceClass": "db.serverless", "Engine": "aurora-postgresql",
		})
	})
	secretID := logicalIDOf(t, s.secondaryJSON, "AWS::SecretsManager::Secret", "RegistrySecret")
	check(t, "proxy", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::RDS::DBProxy"), map[string]any{
			"EngineFamily": "POSTGRESQL",
			"RequireTLS":   true,
			"Auth": []any{
				assertions.Match_ObjectLike(&map[string]any{"AuthScheme": "SECRETS", "SecretArn": ref(secretID)}),
				assertions.Match_ObjectLike(&map[string]any{"AuthScheme": "SECRETS", "SecretArn": ref(logicalIDOf(t, s.secondaryJSON, "AWS::SecretsManager::SecretTargetAttachment", "RuntimeSecret"))}),
			},
		})
	})
	secret := props(resource(t, s.secondaryJSON, secretID))
	tmpl := secret["GenerateSecretString"].(map[string]any)["SecretStringTemplate"].(string)
	var fields map[string]string
	require.NoError(t, json.Unmarshal([]byte(tmpl), &fields))
	assert.Equal(t, map[string]string{"username": "geoblob", "dbname": "geoblob"}, fields, "RDS JSON secret with dbname")
	assert.Equal(t, "Retain", resource(t, s.secondaryJSON, secretID)["DeletionPolicy"])
	// The cluster lives in isolated subnets: only the proxy reaches it.
	for _, sg := range resources(s.secondaryJSON, "AWS::RDS::DBSubnetGroup") {
		for _, sub := range asList(props(sg)["SubnetIds"]) {
			assert.Contains(t, jsonString(sub), "Vpcdatabase")
		}
	}
}

func TestMigrationsRunDuringDeploy(t *testing.T) {
	s := fixture(t, "full")
	crs := resources(s.secondaryJSON, "Custom::GeoblobMigrations")
	require.Len(t, crs, 1)
	for _, cr := range crs {
		p := props(cr)
		assert.Equal(t, s.bootstrapSum, p["BootstrapSha256"], "a new migrate binary re-runs the migrations")
		deps := asList(cr["DependsOn"])
		assert.Contains(t, deps, logicalIDOf(t, s.secondaryJSON, "AWS::RDS::DBProxy", "RegistryProxy"))
		assert.Contains(t, deps, logicalIDOf(t, s.secondaryJSON, "AWS::RDS::DBProxyTargetGroup", "RegistryProxy"))
		// The Provider framework's handler invokes the migrate function.
		token := jsonString(p["ServiceToken"])
		assert.Contains(t, token, "migrateProviderframeworkonEvent")
	}
	framework := props(resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::Lambda::Function", "migrateProviderframeworkonEvent")))
	assert.Contains(t, jsonString(framework["Environment"]), "MigrateFunction")
	// a migration that rebuilds indexes of a large registry takes minutes:
	// both the migrate function and the framework handler waiting for it
	// may run for Lambda's maximum
	assert.EqualValues(t, 900, framework["Timeout"])
	migrate := props(resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::Lambda::Function", "MigrateFunction")))
	assert.EqualValues(t, 900, migrate["Timeout"])
}

func TestSchedules(t *testing.T) {
	s := fixture(t, "full")
	check(t, "schedule count", func() { s.secondary.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(2)) })
	for name, want := range map[string]string{"backfill": "rate(1 minute)", "verify": "rate(5 minutes)"} {
		t.Run(name, func(t *testing.T) {
			sched := resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::Scheduler::Schedule", name+"Schedule"))
			p := props(sched)
			assert.Equal(t, want, p["ScheduleExpression"])
			assert.Equal(t, "ENABLED", p["State"])
			assert.Equal(t, "geoblob-"+name, p["Name"])
			target := p["Target"].(map[string]any)
			assert.Equal(t, getAtt(exportID(name)+"Function", "Arn"), target["Arn"])
			var input map[string]any
			require.NoError(t, json.Unmarshal([]byte(target["Input"].(string)), &input))
			assert.Equal(t, "Scheduled Event", input["detail-type"])
			assert.Equal(t, map[string]any{"task": name}, input["detail"])
			assert.Contains(t, asList(sched["DependsOn"]), logicalIDOf(t, s.secondaryJSON, "Custom::GeoblobMigrations", "migrate"))
			// Ticks that cannot run are dropped, not queued up.
			check(t, "invoke config", func() {
				s.secondary.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{
					"FunctionName": ref(exportID(name) + "Function"), "MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 120,
				})
			})
		})
	}
}

func TestAlarmsAndDashboard(t *testing.T) {
	s := fixture(t, "full")
	alarms := map[string]map[string]any{}
	for _, a := range resources(s.secondaryJSON, "AWS::CloudWatch::Alarm") {
		alarms[props(a)["AlarmName"].(string)] = props(a)
	}
	want := map[string][2]string{ // alarm name -> namespace, metric
		"geoblob-oldest-unsynced":    {MetricsNamespace, MetricOldestUnsyncedAge},
		"geoblob-failed-blobs":       {MetricsNamespace, MetricFailedBlobs},
		"geoblob-quarantined-blobs":  {MetricsNamespace, MetricQuarantinedBlobs},
		"geoblob-oncreate-dlq":       {"AWS/SQS", "ApproximateNumberOfMessagesVisible"},
		"geoblob-ondelete-dlq":       {"AWS/SQS", "ApproximateNumberOfMessagesVisible"},
		"geoblob-oncreate-queue-age": {"AWS/SQS", "ApproximateAgeOfOldestMessage"},
	}
	for _, f := range KnownFunctions() {
		want["geoblob-"+strings.ToLower(f.Name)+"-errors"] = [2]string{"AWS/Lambda", "Errors"}
		want["geoblob-"+strings.ToLower(f.Name)+"-throttles"] = [2]string{"AWS/Lambda", "Throttles"}
	}
	for name, nm := range want {
		a, ok := alarms[name]
		if !assert.True(t, ok, "alarm %s", name) {
			continue
		}
		assert.Equal(t, nm[0], a["Namespace"], name)
		assert.Equal(t, nm[1], a["MetricName"], name)
		assert.NotEmpty(t, a["AlarmActions"], name)
	}
	assert.EqualValues(t, 3600, alarms["geoblob-oldest-unsynced"]["Threshold"])
	assert.EqualValues(t, 1, alarms["geoblob-oncreate-dlq"]["Threshold"])
	assert.Equal(t, "GreaterThanOrEqualToThreshold", alarms["geoblob-oncreate-dlq"]["ComparisonOperator"])
	check(t, "alarm e-mail", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
			"Protocol": "email", "Endpoint": "ops@example.com",
		})
	})
	dashboards := resources(s.secondaryJSON, "AWS::CloudWatch::Dashboard")
	require.Len(t, dashboards, 1)
	for _, d := range dashboards {
		body := jsonString(props(d)["DashboardBody"])
		for _, m := range []string{MetricOldestUnsyncedAge, MetricFailedBlobs, MetricQuarantinedBlobs, "ApproximateNumberOfMessagesVisible", "Throttles", "ServerlessDatabaseCapacity"} {
			assert.Contains(t, body, m)
		}
	}
}

func TestNetworking(t *testing.T) {
	s := fixture(t, "full")
	check(t, "one NAT gateway", func() { s.secondary.ResourceCountIs(jsii.String("AWS::EC2::NatGateway"), jsii.Number(1)) })
	check(t, "S3 gateway endpoint", func() {
		s.secondary.HasResourceProperties(jsii.String("AWS::EC2::VPCEndpoint"), map[string]any{"VpcEndpointType": "Gateway"})
	})
	// The functions' security group only talks HTTPS out and PostgreSQL to the proxy.
	fnSG := props(resource(t, s.secondaryJSON, logicalIDOf(t, s.secondaryJSON, "AWS::EC2::SecurityGroup", "FunctionSecurityGroup")))
	proxySG := logicalIDOf(t, s.secondaryJSON, "AWS::EC2::SecurityGroup", "ProxySecurityGroup")
	var egress []string
	for _, e := range asList(fnSG["SecurityGroupEgress"]) {
		e := e.(map[string]any)
		to := jsonString(e["CidrIp"])
		if e["DestinationSecurityGroupId"] != nil {
			to = jsonString(e["DestinationSecurityGroupId"])
		}
		egress = append(egress, fmt.Sprintf("%v %v-%v %s", e["IpProtocol"], e["FromPort"], e["ToPort"], to))
	}
	assert.ElementsMatch(t, []string{
		`tcp 443-443 "0.0.0.0/0"`,
		`tcp 5432-5432 ` + jsonString(getAtt(proxySG, "GroupId")),
	}, egress)
}

func TestMinimalStack(t *testing.T) {
	s := fixture(t, "minimal")
	// onCreate, onDelete, migrate, and the Provider framework.
	check(t, "functions", func() { s.secondary.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(4)) })
	check(t, "no schedules", func() { s.secondary.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(0)) })
	check(t, "queues", func() { s.secondary.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(4)) })
	for _, fn := range resources(s.secondaryJSON, "AWS::Lambda::Function") {
		if props(fn)["Runtime"] != "provided.al2023" {
			continue
		}
		vars := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
		assert.NotContains(t, vars, "GEOBLOB_DATA_TYPES", "empty: every built-in type")
		// localInvoke declares what testdata/sam/env.json overrides.
		for _, k := range []string{"GEOBLOB_DATABASE_URL", "GEOBLOB_PRIMARY_ENDPOINT", "GEOBLOB_SECONDARY_ENDPOINT", "GEOBLOB_S3_PATH_STYLE"} {
			assert.Contains(t, vars, k)
		}
	}
}
