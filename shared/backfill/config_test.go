package backfill_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	c, err := backfill.ConfigFromEnv(env(nil))
	require.NoError(t, err)
	assert.Equal(t, backfill.DefaultConfig(), c)

	c, err = backfill.ConfigFromEnv(env(map[string]string{
		"GEOBLOB_BACKFILL_BUDGET":            "90s",
		"GEOBLOB_BACKFILL_PHASES":            "sync, reconcile",
		"GEOBLOB_BACKFILL_INVENTORY":         "s3://inv-bucket/inventory/primary/all/",
		"GEOBLOB_BACKFILL_MAX_ATTEMPTS":      "4",
		"GEOBLOB_BACKFILL_SECONDARY_ORPHANS": "report",
		"GEOBLOB_SYNC_DISPATCH_LEASE":        "90s",
	}))
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, c.DispatchLease)
	assert.Equal(t, 90*time.Second, c.Budget)
	assert.Equal(t, []backfill.Phase{backfill.PhaseReconcile, backfill.PhaseSync}, c.Phases, "canonical order")
	assert.Equal(t, &backfill.S3URL{Bucket: "inv-bucket", Key: "inventory/primary/all/"}, c.Inventory)
	assert.Equal(t, 4, c.MaxAttempts)
	assert.Equal(t, backfill.OrphansReport, c.Orphans)

	_, err = backfill.ConfigFromEnv(env(map[string]string{
		"GEOBLOB_BACKFILL_BUDGET":            "soon",
		"GEOBLOB_BACKFILL_PHASES":            "copy",
		"GEOBLOB_BACKFILL_INVENTORY":         "https://x/y",
		"GEOBLOB_BACKFILL_BATCH_SIZE":        "0",
		"GEOBLOB_BACKFILL_SECONDARY_ORPHANS": "purge",
		"GEOBLOB_SYNC_DISPATCH_LEASE":        "-1m",
	}))
	require.ErrorIs(t, err, backfill.ErrInvalidConfig)
	assert.ErrorContains(t, err, "GEOBLOB_SYNC_DISPATCH_LEASE")
	for _, name := range []string{"BUDGET", "PHASES", "INVENTORY", "BATCH_SIZE", "SECONDARY_ORPHANS"} {
		assert.ErrorContains(t, err, "GEOBLOB_BACKFILL_"+name)
	}
}

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		payload string
		want    backfill.Request
		bad     bool
	}{
		"empty":     {payload: ""},
		"null":      {payload: "null"},
		"scheduler": {payload: `{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`},
		"on demand": {payload: `{"phases":["sync","reconcile"],"budget":"10m"}`,
			want: backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile, backfill.PhaseSync}, Budget: "10m"}},
		"scheduler with detail": {payload: `{"detail-type":"Scheduled Event","detail":{"phases":["orphans"],"orphans":"report"}}`,
			want: backfill.Request{Phases: []backfill.Phase{backfill.PhaseOrphans}, Orphans: backfill.OrphansReport}},
		"unknown phase": {payload: `{"phases":["copy"]}`, bad: true},
		"bad orphans":   {payload: `{"orphans":"all"}`, bad: true},
		"not json":      {payload: `phases=sync`, bad: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := backfill.ParseRequest([]byte(tc.payload))
			if tc.bad {
				require.ErrorIs(t, err, backfill.ErrInvalidConfig)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
