package stacks

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/iamcheck"
)

// Proof 1 of least privilege (internal/iamcheck): the S3 calls each function
// made in the end-to-end scenario (internal/iamcheck/testdata/calls.json,
// recorded by the main module's TestScenario) are checked against the
// statements of that function's role in the synthesized template.

var updateIAM = flag.Bool("update-iam", false, "rewrite internal/iamcheck/testdata/policies.json from the synthesized template")

// rolePolicies returns the covered (S3, KMS) Allow statements of every
// function's role in s's secondary template, with resources made symbolic.
func rolePolicies(t *testing.T, s *synthesized) iamcheck.Policies {
	t.Helper()
	tmpl := s.secondaryJSON
	out := iamcheck.Policies{}
	for _, spec := range KnownFunctions() {
		fn := resource(t, tmpl, spec.LogicalID)
		role, ok := props(fn)["Role"].(map[string]any)["Fn::GetAtt"].([]any)
		require.True(t, ok, "%s: role is not a Fn::GetAtt", spec.Name)
		roleRef := jsonString(ref(role[0].(string)))
		var sts []iamcheck.Statement
		for id, pol := range resources(tmpl, "AWS::IAM::Policy") {
			p := props(pol)
			if !slices.ContainsFunc(asList(p["Roles"]), func(r any) bool { return jsonString(r) == roleRef }) {
				continue
			}
			for _, st := range statements(p["PolicyDocument"]) {
				if st["Effect"] != "Allow" {
					continue
				}
				var acts []string
				for _, a := range actionsOf(st) {
					if iamcheck.Covered(a) {
						acts = append(acts, a)
					}
				}
				var res []string
				for _, r := range asList(st["Resource"]) {
					res = append(res, symbolic(tmpl, s.cfg, r))
				}
				if len(acts) == 0 || (!slices.ContainsFunc(acts, func(a string) bool { return strings.HasPrefix(a, "s3:") }) &&
					!slices.ContainsFunc(res, func(r string) bool { return strings.HasPrefix(r, "kms:") })) {
					continue // no S3 action, and KMS only on keys other than the buckets' (not covered)
				}
				sid, _ := st["Sid"].(string)
				if sid == "" {
					sid = id
				}
				sts = append(sts, iamcheck.Statement{Sid: sid, Actions: acts, Resources: res})
			}
		}
		slices.SortFunc(sts, func(a, b iamcheck.Statement) int { return strings.Compare(a.Sid, b.Sid) })
		out[spec.Name] = sts
	}
	return out
}

// provenPolicies are the policies the recorded scenario exercises: the
// "full" deployment's, except backfill's and verify's, which come from the
// "nodispatch" deployment (the scenario's backfill copies and its verify
// checks in process; while they dispatch, TestIAMGrantsPerRole shows
// their roles are those minus the secondary writes, resp. minus every S3
// read, which onCreate and verifyWorker then make).
func provenPolicies(t *testing.T) iamcheck.Policies {
	t.Helper()
	p := rolePolicies(t, fixture(t, "full"))
	nd := rolePolicies(t, fixture(t, "nodispatch"))
	p["backfill"], p["verify"] = nd["backfill"], nd["verify"]
	return p
}

// symbolic names a statement resource: "primary", "primary/*", "secondary",
// "secondary/*", "kms:secondary", "kms:primary"; anything else as JSON.
func symbolic(tmpl map[string]any, c Config, r any) string {
	js := jsonString(r)
	secondaryBucket, secondaryKey := "", ""
	for id := range resources(tmpl, "AWS::S3::Bucket") {
		if strings.HasPrefix(id, "SecondaryBucket") {
			secondaryBucket = id
		}
	}
	for id := range resources(tmpl, "AWS::KMS::Key") {
		if strings.HasPrefix(id, "SecondaryKey") {
			secondaryKey = id
		}
	}
	switch {
	case js == jsonString(getAtt(secondaryBucket, "Arn")):
		return iamcheck.BucketResource(iamcheck.Secondary)
	case js == jsonString(map[string]any{"Fn::Join": []any{"", []any{getAtt(secondaryBucket, "Arn"), "/*"}}}):
		return iamcheck.ObjectResource(iamcheck.Secondary)
	case js == jsonString(getAtt(secondaryKey, "Arn")):
		return iamcheck.KeyResource(iamcheck.Secondary)
	case c.PrimaryKMSKeyARN != "" && js == jsonString(c.PrimaryKMSKeyARN):
		return iamcheck.KeyResource(iamcheck.Primary)
	}
	if bucket, prefix, _ := inventoryLocation(c); bucket != "" {
		switch {
		case strings.HasSuffix(js, `:s3:::`+bucket+`"]]}`) || strings.HasSuffix(js, `:s3:::`+bucket+`"`):
			return iamcheck.BucketResource(iamcheck.Inventory)
		case strings.HasSuffix(js, `:s3:::`+bucket+"/"+prefix+`*"]]}`) || strings.HasSuffix(js, `:s3:::`+bucket+"/"+prefix+`*"`):
			return iamcheck.ObjectResource(iamcheck.Inventory)
		}
	}
	switch {
	case strings.HasSuffix(js, `:s3:::`+c.PrimaryBucket+`"]]}`) || strings.HasSuffix(js, `:s3:::`+c.PrimaryBucket+`"`):
		return iamcheck.BucketResource(iamcheck.Primary)
	case strings.HasSuffix(js, `:s3:::`+c.PrimaryBucket+`/*"]]}`) || strings.HasSuffix(js, `:s3:::`+c.PrimaryBucket+`/*"`):
		return iamcheck.ObjectResource(iamcheck.Primary)
	}
	return js
}

