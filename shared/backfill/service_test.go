package backfill_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/registry"
)

// A bulk resync started through the API whose runner stopped (in Lambda:
// the api function's invocation ended) is finished by the next scheduled
// backfill pass, and the pass then copies the resynced rows again.
func TestScheduledPassFinishesStoppedBulkOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for i := range 5 {
		e.put(typedKey(i), []byte("bytes"))
	}
	require.Equal(t, int64(5), e.run(backfill.Request{}).Sync.Synced)

	op, err := e.reg.StartBulk(t.Context(), registry.ActionResync, registry.Filter{}, "ops@example")
	require.NoError(t, err)
	require.Equal(t, int64(5), op.Planned)
	require.Equal(t, registry.BulkRunning, op.State, "started, never run")

	svc := &backfill.Service{Registry: e.reg, Logger: slog.New(slog.DiscardHandler), Runner: e.runner(), MetricsOut: io.Discard}
	rep, err := svc.Handle(t.Context(), nil)
	require.NoError(t, err)
	done, err := e.reg.BulkOperation(t.Context(), op.ID)
	require.NoError(t, err)
	assert.Equal(t, registry.BulkDone, done.State)
	assert.Equal(t, int64(5), done.Changed)
	assert.Equal(t, int64(5), rep.Sync.Synced, "the same pass copies the resynced rows")
	e.requireConverged()

	// the pass sampled every type's backlog (nothing waits after it) for
	// the status's drain rate and ETA
	base, err := e.reg.ProgressBaselines(t.Context(), registry.ProgressWindow)
	require.NoError(t, err)
	require.NotEmpty(t, base)
	for typ, b := range base {
		assert.Zero(t, b.Backlog, "type %s", typ)
	}
}
