package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// TestAPICommands runs status -json, list, resync and reverify against the
// operator API over HTTP (-url) on a real registry.
func TestAPICommands(t *testing.T) {
	ctx := context.Background()
	pool := registrytest.NewPool(t)
	registrytest.Seed(t, pool, 40, "npm_package_file", "maven_package_file")
	store := registry.New(pool, registry.Options{})
	h, err := api.New(api.Options{Registry: store, ActionsEnabled: true, DataTypes: []string{"npm_package_file", "maven_package_file"}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Wait() })
	count := func(where string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM blob_registry WHERE "+where).Scan(&n))
		return n
	}

	out, err := cli(t, "status", "-json", "-url", srv.URL)
	require.NoError(t, err, out)
	var st api.StatusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Len(t, st.Types, 2)
	assert.Equal(t, int64(count("data_type = 'npm_package_file' AND deleted_at IS NULL")), st.Types[0].Rows)

	// the table: the oldest unsynced age travels as seconds, the backlog
	// has no rate before the backfill pass has sampled it
	out, err = cli(t, "status", "-url", srv.URL)
	require.NoError(t, err, out)
	require.Greater(t, st.Types[0].OldestUnsyncedAgeSeconds, 1.0, "Seed backdates its rows")
	age := time.Duration(st.Types[0].OldestUnsyncedAgeSeconds * float64(time.Second)).Round(time.Second)
	ages := regexp.QuoteMeta(age.String()) + "|" + regexp.QuoteMeta((age + time.Second).String()) + "|" +
		regexp.QuoteMeta((age + 2*time.Second).String()) // the table is read a moment after the JSON
	backlog, _ := st.Types[0].Backlog()
	assert.Regexp(t, `(?m)^\s*npm_package_file .* (`+ages+`)\s+`+strconv.FormatInt(backlog, 10)+` unknown\s*$`, out)
	assert.Contains(t, out, "backlog: "+strconv.FormatInt(st.Progress.Backlog, 10)+" unknown\n")

	out, err = cli(t, "list", "-url", srv.URL, "-type", "npm_package_file", "-state", "failed", "-limit", "1000")
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Len(t, lines, 1+count("data_type = 'npm_package_file' AND state = 3"), out)
	for _, l := range lines[1:] {
		assert.Contains(t, l, " failed ")
	}
	out, err = cli(t, "list", "-url", srv.URL, "-type", "npm_package_file", "-limit", "5")
	require.NoError(t, err, out)
	assert.Contains(t, out, "more: add -after ")

	var id int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT id FROM blob_registry WHERE data_type = 'maven_package_file' AND state = 3 LIMIT 1").Scan(&id))
	out, err = cli(t, "resync", "-url", srv.URL, itoa(id))
	require.NoError(t, err, out)
	assert.Contains(t, out, "changed (replication pending")

	failed := count("data_type = 'npm_package_file' AND state = 3")
	require.NotZero(t, failed)
	out, err = cli(t, "resync", "-url", srv.URL, "-type", "npm_package_file", "-failed")
	require.NoError(t, err, out)
	assert.Contains(t, out, itoa(int64(failed))+" rows would change")
	assert.Equal(t, failed, count("data_type = 'npm_package_file' AND state = 3"), "a dry run changes nothing")
	out, err = cli(t, "resync", "-url", srv.URL, "-type", "npm_package_file", "-failed", "-yes")
	require.NoError(t, err, out)
	assert.Contains(t, out, "done: "+itoa(int64(failed))+" rows changed")
	assert.Zero(t, count("data_type = 'npm_package_file' AND state = 3"))

	out, err = cli(t, "reverify", "-url", srv.URL, "-type", "maven_package_file", "-verification-state", "failed", "-yes")
	require.NoError(t, err, out)
	assert.Zero(t, count("data_type = 'maven_package_file' AND verification_state = 3"))

	_, err = cli(t, "resync", "-url", srv.URL, "-type", "npm_package_file")
	assert.ErrorContains(t, err, "needs row ids")
	_, err = cli(t, "list", "-url", srv.URL, "-state", "bogus")
	assert.ErrorContains(t, err, "400")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
