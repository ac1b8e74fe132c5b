package stacks

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// localStackTypes reads the fixture of the resource types LocalStack 4.14's
// CloudFormation provides (its source is in the file's header).
func localStackTypes(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("testdata/localstack-4.14.0-cfn-resource-types.txt")
	require.NoError(t, err)
	defer f.Close()
	types := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			types[line] = true
		}
	}
	require.NoError(t, sc.Err())
	require.Greater(t, len(types), 50, "fixture looks truncated")
	return types
}

// resourceTypes returns the logical ids of a template's resources by type.
func resourceTypes(tmpl map[string]any) map[string][]string {
	out := map[string][]string{}
	res, _ := tmpl["Resources"].(map[string]any)
	for id, r := range res {
		typ, _ := r.(map[string]any)["Type"].(string)
		out[typ] = append(out[typ], id)
	}
	return out
}

// unsupportedOnLocalStack returns, per offending type, why a template cannot
// deploy completely on LocalStack 4.14's free edition.
func unsupportedOnLocalStack(tmpl map[string]any, covered map[string]bool) map[string]string {
	bad := map[string]string{}
	for typ := range resourceTypes(tmpl) {
		switch {
		case strings.HasPrefix(typ, "Custom::") || typ == "AWS::CloudFormation::CustomResource":
			bad[typ] = "custom resources are skipped by LocalStack"
		case typ == "AWS::Scheduler::Schedule":
			bad[typ] = "Scheduler schedules are created but never fire on LocalStack"
		case typ == "AWS::EC2::EIP":
			bad[typ] = "no Elastic IPs on LocalStack (the NAT gateway fails)"
		case strings.HasPrefix(typ, "AWS::RDS::"):
			bad[typ] = "no RDS, Aurora or RDS Proxy in LocalStack's free edition"
		case strings.HasPrefix(typ, "AWS::EC2::"):
			bad[typ] = "the LocalStack target has no VPC, subnets or security groups"
		case !covered[typ]:
			bad[typ] = "not in LocalStack 4.14's CloudFormation coverage (testdata fixture)"
		}
	}
	return bad
}

func TestLocalStackTargetUsesOnlyCoveredResources(t *testing.T) {
	s := fixture(t, "localstack")
	covered := localStackTypes(t)
	for name, tmpl := range map[string]map[string]any{PrimaryStackID: s.primaryJSON, SecondaryStackID: s.secondaryJSON} {
		bad := unsupportedOnLocalStack(tmpl, covered)
		assert.Empty(t, bad, "%s: resource types LocalStack cannot deploy", name)
	}
	// The check can fail: the AWS target needs what LocalStack lacks.
	aws := fixture(t, "full")
	bad := unsupportedOnLocalStack(aws.secondaryJSON, covered)
	for _, typ := range []string{"Custom::GeoblobMigrations", "AWS::Scheduler::Schedule", "AWS::EC2::EIP", "AWS::RDS::DBCluster", "AWS::RDS::DBProxy", "AWS::CloudWatch::Dashboard"} {
		assert.Contains(t, bad, typ, "the AWS target's %s is flagged", typ)
	}
	assert.Contains(t, unsupportedOnLocalStack(aws.primaryJSON, covered), "Custom::S3BucketNotifications")
}

