package stacks

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statements returns the statements of a policy document.
func statements(doc any) []map[string]any {
	d, _ := doc.(map[string]any)
	var out []map[string]any
	for _, s := range asList(d["Statement"]) {
		if m, ok := s.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// policyStatement is one statement with where it was found.
type policyStatement struct {
	where string
	stmt  map[string]any
}

// allStatements collects every policy statement of a template: IAM policies,
// inline role policies, managed policies, bucket, queue and topic policies and
// KMS key policies.
func allStatements(tmpl map[string]any) []policyStatement {
	var out []policyStatement
	add := func(where string, doc any) {
		for _, s := range statements(doc) {
			out = append(out, policyStatement{where, s})
		}
	}
	res, _ := tmpl["Resources"].(map[string]any)
	for id, r := range res {
		rm, _ := r.(map[string]any)
		p := props(rm)
		switch rm["Type"] {
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy":
			add(id, p["PolicyDocument"])
		case "AWS::IAM::Role":
			for _, ip := range asList(p["Policies"]) {
				add(id, ip.(map[string]any)["PolicyDocument"])
			}
			add(id+" (trust)", p["AssumeRolePolicyDocument"])
		case "AWS::KMS::Key":
			add(id, p["KeyPolicy"])
		}
	}
	return out
}

func actionsOf(s map[string]any) []string {
	var out []string
	for _, a := range asList(s["Action"]) {
		out = append(out, fmt.Sprint(a))
	}
	return out
}

// TestNoWildcardsOnData scans every policy of both stacks: no Allow of "*"
// or "s3:*", no S3 action with a wildcard, and every S3 Allow names one of
// the two buckets (never Resource "*").
func TestNoWildcardsOnData(t *testing.T) {
	for _, name := range []string{"full", "minimal", "localstack"} {
		s := fixture(t, name)
		for stack, tmpl := range map[string]map[string]any{"primary": s.primaryJSON, "secondary": s.secondaryJSON} {
			// Buckets created by the stack are named by their logical id.
			ownBucket := ""
			for id := range resources(tmpl, "AWS::S3::Bucket") {
				ownBucket = id
			}
			sts := allStatements(tmpl)
			require.NotEmpty(t, sts)
			for _, ps := range sts {
				where := name + "/" + stack + "/" + ps.where
				actions := actionsOf(ps.stmt)
				require.NotContains(t, actions, "*", where)
				if ps.stmt["Effect"] != "Allow" {
					continue // the TLS-only Deny of s3:* is wanted
				}
				assert.NotContains(t, actions, "s3:*", where)
				var s3Actions []string
				for _, a := range actions {
					if strings.HasPrefix(a, "s3:") {
						s3Actions = append(s3Actions, a)
						assert.NotContains(t, a, "*", "%s: wildcard S3 action %s", where, a)
					}
				}
				if len(s3Actions) == 0 {
					continue
				}
				for _, r := range asList(ps.stmt["Resource"]) {
					rs := jsonString(r)
					require.NotEqual(t, `"*"`, rs, "%s: S3 actions %v on Resource *", where, s3Actions)
					invBucket, invPrefix, _ := inventoryLocation(s.cfg)
					named := strings.Contains(rs, ":s3:::"+s.cfg.PrimaryBucket+`"`) ||
						(invBucket != "" && (strings.Contains(rs, ":s3:::"+invBucket+`"`) || strings.Contains(rs, ":s3:::"+invBucket+"/"+invPrefix+`*"`))) ||
						strings.Contains(rs, ":s3:::"+s.cfg.PrimaryBucket+`/*"`) ||
						(ownBucket != "" && strings.Contains(rs, `"`+ownBucket+`"`))
					assert.True(t, named, "%s: S3 resource %s is not one of the named buckets", where, rs)
				}
			}
		}
	}
}

// TestPrimaryIsReadOnly checks that no function may write or delete on the
// primary bucket, and each function gets only the secondary access its job needs.
func TestPrimaryIsReadOnly(t *testing.T) {
	s := fixture(t, "full")
	readOnly := []string{"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketNotification"}
	perFunction := map[string][]string{} // function -> actions on the secondary
	for _, ps := range allStatements(s.secondaryJSON) {
		if ps.stmt["Effect"] != "Allow" {
			continue
		}
		res := jsonString(ps.stmt["Resource"])
		fn := ""
		for _, f := range KnownFunctions() {
			if strings.HasPrefix(ps.where, f.Name+"FunctionServiceRole") {
				fn = f.Name
			}
		}
		for _, a := range actionsOf(ps.stmt) {
			if strings.Contains(res, ":s3:::"+s.cfg.PrimaryBucket) {
				assert.Contains(t, readOnly, a, "%s: %s on the primary", ps.where, a)
			}
			if fn != "" && strings.Contains(res, "SecondaryBucket") {
				perFunction[fn] = append(perFunction[fn], a)
			}
		}
	}
	// onCreate deletes (a delete marker) only a write that failed its check;
	// TestIAMGrantsPerRole lists every role's grants.
	assert.Contains(t, perFunction["onCreate"], "s3:PutObject")
	assert.Contains(t, perFunction["onDelete"], "s3:DeleteObject")
	assert.NotContains(t, perFunction["onDelete"], "s3:PutObject")
	assert.NotContains(t, perFunction["verify"], "s3:PutObject")
	assert.NotContains(t, perFunction["verify"], "s3:DeleteObject")
	assert.Empty(t, perFunction["migrate"], "migrate touches no bucket")
	for fn, acts := range perFunction {
		assert.False(t, slices.Contains(acts, "s3:DeleteObjectVersion"), "%s may not destroy versions: the lifecycle rule expires them", fn)
	}
}
