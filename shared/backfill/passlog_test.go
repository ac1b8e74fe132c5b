package backfill_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/registry"
)

// Every pass lands in the pass log with its outcome and report, failed
// passes included (the health check reads it).
func TestRunRecordsPassInPassLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.opts.PassLog = e.reg
	e.put(typedKey(1), []byte("one"))
	rep := e.run(backfill.Request{})
	require.Equal(t, int64(1), rep.Sync.Synced)

	passes, err := e.reg.Passes(t.Context())
	require.NoError(t, err)
	require.Len(t, passes, 1)
	p := passes[0]
	assert.Equal(t, registry.JobBackfill, p.Job)
	assert.True(t, p.OK)
	var got backfill.Report
	require.NoError(t, json.Unmarshal(p.Summary, &got))
	assert.Equal(t, int64(1), got.Sync.Synced, "the report is the summary")

	e.setRules(s3test.FailOp(s3test.OpListObjects, s3test.Fault{Status: 403}), nil)
	_, err = e.runner().Run(t.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
	require.Error(t, err)
	passes, err = e.reg.Passes(t.Context())
	require.NoError(t, err)
	assert.False(t, passes[0].OK, "the failed pass is the last pass")
	assert.NotEmpty(t, passes[0].Error)
	assert.Equal(t, int64(2), passes[0].Passes)
	assert.NotNil(t, passes[0].LastOKAt)
}