// encryptedBuckets names the buckets encrypted with a customer-managed KMS key.
func encryptedBuckets(c Config) map[string]bool {
	return map[string]bool{iamcheck.Secondary: true, iamcheck.Primary: c.PrimaryKMSKeyARN != ""}
}

// TestIAMPoliciesFixture keeps internal/iamcheck/testdata/policies.json (the
// policies the MinIO enforcement test gives each function's user) equal to
// the synthesized template. After changing a grant run `make iam-fixtures`.
func TestIAMPoliciesFixture(t *testing.T) {
	got := provenPolicies(t)
	if *updateIAM {
		require.NoError(t, iamcheck.WritePolicies(got))
		return
	}
	want, err := iamcheck.ReadPolicies()
	require.NoError(t, err)
	assert.Equal(t, want, got, "internal/iamcheck/testdata/policies.json differs from the synthesized template: run `make iam-fixtures`")
}

// TestIAMRecordedCallsGranted is proof 1: every call each function made in
// the end-to-end scenario is granted to its role on the right resource
// (bucket ARN, object ARN, KMS key), and the role grants no S3 action (nor
// KMS action on a bucket key) that no call needs.
func TestIAMRecordedCallsGranted(t *testing.T) {
	s := fixture(t, "full")
	calls, err := iamcheck.ReadCalls()
	require.NoError(t, err)
	pols := provenPolicies(t)
	for _, c := range calls {
		_, known := pols[c.Function]
		assert.True(t, known, "recorded call of unknown function: %s", c)
	}
	for _, spec := range KnownFunctions() {
		problems := iamcheck.Check(spec.Name, calls, pols[spec.Name], encryptedBuckets(s.cfg))
		assert.Empty(t, problems, "%s:\n%s", spec.Name, strings.Join(problems, "\n"))
	}
	require.NotEmpty(t, iamcheck.CallsOf(calls, "onCreate"))
	assert.Empty(t, pols["migrate"], "migrate touches no bucket")
}

// TestIAMCheckFailsWithOneActionRemoved shows that proof 1 can fail: with any
// single S3 or KMS action removed from any role, the check reports the
// calls that are no longer granted; with one action too many it reports
// the extra grant.
func TestIAMCheckFailsWithOneActionRemoved(t *testing.T) {
	s := fixture(t, "full")
	calls, err := iamcheck.ReadCalls()
	require.NoError(t, err)
	pols := provenPolicies(t)
	enc := encryptedBuckets(s.cfg)
	removed := 0
	for fn, sts := range pols {
		var actions []string
		for _, st := range sts {
			actions = append(actions, st.Actions...)
		}
		slices.Sort(actions)
		for _, a := range slices.Compact(actions) {
			problems := iamcheck.Check(fn, calls, iamcheck.Without(sts, a), enc)
			if assert.NotEmpty(t, problems, "%s without %s must fail the check", fn, a) {
				assert.Contains(t, strings.Join(problems, "\n"), "does not grant "+a, "%s without %s", fn, a)
			}
			removed++
		}
	}
	assert.GreaterOrEqual(t, removed, 10)

	// The defect of issue 9: PutObject with the checksum tag header needs
	// s3:PutObjectTagging although the call is a PutObject.
	problems := iamcheck.Check("onCreate", calls, iamcheck.Without(pols["onCreate"], "s3:PutObjectTagging"), enc)
	assert.Contains(t, strings.Join(problems, "\n"), "onCreate: PutObject(tagging) on secondary: role does not grant s3:PutObjectTagging on secondary/*")

	extra := append(slices.Clone(pols["onCreate"]), iamcheck.Statement{Sid: "Extra", Actions: []string{"s3:DeleteObjectVersion"},
		Resources: []string{iamcheck.ObjectResource(iamcheck.Secondary)}})
	problems = iamcheck.Check("onCreate", calls, extra, enc)
	assert.Equal(t, []string{`onCreate: role grants s3:DeleteObjectVersion on secondary/* (statement "Extra"), which no recorded call needs`}, problems)
}

