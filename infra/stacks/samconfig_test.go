package stacks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/events"
)

// repoRoot is the repository root, seen from infra/stacks.
const repoRoot = "../.."

// samTemplate is where `make synth-sam` writes the secondary template.
const samTemplate = "infra/cdk.out.sam/" + SecondaryStackID + ".template.json"

func loadSAMConfig(t *testing.T) (float64, map[string]map[string]map[string]any) {
	t.Helper()
	var raw map[string]any
	_, err := toml.DecodeFile(filepath.Join(repoRoot, "samconfig.toml"), &raw)
	require.NoError(t, err, "samconfig.toml is valid TOML")
	version, ok := raw["version"].(float64)
	require.True(t, ok, "samconfig.toml has a numeric version")
	envs := map[string]map[string]map[string]any{}
	for name, v := range raw {
		if name == "version" {
			continue
		}
		env, ok := v.(map[string]any)
		require.True(t, ok, "config env %s is a table", name)
		envs[name] = map[string]map[string]any{}
		for cmd, c := range env {
			params, ok := c.(map[string]any)["parameters"].(map[string]any)
			require.True(t, ok, "%s.%s has parameters", name, cmd)
			envs[name][cmd] = params
		}
	}
	return version, envs
}

// TestSAMConfig checks samconfig.toml: valid TOML in SAM's layout, one
// config env per function with the synthesized template, the env-vars file
// and an existing sample event.
func TestSAMConfig(t *testing.T) {
	t.Parallel()
	version, envs := loadSAMConfig(t)
	assert.InDelta(t, 0.1, version, 0)
	assert.Equal(t, SecondaryStackID, envs["default"]["global"]["stack_name"])
	for _, f := range KnownFunctions() {
		t.Run(f.Name, func(t *testing.T) {
			params, ok := envs[f.Name]["local_invoke"]
			require.True(t, ok, "config env [%s.local_invoke.parameters]", f.Name)
			assert.Equal(t, samTemplate, params["template_file"])
			assert.Equal(t, "testdata/sam/env.json", params["env_vars"])
			event, ok := params["event"].(string)
			require.True(t, ok, "event file")
			_, err := os.Stat(filepath.Join(repoRoot, event))
			require.NoError(t, err)
		})
	}
}

// TestSAMEvents checks that the sample events are what AWS sends and what
// geoblob's own parser accepts.
func TestSAMEvents(t *testing.T) {
	t.Parallel()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "sam", name))
		require.NoError(t, err)
		return b
	}
	for name, want := range map[string]events.Kind{"onCreate-sqs.json": events.KindCreated, "onDelete-sqs.json": events.KindRemoved} {
		payload := read(name)
		var sqs lambdaevents.SQSEvent
		require.NoError(t, json.Unmarshal(payload, &sqs), name)
		require.NotEmpty(t, sqs.Records, name)
		batch, err := events.Parse(payload)
		require.NoError(t, err, name)
		assert.True(t, batch.FromSQS, name)
		require.Len(t, batch.Messages, len(sqs.Records), name)
		for _, m := range batch.Messages {
			require.NoError(t, m.Err, name)
			require.Len(t, m.Events, 1, name)
			assert.Equal(t, want, m.Events[0].Kind, name)
			assert.Equal(t, "geoblob-demo-registry", m.Events[0].Bucket, name)
		}
	}
	for _, task := range []string{"backfill", "verify"} {
		var ev lambdaevents.EventBridgeEvent
		require.NoError(t, json.Unmarshal(read(task+"-schedule.json"), &ev))
		assert.Equal(t, "Scheduled Event", ev.DetailType)
		assert.Equal(t, "aws.scheduler", ev.Source)
		assert.JSONEq(t, `{"task":"`+task+`"}`, string(ev.Detail))
	}
	var cr map[string]any
	require.NoError(t, json.Unmarshal(read("migrate-create.json"), &cr))
	assert.Equal(t, "Create", cr["RequestType"])
	assert.Equal(t, "Custom::GeoblobMigrations", cr["ResourceType"])

	// The environment overrides form a valid function configuration.
	var env map[string]map[string]string
	require.NoError(t, json.Unmarshal(read("env.json"), &env))
	cfg, err := config.FromEnv(func(k string) string { return env["Parameters"][k] })
	require.NoError(t, err)
	assert.True(t, cfg.PathStyle)
	assert.NotEmpty(t, cfg.DatabaseURL)
}
