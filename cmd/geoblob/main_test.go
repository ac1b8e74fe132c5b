package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/api"
)

// asMain makes a copy of this test binary behave as the geoblob command, so
// the event daemon that `up` starts (a copy of os.Executable) is real.
const asMain = "GEOBLOB_CLI_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		return
	}
	pgtest.Main(m)
}

func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestCommands drives the CLI as a user does: up (twice), demo, cp, rm,
// status, down, with the event daemon as a real background process.
func TestCommands(t *testing.T) {
	_, err := minioproc.FindBinary()
	require.NoError(t, err, "needs a MinIO binary: run `make tools` (or set GEOBLOB_MINIO_BIN)")
	t.Setenv(asMain, "1")
	dir, err := os.MkdirTemp("", "geoblob-cli-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	free, err := devstack.FreeSettings(dir)
	require.NoError(t, err)
	p := free.Ports
	flags := []string{"-dir", dir,
		"-pg-port", strconv.Itoa(p.Postgres), "-primary-port", strconv.Itoa(p.Primary),
		"-secondary-port", strconv.Itoa(p.Secondary), "-events-port", strconv.Itoa(p.Events),
		"-console-port", strconv.Itoa(p.Console)}
	t.Cleanup(func() {
		out, err := cli(t, "down", "-dir", dir)
		if err != nil {
			t.Logf("down: %v\n%s", err, out)
		}
	})

	out, err := cli(t, append([]string{"up", "-first-run", "1s"}, flags...)...)
	require.NoError(t, err, out)
	assert.Contains(t, out, "started")
	out, err = cli(t, "up", "-dir", dir)
	require.NoError(t, err, out)
	assert.Equal(t, 4, strings.Count(out, "already running"), out)
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	require.NoError(t, err)
	assert.Contains(t, string(env), fmt.Sprintf("export GEOBLOB_PRIMARY_ENDPOINT=http://127.0.0.1:%d", p.Primary))

	out, err = cli(t, "demo", "-dir", dir, "-extra", "1", "-big-mib", "17", "-timeout", "2m")
	require.NoError(t, err, out)
	assert.Contains(t, out, "primary and secondary are identical")
	assert.True(t, strings.HasSuffix(strings.TrimSpace(out), fmt.Sprintf("Operator console: http://127.0.0.1:%d/", p.Console)),
		"the demo ends with the console URL")
	assert.Contains(t, out, "every file replicated and verified: VERIFIED == FILES for every data type")
	assert.Contains(t, out, "uploaded generic/before-events/1.0.0/before-events-a.bin")
	assertAllVerified(t, out)

	// The files uploaded without events were replicated by backfill.
	secondary := free.Bucket(devstack.Secondary)
	for _, key := range []string{"generic/before-events/1.0.0/before-events-a.bin", "generic/before-events/1.0.0/before-events-b.bin"} {
		ok, err := secondary.Exists(t.Context(), key)
		require.NoError(t, err)
		assert.True(t, ok, "%s backfilled", key)
	}

	// By hand: cp then rm, the secondary follows.
	file := filepath.Join(dir, "by-hand.jar")
	require.NoError(t, os.WriteFile(file, []byte("by hand"), 0o644))
	key := "maven/com/example/hand/1.0.0/hand-1.0.0.jar"
	out, err = cli(t, "cp", "-dir", dir, file, key)
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		ok, err := secondary.Exists(t.Context(), key)
		return err == nil && ok
	}, 30*time.Second, 100*time.Millisecond, "cp did not replicate")
	out, err = cli(t, "rm", "-dir", dir, key)
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		ok, err := secondary.Exists(t.Context(), key)
		return err == nil && !ok
	}, 30*time.Second, 100*time.Millisecond, "rm did not replicate")

	out, err = cli(t, "status", "-dir", dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "maven_package_file")
	assert.Contains(t, out, "TOTAL")
	assert.Contains(t, out, "0 dead letters")
	assert.Contains(t, out, "backlog: 0 idle\n", "everything uploaded is replicated")

	// The daemon serves the operator console; status -json reads the same
	// API in-process.
	consoleURL := fmt.Sprintf("http://127.0.0.1:%d/", p.Console)
	resp, err := http.Get(consoleURL)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(page), `data-type="maven_package_file"`)
	// ... and the registry's Prometheus gauges next to it
	resp, err = http.Get(consoleURL + "metrics")
	require.NoError(t, err)
	page, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Regexp(t, `(?m)^geoblob_registry_rows\{data_type="maven_package_file"\} [1-9]`, string(page))
	out, err = cli(t, "status", "-json", "-dir", dir)
	require.NoError(t, err, out)
	var st api.StatusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.NotEmpty(t, st.Types)
	out, err = cli(t, "status", "-url", consoleURL, "-dir", dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "maven_package_file")

	// The scheduled passes run in the daemon; the commands run one on demand.
	out, err = cli(t, "backfill", "-dir", dir, "-progress=false")
	require.NoError(t, err, out)
	assert.Contains(t, out, "reconcile")
	out, err = cli(t, "verify", "-dir", dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "verification:")
	log, err := os.ReadFile(filepath.Join(dir, "events.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "scheduled backfill pass", "the daemon runs the backfill schedule")
	assert.Contains(t, string(log), "scheduled verify pass", "the daemon runs the verify schedule")

	out, err = cli(t, "down", "-dir", dir)
	require.NoError(t, err, out)
	assert.Equal(t, 4, strings.Count(out, "stopped ("), out)
	out, err = cli(t, "status", "-dir", dir)
	require.Error(t, err, out)
}

// assertAllVerified checks the demo's registry table: VERIFIED == FILES on
// every data type row and on TOTAL.
func assertAllVerified(t *testing.T, out string) {
	t.Helper()
	i := strings.Index(out, "registry (per data type)")
	require.GreaterOrEqual(t, i, 0, out)
	rows := 0
	for _, line := range strings.Split(out[i:], "\n")[2:] {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, "events:") {
			break
		}
		if len(f) < 8 || strings.HasPrefix(f[0], "-") {
			continue
		}
		assert.Equal(t, f[1], f[5], "FILES vs VERIFIED in %q", line)
		rows++
	}
	assert.Greater(t, rows, 3, out)
}

func TestCutDirArg(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		dir  string
		rest []string
	}{
		{[]string{"-until-quiet"}, "def", []string{"-until-quiet"}},
		{[]string{"-dir", "/x", "-budget", "1m"}, "/x", []string{"-budget", "1m"}},
		{[]string{"--dir=/y", "-v"}, "/y", []string{"-v"}},
		{[]string{"-v", "-dir=/z"}, "/z", []string{"-v"}},
	} {
		dir, rest := cutDirArg(tc.args, "def")
		assert.Equal(t, tc.dir, dir, tc.args)
		assert.Equal(t, tc.rest, rest, tc.args)
	}
}
