package app_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFunctionsRefuseBadConfiguration builds every function and starts it
// with no configuration: each must exit with code 2 before contacting
// anything, naming the variables it needs.
func TestFunctionsRefuseBadConfiguration(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("../../functions/*/main.go")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, main := range dirs {
		dir := filepath.Dir(main)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(t.TempDir(), "bootstrap")
			build := exec.Command("go", "build", "-o", bin, "./"+dir)
			out, err := build.CombinedOutput()
			require.NoError(t, err, "%s", out)

			var stderr bytes.Buffer
			run := exec.Command(bin)
			run.Env = []string{"PATH=" + os.Getenv("PATH")}
			run.Stderr = &stderr
			err = run.Run()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "the function must fail, got %v", err)
			assert.Equal(t, 2, exit.ExitCode())
			for _, name := range []string{"GEOBLOB_DATABASE_URL", "GEOBLOB_PRIMARY_BUCKET", "GEOBLOB_SECONDARY_BUCKET"} {
				assert.Contains(t, stderr.String(), name)
			}
		})
	}
}
