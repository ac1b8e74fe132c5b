package stacks

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/geoblob/geoblob/shared/config"
)

// TestFunctionEnvironmentIsInTheReference: every GEOBLOB_* variable a
// target sets on a function is one of the configuration reference
// (config.Reference, which the functions read and the README documents), so
// the stacks cannot wire a variable nothing reads.
func TestFunctionEnvironmentIsInTheReference(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, v := range config.Reference {
		known[v.Name] = true
	}
	for _, name := range []string{"full", "localstack"} {
		s := fixture(t, name)
		seen := 0
		for id, fn := range resources(s.secondaryJSON, "AWS::Lambda::Function") {
			env, _ := props(fn)["Environment"].(map[string]any)
			vars, _ := env["Variables"].(map[string]any)
			for k := range vars {
				if strings.HasPrefix(k, "GEOBLOB_") {
					seen++
					assert.True(t, known[k], "%s: %s sets %s, which is not in config.Reference", name, id, k)
				}
			}
		}
		assert.Greater(t, seen, 20, "%s: the functions' environments must be seen", name)
	}
}