func TestLocalStackSameFunctionsQueuesAndAlarms(t *testing.T) {
	ls, aws := fixture(t, "localstack"), fixture(t, "full")
	for _, typ := range []string{"AWS::Lambda::EventSourceMapping", "AWS::SQS::Queue", "AWS::Events::EventBus", "AWS::KMS::Key", "AWS::SNS::Topic", "AWS::CloudWatch::Alarm"} {
		assert.Len(t, resources(ls.secondaryJSON, typ), len(resources(aws.secondaryJSON, typ)), "secondary %s", typ)
	}
	for _, typ := range []string{"AWS::Events::Rule", "AWS::SQS::Queue", "AWS::CloudWatch::Alarm"} {
		assert.Len(t, resources(ls.primaryJSON, typ), len(resources(aws.primaryJSON, typ)), "primary %s", typ)
	}
	// The Provider framework's handler is the AWS target's sixth function.
	assert.Len(t, resources(ls.secondaryJSON, "AWS::Lambda::Function"), len(KnownFunctions()))

	for _, spec := range KnownFunctions() {
		p := props(resource(t, ls.secondaryJSON, spec.LogicalID))
		assert.Equal(t, []any{"x86_64"}, p["Architectures"], spec.Name)
		assert.Equal(t, "provided.al2023", p["Runtime"], spec.Name)
		assert.Nil(t, p["VpcConfig"], spec.Name)
		vars := p["Environment"].(map[string]any)["Variables"].(map[string]any)
		assert.Equal(t, "geoblob/registry", vars["GEOBLOB_DATABASE_SECRET_ARN"], "%s: the secret imported by name", spec.Name)
		assert.NotContains(t, vars, "GEOBLOB_DATABASE_HOST", spec.Name)
		assert.NotContains(t, vars, "GEOBLOB_DATABASE_URL", spec.Name)
		assert.Equal(t, "disable", vars["GEOBLOB_DATABASE_SSLMODE"], "%s: LocalStack's PostgreSQL has no TLS", spec.Name)
		assert.Equal(t, "true", vars["GEOBLOB_S3_PATH_STYLE"], "%s: LocalStack's AWS_ENDPOINT_URL is an IP address", spec.Name)

		// Each function may read the registry secret, by its name.
		var grants []string
		for _, ps := range allStatements(ls.secondaryJSON) {
			if slices.Contains(actionsOf(ps.stmt), "secretsmanager:GetSecretValue") && strings.HasPrefix(ps.where, spec.Name+"Function") {
				grants = append(grants, jsonString(ps.stmt["Resource"]))
			}
		}
		require.NotEmpty(t, grants, "%s reads the registry secret", spec.Name)
		assert.Contains(t, grants[0], ":secret:geoblob/registry-??????", spec.Name)
	}
	assert.Empty(t, resources(ls.secondaryJSON, "AWS::SecretsManager::Secret"), "the secret is created outside CloudFormation")
	raw, err := json.Marshal(ls.secondaryJSON)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "postgres://", "no database URL in the template")
	assert.NotContains(t, string(raw), "SecretString")
}

func TestLocalStackSchedulesAreRules(t *testing.T) {
	s := fixture(t, "localstack")
	want := map[string]string{"BackfillFunction": "rate(1 minute)", "VerifyFunction": "rate(5 minutes)"}
	got := map[string]string{}
	for id, r := range resources(s.secondaryJSON, "AWS::Events::Rule") {
		p := props(r)
		expr, ok := p["ScheduleExpression"].(string)
		if !ok {
			continue
		}
		assert.Nil(t, p["EventBusName"], "%s: scheduled rules run on the default bus", id)
		for _, tg := range asList(p["Targets"]) {
			target := tg.(map[string]any)
			for fn := range want {
				if jsonString(target["Arn"]) == jsonString(getAtt(fn, "Arn")) {
					got[fn] = expr
					assert.Equal(t, map[string]any{"MaximumEventAgeInSeconds": float64(60), "MaximumRetryAttempts": float64(0)}, target["RetryPolicy"], id)
				}
			}
		}
	}
	assert.Equal(t, want, got)
	// EventBridge may invoke them.
	for fn := range want {
		var allowed bool
		for _, r := range resources(s.secondaryJSON, "AWS::Lambda::Permission") {
			p := props(r)
			if p["Principal"] == "events.amazonaws.com" && jsonString(p["FunctionName"]) == jsonString(getAtt(fn, "Arn")) {
				allowed = true
			}
		}
		assert.True(t, allowed, "events.amazonaws.com may invoke %s", fn)
	}
}

