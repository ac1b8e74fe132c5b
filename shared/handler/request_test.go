package handler_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	rt "github.com/geoblob/geoblob/shared/replication/replicationtest"
)

func TestSyncRequestFixtureFailsOnlyMalformedMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{})
	failed := h.sqs(t, rawFixture(t, "sqs-sync-requests.json"))
	// The rows do not exist: well-formed requests are done (nothing to
	// do); the messages with an unusable request or an unknown version
	// are reported for redelivery (and, after maxReceiveCount, the DLQ).
	assert.ElementsMatch(t, []string{"5b0f6a3e-0c3c-4f56-9f0e-1d2a3b4c5d03", "5b0f6a3e-0c3c-4f56-9f0e-1d2a3b4c5d04"}, failed)
	assert.Zero(t, h.env.Engine.Stats().Transfers)
}

func TestSyncRequestsCopyDispatchedRowsOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt.EnvOptions{Concurrency: 3})
	ctx := context.Background()
	keys := []string{
		"maven/com/example/app/1.0.0/app-1.0.0.jar",
		"npm/left-pad/-/left-pad-1.3.0.tgz",
		"pypi/requests/2.32.3/requests-2.32.3.tar.gz",
	}
	bodies := map[string][]byte{}
	for _, k := range keys {
		bodies[k] = rt.Content(k, 1000+len(k))
		h.env.PutPrimary(t, k, bodies[k])
		typ, ok := h.env.Catalog.Match(k)
		require.True(t, ok)
		_, err := h.env.Registry.Register(ctx, registry.ObjectEvent{DataType: typ.Name, Key: k, Size: 1})
		require.NoError(t, err)
	}
	claims, err := h.env.Registry.ClaimDue(ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, len(keys))
	var reqs []events.SyncRequest
	for _, c := range claims {
		reqs = append(reqs, events.SyncRequest{DataType: c.DataType, Key: c.ObjectKey, Generation: c.Generation})
	}
	body, err := events.EncodeSyncRequests(reqs)
	require.NoError(t, err)

	assert.Empty(t, h.sqs(t, sqsOf(t, "m1", body)))
	// The same message delivered again (SQS is at-least-once): no copies.
	assert.Empty(t, h.sqs(t, sqsOf(t, "m1", body)))
	for _, k := range keys {
		h.assertSynced(t, k, bodies[k])
	}
	st := h.env.Engine.Stats()
	assert.EqualValues(t, len(keys), st.Transfers, "one copy per row, none for the duplicate")
	assert.LessOrEqual(t, st.Peak, int64(3))
}
