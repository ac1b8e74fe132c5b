package stacks

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretRefs returns the logical ids a value refers to (Ref), sorted.
func secretRefs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if id, ok := x["Ref"].(string); ok {
			out = append(out, id)
		}
		for _, e := range x {
			out = append(out, secretRefs(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, secretRefs(e)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// secretKind names the secret a logical id belongs to: "owner" (the Aurora
// master user, RegistrySecret...) or "runtime" (RuntimeSecret...).
func secretKind(id string) string {
	switch {
	case strings.HasPrefix(id, "RuntimeSecret"):
		return "runtime"
	case strings.HasPrefix(id, "RegistrySecret"):
		return "owner"
	}
	return id
}

// TestDatabaseRolesPerFunction: migrate connects as the owner and reads the
// runtime secret (it sets the runtime login's password from it); every
// other function connects with, and may read, the runtime secret only.
func TestDatabaseRolesPerFunction(t *testing.T) {
	s := fixture(t, "full")
	for _, spec := range KnownFunctions() {
		p := props(resource(t, s.secondaryJSON, spec.LogicalID))
		vars := p["Environment"].(map[string]any)["Variables"].(map[string]any)
		var readable []string
		for _, ps := range allStatements(s.secondaryJSON) {
			if strings.HasPrefix(ps.where, spec.Name+"Function") && slices.Contains(actionsOf(ps.stmt), "secretsmanager:GetSecretValue") {
				for _, id := range secretRefs(ps.stmt["Resource"]) {
					readable = append(readable, secretKind(id))
				}
			}
		}
		slices.Sort(readable)
		connects := secretRefs(vars["GEOBLOB_DATABASE_SECRET_ARN"])
		require.Len(t, connects, 1, spec.Name)
		if spec.Name == "migrate" {
			assert.Equal(t, "owner", secretKind(connects[0]), "migrate connects as the owner")
			runtime := secretRefs(vars["GEOBLOB_DATABASE_RUNTIME_SECRET_ARN"])
			require.Len(t, runtime, 1)
			assert.Equal(t, "runtime", secretKind(runtime[0]))
			assert.Equal(t, []string{"owner", "runtime"}, readable, "migrate reads both secrets")
			continue
		}
		assert.Equal(t, "runtime", secretKind(connects[0]), "%s connects as the runtime login", spec.Name)
		assert.NotContains(t, vars, "GEOBLOB_DATABASE_RUNTIME_SECRET_ARN", spec.Name)
		assert.Equal(t, []string{"runtime"}, readable, "%s reads only the runtime secret", spec.Name)
	}
}

// TestProxyAndRotation: the proxy knows both users (one secret each) and
// both secrets rotate on a schedule; the runtime secret's first rotation
// waits for the migrations that create its login.
func TestProxyAndRotation(t *testing.T) {
	s := fixture(t, "full")
	for _, proxy := range resources(s.secondaryJSON, "AWS::RDS::DBProxy") {
		var kinds []string
		for _, a := range asList(props(proxy)["Auth"]) {
			am := a.(map[string]any)
			assert.Equal(t, "SECRETS", am["AuthScheme"])
			for _, id := range secretRefs(am["SecretArn"]) {
				kinds = append(kinds, secretKind(id))
			}
		}
		slices.Sort(kinds)
		assert.Equal(t, []string{"owner", "runtime"}, kinds)
	}
	schedules := resources(s.secondaryJSON, "AWS::SecretsManager::RotationSchedule")
	require.Len(t, schedules, 2)
	var rotated []string
	migrations := ""
	for id := range resources(s.secondaryJSON, "Custom::GeoblobMigrations") {
		migrations = id
	}
	require.NotEmpty(t, migrations)
	for _, rs := range schedules {
		p := props(rs)
		ids := secretRefs(p["SecretId"])
		require.Len(t, ids, 1)
		kind := secretKind(ids[0])
		rotated = append(rotated, kind)
		assert.Equal(t, "PostgreSQLSingleUser", p["HostedRotationLambda"].(map[string]any)["RotationType"])
		assert.EqualValues(t, "rate(30 days)", p["RotationRules"].(map[string]any)["ScheduleExpression"])
		if kind == "runtime" {
			assert.Contains(t, asList(rs["DependsOn"]), migrations, "first rotation after migrate made the login")
		}
	}
	slices.Sort(rotated)
	assert.Equal(t, []string{"owner", "runtime"}, rotated)

	// The runtime secret names the runtime login and is kept with the data.
	for id, sec := range resources(s.secondaryJSON, "AWS::SecretsManager::Secret") {
		if secretKind(id) != "runtime" {
			continue
		}
		assert.Contains(t, jsonString(props(sec)["GenerateSecretString"]), RuntimeDatabaseUser)
		assert.Equal(t, "Retain", sec["DeletionPolicy"])
	}
}
