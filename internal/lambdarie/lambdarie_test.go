package lambdarie_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/lambdarie"
)

type probeResponse struct {
	Value        string `json:"value"`
	Present      bool   `json:"present"`
	PID          int    `json:"pid"`
	FunctionName string `json:"function_name"`
}

// startProbe builds testdata/probe as a Lambda bootstrap (the flags of
// `make lambdas`, host architecture) and starts it under the emulator.
func startProbe(t *testing.T, timeout time.Duration) *lambdarie.Function {
	t.Helper()
	emulator, err := lambdarie.FindBinary()
	if err != nil {
		t.Fatalf("%v: these tests run the real emulator", err)
	}
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bootstrap, "./testdata/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Setenv("GEOBLOB_CALLER_ONLY", "leak")
	f, err := lambdarie.Start(t.Context(), lambdarie.Options{
		Emulator: emulator, Bootstrap: bootstrap, Name: "probe", Timeout: timeout,
		Env: []string{"GEOBLOB_PRIMARY_BUCKET=registry"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// gone reports whether pid no longer runs (exited, or a zombie waiting to be reaped).
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(stat), ") Z ")
}

func invoke(t *testing.T, f *lambdarie.Function, payload string) (probeResponse, error) {
	t.Helper()
	body, err := f.Invoke(t.Context(), []byte(payload))
	var r probeResponse
	if err == nil {
		require.NoError(t, json.Unmarshal(body, &r), "%s", body)
	}
	return r, err
}

func TestFunctionSeesOnlyItsEnvironment(t *testing.T) {
	f := startProbe(t, 10*time.Second)
	r, err := invoke(t, f, `{"env":"GEOBLOB_PRIMARY_BUCKET"}`)
	require.NoError(t, err)
	assert.Equal(t, "registry", r.Value)
	assert.Equal(t, "probe", r.FunctionName)
	assert.NotEqual(t, os.Getpid(), r.PID, "a separate process")
	r, err = invoke(t, f, `{"env":"GEOBLOB_CALLER_ONLY"}`)
	require.NoError(t, err)
	assert.False(t, r.Present, "the caller's environment does not reach the function")
	again, err := invoke(t, f, `{}`)
	require.NoError(t, err)
	assert.Equal(t, r.PID, again.PID, "a warm function process serves the next invocation")
}

func TestHandlerErrorCrashAndTimeout(t *testing.T) {
	f := startProbe(t, 2*time.Second)
	warm, err := invoke(t, f, `{}`)
	require.NoError(t, err)

	_, err = invoke(t, f, `{"do":"fail"}`)
	require.ErrorIs(t, err, lambdarie.ErrFunction)
	assert.Contains(t, err.Error(), "asked to fail")

	_, err = invoke(t, f, `{"do":"exit"}`)
	require.ErrorIs(t, err, lambdarie.ErrRuntime)
	cold, err := invoke(t, f, `{}`)
	require.NoError(t, err, "the emulator starts a new function process")
	assert.NotEqual(t, warm.PID, cold.PID)

	_, err = invoke(t, f, `{"do":"hang"}`)
	require.ErrorIs(t, err, lambdarie.ErrRuntime)
	assert.Contains(t, err.Error(), "timed out")
	_, err = invoke(t, f, `{}`)
	require.NoError(t, err)
}

func TestKillMidInvocation(t *testing.T) {
	f := startProbe(t, 30*time.Second)
	r, err := invoke(t, f, `{}`)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := f.Invoke(t.Context(), []byte(`{"do":"hang"}`))
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, f.Kill())
	require.ErrorIs(t, <-errc, lambdarie.ErrRuntime)
	assert.Eventually(t, func() bool { return gone(r.PID) }, 5*time.Second, 50*time.Millisecond,
		"the function process died with its emulator")

	again, err := invoke(t, f, `{}`)
	require.NoError(t, err, "a new emulator serves the next invocation")
	assert.NotEqual(t, r.PID, again.PID)
}
