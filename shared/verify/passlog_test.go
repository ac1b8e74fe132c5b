package verify_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// Every pass lands in the pass log with its report (the health check reads
// when verification last ran).
func TestRunRecordsPassInPassLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.uploadSynced([]byte("hello"))
	start := e.clock.Now()
	v := e.verifier(verify.Options{PassLog: e.reg})
	rep := e.run(v, verify.RunOptions{})
	require.Equal(t, int64(1), rep.Secondary.Matched)

	passes, err := e.reg.Passes(e.ctx)
	require.NoError(t, err)
	require.Len(t, passes, 1)
	p := passes[0]
	assert.Equal(t, registry.JobVerify, p.Job)
	assert.True(t, p.OK)
	assert.True(t, p.StartedAt.Equal(start.Truncate(time.Microsecond)), "the pass's clock is recorded")
	var got verify.Report
	require.NoError(t, json.Unmarshal(p.Summary, &got))
	assert.Equal(t, int64(1), got.Secondary.Matched)
}
