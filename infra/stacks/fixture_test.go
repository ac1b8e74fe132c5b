package stacks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/require"
)

// The stacks are synthesized once per test binary (the first synthesis
// starts the jsii runtime and takes most of a minute; later ones take
// seconds) and the templates are shared by the tests, which only read them.

// synthesized is one synthesized app.
type synthesized struct {
	cfg       Config
	stacks    *Stacks
	primary   assertions.Template
	secondary assertions.Template
	// primaryJSON and secondaryJSON are the templates as plain Go values.
	primaryJSON, secondaryJSON map[string]any
	// bootstrapSum is the SHA-256 of the placeholder migrate bootstrap.
	bootstrapSum string
}

var (
	fixtureMu sync.Mutex
	fixtures  = map[string]*synthesized{}
	assetRoot string
)

// TestMain creates the placeholder asset root and removes it afterwards.
func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "geoblob-infra-assets-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// Placeholder bootstrap files: Code_FromAsset only packs the directory
		// (it panics when it is missing), so the tests need no cross-compiled
		// binaries; `make synth` builds the real ones first.
		for _, f := range KnownFunctions() {
			if err := os.MkdirAll(filepath.Join(dir, f.Name), 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if err := os.WriteFile(filepath.Join(dir, f.Name, "bootstrap"), []byte("placeholder "+f.Name+"\n"), 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		assetRoot = dir
		return m.Run()
	}()
	jsii.Close()
	os.Exit(code)
}

// baseConfig is a valid configuration with every function and an imported
// primary bucket.
func baseConfig() Config {
	c := DefaultConfig()
	c.PrimaryRegion = "us-east-1"
	c.SecondaryRegion = "us-west-2"
	c.PrimaryBucket = "registry-packages"
	c.SecondaryBucket = "registry-packages-dr"
	c.DataTypes = []string{"npm_package_file", "maven_package_file"}
	c.AssetRoot = assetRoot
	c.Functions = KnownFunctionNames()
	c.AlarmEmail = "ops@example.com"
	c.ExtraEnv = map[string]string{"GEOBLOB_BACKFILL_BUDGET": "9m"}
	c.BackfillInventory = "s3://registry-inventory/inventory/registry-packages/"
	return c
}

// fixture synthesizes the app for config name once ("full": every function,
// imported bucket; "minimal": only the event functions, demo bucket, and the
// `sam local invoke` placeholders; "localstack": the LocalStack target).
func fixture(t *testing.T, name string) *synthesized {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if s, ok := fixtures[name]; ok {
		return s
	}
	c := baseConfig()
	switch name {
	case "full":
	case "minimal":
		c.Functions = []string{"onCreate", "onDelete", "migrate"}
		c.CreatePrimaryBucket = true
		c.DataTypes = nil
		c.AlarmEmail = ""
		c.LocalInvoke = true
	case "nodispatch":
		// Backfill copies in process (the mode the IAM scenario records).
		c.Dispatch = false
	case "capacity":
		// The cap capacity.md documents: 30 onCreate instances, 25 of them
		// for sync requests, 8 copies each.
		c.Concurrency["onCreate"] = 30
		c.SyncRequestConcurrency = 25
		c.CopyConcurrency = 8
	case "localstack":
		// The LocalStack target with every function; the primary bucket is
		// created (forced by the target).
		c.Target = TargetLocalStack
	default:
		t.Fatalf("unknown fixture %s", name)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	st, err := Build(app, c)
	require.NoError(t, err)
	sum, err := fileSHA256(filepath.Join(c.AssetRoot, "migrate", "bootstrap"))
	require.NoError(t, err)
	s := &synthesized{
		cfg:          c,
		stacks:       st,
		primary:      assertions.Template_FromStack(st.Primary.Stack, nil),
		secondary:    assertions.Template_FromStack(st.Secondary.Stack, nil),
		bootstrapSum: sum,
	}
	s.primaryJSON = toMap(t, s.primary)
	s.secondaryJSON = toMap(t, s.secondary)
	fixtures[name] = s
	return s
}

func toMap(t *testing.T, tmpl assertions.Template) map[string]any {
	t.Helper()
	raw, err := json.Marshal(tmpl.ToJSON())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// check runs a CDK assertion, turning its panic (the jsii error raised by a
// failed match) into a test error so the other assertions still run.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

// resources returns the template's resources of type typ, by logical id.
func resources(tmpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	res, _ := tmpl["Resources"].(map[string]any)
	for id, r := range res {
		rm, _ := r.(map[string]any)
		if rm["Type"] == typ {
			out[id] = rm
		}
	}
	return out
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// resource returns the resource with logical id id.
func resource(t *testing.T, tmpl map[string]any, id string) map[string]any {
	t.Helper()
	res, _ := tmpl["Resources"].(map[string]any)
	r, ok := res[id].(map[string]any)
	require.True(t, ok, "resource %s not in template", id)
	return r
}

// logicalIDOf returns the logical id of the only resource of type typ whose
// id starts with prefix.
func logicalIDOf(t *testing.T, tmpl map[string]any, typ, prefix string) string {
	t.Helper()
	var found []string
	for id := range resources(tmpl, typ) {
		if strings.HasPrefix(id, prefix) {
			found = append(found, id)
		}
	}
	require.Len(t, found, 1, "resources of type %s with id prefix %s", typ, prefix)
	return found[0]
}

// ref and getAtt build intrinsic functions as they appear in templates.
func ref(id string) map[string]any { return map[string]any{"Ref": id} }

func getAtt(id, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{id, attr}}
}

// asList returns v as a list (a single value becomes a one-element list).
func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// jsonString renders v compactly (for matching inside intrinsic functions).
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