// chainTargets follows bucket (EventBridge on) → forwarding rule → secondary
// bus → rule → queue → event source mapping → function for one S3 detail
// type and returns the logical ids of the functions reached, or the first
// missing link.
func chainTargets(t *testing.T, s *synthesized, detailType string) (fns []string, missing string) {
	t.Helper()
	bucket := s.cfg.PrimaryBucket
	// 1. The bucket exists and sends its events to EventBridge.
	var eventBridgeOn bool
	for _, b := range resources(s.primaryJSON, "AWS::S3::Bucket") {
		p := props(b)
		nc, _ := p["NotificationConfiguration"].(map[string]any)
		ebc, _ := nc["EventBridgeConfiguration"].(map[string]any)
		if p["BucketName"] == bucket && ebc["EventBridgeEnabled"] == true {
			eventBridgeOn = true
		}
	}
	if !eventBridgeOn {
		return nil, "bucket " + bucket + " with EventBridge on"
	}

	matches := func(r map[string]any) bool {
		pat, _ := props(r)["EventPattern"].(map[string]any)
		detail, _ := pat["detail"].(map[string]any)
		b, _ := detail["bucket"].(map[string]any)
		return slices.Contains(asList(pat["source"]), any("aws.s3")) &&
			slices.Contains(asList(pat["detail-type"]), any(detailType)) &&
			slices.Contains(asList(b["name"]), any(bucket))
	}
	// 2. A rule on the primary region's default bus forwards them to the secondary bus.
	busName := EventBusName(s.cfg)
	var forwarded bool
	for _, r := range resources(s.primaryJSON, "AWS::Events::Rule") {
		if props(r)["EventBusName"] != nil || !matches(r) {
			continue
		}
		for _, tg := range asList(props(r)["Targets"]) {
			arn := jsonString(tg.(map[string]any)["Arn"])
			if strings.Contains(arn, ":events:"+s.cfg.SecondaryRegion+":") && strings.Contains(arn, ":event-bus/"+busName+`"`) {
				forwarded = true
			}
		}
	}
	if !forwarded {
		return nil, "forwarding rule to bus " + busName
	}

	// 3. The bus exists in the secondary stack.
	var busID string
	for id, b := range resources(s.secondaryJSON, "AWS::Events::EventBus") {
		if props(b)["Name"] == busName {
			busID = id
		}
	}
	if busID == "" {
		return nil, "bus " + busName
	}

	// 4. Rules on that bus send them to queues; 5. mappings hand the queues to functions.
	for _, r := range resources(s.secondaryJSON, "AWS::Events::Rule") {
		if jsonString(props(r)["EventBusName"]) != jsonString(ref(busID)) || !matches(r) {
			continue
		}
		for _, tg := range asList(props(r)["Targets"]) {
			for qid := range resources(s.secondaryJSON, "AWS::SQS::Queue") {
				if jsonString(tg.(map[string]any)["Arn"]) != jsonString(getAtt(qid, "Arn")) {
					continue
				}
				for _, m := range resources(s.secondaryJSON, "AWS::Lambda::EventSourceMapping") {
					p := props(m)
					if jsonString(p["EventSourceArn"]) != jsonString(getAtt(qid, "Arn")) {
						continue
					}
					assert.Equal(t, []any{"ReportBatchItemFailures"}, p["FunctionResponseTypes"])
					ref, _ := p["FunctionName"].(map[string]any)
					id, _ := ref["Ref"].(string)
					// 6. The function exists.
					require.Equal(t, "AWS::Lambda::Function", resource(t, s.secondaryJSON, id)["Type"])
					fns = append(fns, id)
				}
			}
		}
	}
	if len(fns) == 0 {
		return nil, "rule → queue → event source mapping → function"
	}
	sort.Strings(fns)
	return fns, ""
}

func TestEventChainCreatedAndDeleted(t *testing.T) {
	// The LocalStack target, and the AWS target with a created bucket: the
	// same chain, with no custom resource in it.
	for _, name := range []string{"localstack", "minimal"} {
		t.Run(name, func(t *testing.T) {
			s := fixture(t, name)
			for detailType, fn := range map[string]string{"Object Created": "OnCreateFunction", "Object Deleted": "OnDeleteFunction"} {
				fns, missing := chainTargets(t, s, detailType)
				assert.Empty(t, missing, detailType)
				assert.Equal(t, []string{fn}, fns, detailType)
			}
			_, missing := chainTargets(t, s, "Object Restore Completed")
			assert.Equal(t, "forwarding rule to bus geoblob-s3-events", missing, "events nobody handles are not forwarded")
		})
	}
	// The check can fail: an imported bucket turns EventBridge on through a
	// custom resource, not through the bucket's property.
	_, missing := chainTargets(t, fixture(t, "full"), "Object Created")
	assert.Equal(t, "bucket registry-packages with EventBridge on", missing)
}

func TestLocalStackConfig(t *testing.T) {
	c := baseConfig()
	assert.Equal(t, ArchARM64, c.LambdaArchitecture())
	assert.Equal(t, "geoblob/registry", c.SecretName())
	c.Target = TargetLocalStack
	assert.Equal(t, ArchX8664, c.LambdaArchitecture())
	c.Architecture = ArchARM64
	assert.Equal(t, ArchARM64, c.LambdaArchitecture(), "an arm64 host")
	require.NoError(t, c.Validate())

	for key, value := range map[string]string{"target": "gcp", "lambdaArchitecture": "amd64", "registrySecretName": "no spaces allowed"} {
		_, err := ConfigFromContext(mapGetter(map[string]any{
			"primaryRegion": "us-east-1", "secondaryRegion": "us-west-2", "primaryBucket": "registry-packages", key: value,
		}))
		require.ErrorIs(t, err, ErrInvalidConfig, key)
		assert.Contains(t, err.Error(), key)
	}
	c, err := ConfigFromContext(mapGetter(map[string]any{
		"primaryRegion": "us-east-1", "secondaryRegion": "us-west-2", "primaryBucket": "registry-packages",
		"target": "localstack", "registrySecretName": "acme/geoblob-registry",
	}))
	require.NoError(t, err)
	assert.True(t, c.LocalStack())
	assert.Equal(t, "acme/geoblob-registry", c.SecretName())
}
