package verify_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/verify"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want verify.RunOptions
		err  bool
	}{
		{in: ``},
		{in: `null`},
		{in: `{}`},
		{in: `{"version":"0","detail-type":"Scheduled Event","source":"aws.scheduler","detail":{}}`},
		{in: `{"mode":"deep","budget":"10m"}`, want: verify.RunOptions{Mode: verify.ModeDeep, Budget: 10 * time.Minute}},
		{in: `{"mode":"FAST"}`, want: verify.RunOptions{Mode: verify.ModeFast}},
		{in: `{"mode":"quick"}`, err: true},
		{in: `{"budget":"-1m"}`, err: true},
		{in: `{"budget":"soon"}`, err: true},
		{in: `[1]`, err: true},
	} {
		got, err := verify.ParseRequest([]byte(tc.in))
		if tc.err {
			assert.ErrorIs(t, err, verify.ErrInvalid, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	o, err := verify.OptionsFromEnv(env(nil), 0)
	require.NoError(t, err)
	assert.Equal(t, verify.ModeDeep, o.Mode, "the default is the safe mode")
	assert.Equal(t, verify.DefaultConcurrency, o.Concurrency)
	assert.Equal(t, verify.DefaultReverifyInterval/10, o.ReverifySpread)
	assert.False(t, o.NoPrimary)

	o, err = verify.OptionsFromEnv(env(map[string]string{
		"GEOBLOB_VERIFY_MODE":            "fast",
		"GEOBLOB_VERIFY_TYPE_MODES":      `{"maven_package_file":"deep"}`,
		"GEOBLOB_VERIFY_CONCURRENCY":     "4",
		"GEOBLOB_VERIFY_BATCH_SIZE":      "8",
		"GEOBLOB_VERIFY_BUDGET":          "2m",
		"GEOBLOB_VERIFY_TIMEOUT":         "20m",
		"GEOBLOB_VERIFY_REVERIFY_SPREAD": "24h",
		"GEOBLOB_VERIFY_PRIMARY":         "false",
	}), 240*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, verify.ModeFast, o.Mode)
	assert.Equal(t, map[string]verify.Mode{"maven_package_file": verify.ModeDeep}, o.TypeModes)
	assert.Equal(t, 4, o.Concurrency)
	assert.Equal(t, 8, o.BatchSize)
	assert.Equal(t, 2*time.Minute, o.Budget)
	assert.Equal(t, 20*time.Minute, o.Timeout)
	assert.Equal(t, 24*time.Hour, o.ReverifySpread)
	assert.Equal(t, 240*time.Hour, o.ReverifyInterval)
	assert.True(t, o.NoPrimary)

	o, err = verify.OptionsFromEnv(env(map[string]string{"GEOBLOB_VERIFY_REVERIFY_SPREAD": "25%"}), 100*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, 25*time.Hour, o.ReverifySpread)

	_, err = verify.OptionsFromEnv(env(map[string]string{
		"GEOBLOB_VERIFY_MODE":            "thorough",
		"GEOBLOB_VERIFY_TYPE_MODES":      `{"npm_package_file":"slow"}`,
		"GEOBLOB_VERIFY_CONCURRENCY":     "0",
		"GEOBLOB_VERIFY_REVERIFY_SPREAD": "200h",
		"GEOBLOB_VERIFY_PRIMARY":         "maybe",
	}), 100*time.Hour)
	require.ErrorIs(t, err, verify.ErrInvalid)
	for _, name := range []string{"GEOBLOB_VERIFY_MODE", "GEOBLOB_VERIFY_TYPE_MODES", "GEOBLOB_VERIFY_CONCURRENCY",
		"GEOBLOB_VERIFY_REVERIFY_SPREAD", "GEOBLOB_VERIFY_PRIMARY"} {
		assert.Contains(t, err.Error(), name)
	}
}

// Deep verification reads each secondary object exactly once, every byte
// once; fast mode on a server without checksums does the same.
func TestDeepReadsEachSecondaryOnce(t *testing.T) {
	t.Parallel()
	proxy := s3test.NewFaultProxy(t, s3test.NewGofakes3(t), nil)
	e := newEnv(t, envOptions{secondaryEndpoint: proxy.Endpoint()})
	sizes := []int{0, 1, 1000, 300_000, 1 << 20}
	var total int64
	for i, n := range sizes {
		e.upload(content(i, n))
		total += int64(n)
	}
	require.Equal(t, len(sizes), e.syncDue())
	gets := proxy.OpCount(s3test.OpGetObject)

	v := e.verifier(verify.Options{NoPrimary: true})
	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(len(sizes)), rep.Secondary.Matched)
	assert.Equal(t, total, rep.Secondary.BytesRead)
	assert.Equal(t, gets+int64(len(sizes)), proxy.OpCount(s3test.OpGetObject), "one GET per object")
}