// TestIAMGrantsPerRole asserts each role's S3 and KMS grants by name, so a
// grant change shows up here as well as in the recorded-calls proof.
func TestIAMGrantsPerRole(t *testing.T) {
	pols := rolePolicies(t, fixture(t, "full"))
	noDispatch := rolePolicies(t, fixture(t, "nodispatch"))
	grantsOf := func(fn string) map[string][]string {
		sts := pols[fn]
		switch fn {
		case "backfill (copying)":
			sts = noDispatch["backfill"]
		case "verify (checking)":
			sts = noDispatch["verify"]
		}
		out := map[string][]string{}
		for _, st := range sts {
			for _, r := range st.Resources {
				out[r] = append(out[r], st.Actions...)
			}
		}
		for r := range out {
			slices.Sort(out[r])
		}
		return out
	}
	primaryRead := map[string][]string{"primary": {"s3:ListBucket"}, "primary/*": {"s3:GetObject"}}
	with := func(m map[string][]string, more map[string][]string) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	writer := map[string][]string{
		"secondary": {"s3:ListBucket"},
		"secondary/*": {"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObjectVersion", "s3:PutObject",
			"s3:PutObjectTagging", "s3:PutObjectVersionTagging"},
		"kms:secondary": {"kms:Decrypt", "kms:GenerateDataKey"},
	}
	assert.Equal(t, with(primaryRead, writer), grantsOf("onCreate"))
	inventory := map[string][]string{"inventory": {"s3:ListBucket"}, "inventory/*": {"s3:GetObject"}}
	assert.Equal(t, with(with(primaryRead, writer), inventory), grantsOf("backfill (copying)"))
	// Dispatching, backfill lists and deletes on the secondary (orphans, lost
	// deletes) but copies nothing: onCreate does.
	assert.Equal(t, with(with(primaryRead, inventory), map[string][]string{
		"secondary": {"s3:ListBucket"}, "secondary/*": {"s3:DeleteObject"},
	}), grantsOf("backfill"))
	assert.Equal(t, with(primaryRead, map[string][]string{"secondary/*": {"s3:DeleteObject"}}), grantsOf("onDelete"))
	verifier := with(primaryRead, map[string][]string{
		"secondary": {"s3:ListBucket"}, "secondary/*": {"s3:GetObject"}, "kms:secondary": {"kms:Decrypt"},
	})
	assert.Equal(t, verifier, grantsOf("verify (checking)"))
	// Dispatching, verify reads nothing: verifyWorker does.
	assert.Empty(t, grantsOf("verify"))
	assert.Equal(t, verifier, grantsOf("verifyWorker"))
	assert.Empty(t, grantsOf("migrate"))
	assert.Equal(t, map[string][]string{
		"primary": {"s3:GetBucketNotification", "s3:ListBucket"}, "primary/*": {"s3:GetObject"},
		"secondary": {"s3:ListBucket"}, "secondary/*": {"s3:GetObject"},
	}, grantsOf("api"), "api: reads only (health probes), writes and deletes nothing")
	for fn := range pols {
		for r, acts := range grantsOf(fn) {
			assert.NotContains(t, acts, "s3:DeleteObjectVersion", "%s may not destroy versions of %s: the lifecycle rule expires them", fn, r)
			if strings.HasPrefix(r, "primary") {
				assert.Subset(t, []string{"s3:GetObject", "s3:ListBucket", "s3:GetBucketNotification"}, acts, "%s: the primary is read-only", fn)
			}
		}
	}
}

// TestBackfillInventoryConfig: the inventory location is validated, reaches
// backfill's environment, and its grants cover the manifest's data folder.
func TestBackfillInventoryConfig(t *testing.T) {
	for in, want := range map[string][2]string{
		"s3://inv-bucket/inventory/registry/":                             {"inv-bucket", "inventory/registry/"},
		"s3://inv-bucket/dest/src/config/2026-11-30T00-00Z/manifest.json": {"inv-bucket", "dest/src/config/"},
		"s3://inv-bucket": {"inv-bucket", ""},
	} {
		c := baseConfig()
		c.BackfillInventory = in
		require.NoError(t, c.Validate(), in)
		b, p, err := inventoryLocation(c)
		require.NoError(t, err)
		assert.Equal(t, want, [2]string{b, p}, in)
	}
	for _, bad := range []string{"inv-bucket/prefix", "s3://Bad_Bucket/x", "s3://inv-bucket/a*"} {
		c := baseConfig()
		c.BackfillInventory = bad
		assert.ErrorContains(t, c.Validate(), "backfillInventory", bad)
	}
	c := baseConfig()
	c.ExtraEnv = map[string]string{"GEOBLOB_BACKFILL_INVENTORY": "s3://x/y/"}
	assert.Error(t, c.Validate(), "the stack sets GEOBLOB_BACKFILL_INVENTORY itself, so the role matches it")
	env := props(resource(t, fixture(t, "full").secondaryJSON, "BackfillFunction"))["Environment"].(map[string]any)["Variables"].(map[string]any)
	assert.Equal(t, "s3://registry-inventory/inventory/registry-packages/", env["GEOBLOB_BACKFILL_INVENTORY"])
}
