package backfill_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// massDeletePolicy allows 5 % of the rows per hour, per type (400 rows
// each: 20) and overall (2,000 rows: 100), and at most 100 deletes.
var massDeletePolicy = registry.BrakePolicy{
	Window: time.Hour, MaxDeletes: 100, MaxFraction: 0.05, MinDeletes: 10,
}

const massObjects = 2000

// massWorld replicates 2,000 objects, then deletes 60 % of them on the
// primary: the first half announced by events, the second half found by a
// backfill pass. It returns the deleted keys.
func massWorld(t *testing.T) (*env, []string) {
	e := newEnv(t, envOptions{brake: massDeletePolicy, concurrency: 16})
	for i := range massObjects {
		e.put(typedKey(i), []byte("v1 "+typedKey(i)))
	}
	rep := e.run(backfill.Request{})
	require.EqualValues(t, massObjects, rep.Sync.Synced)
	e.requireConverged()

	var deleted []string
	for i := range massObjects {
		if i%5 < 3 { // 60 %
			deleted = append(deleted, typedKey(i))
		}
	}
	for _, k := range deleted {
		e.del(e.primaryS3, k)
	}
	// Events for the first half ...
	for i, k := range deleted[:len(deleted)/2] {
		out, err := e.engine.Apply(t.Context(), events.ObjectEvent{
			Kind: events.KindRemoved, EventName: "ObjectRemoved:Delete", Source: events.SourceS3,
			Bucket: primaryBucket, Key: k, Sequencer: fmt.Sprintf("%016X", 1_000_000+i), EventTime: time.Now(),
		})
		require.NoError(t, err, k)
		require.Contains(t, []replication.Outcome{replication.OutcomeDeleted, replication.OutcomeHeld}, out, k)
	}
	// ... and a backfill pass finds the rest.
	rep = e.run(backfill.Request{})
	assert.EqualValues(t, len(deleted)/2, rep.Reconcile.DeletesQueued)
	return e, deleted
}

// onSecondary counts the keys that still have a secondary copy.
func (e *env) onSecondary(keys []string) int {
	objs := s3test.Contents(e.t, e.second3)
	n := 0
	for _, k := range keys {
		if _, ok := objs[k]; ok {
			n++
		}
	}
	return n
}

func TestDeleteBrakeMassDeleteRelease(t *testing.T) {
	t.Parallel()
	e, deleted := massWorld(t)
	ctx := t.Context()

	// The deletes hit three types of 400 rows: each trips its own scope
	// after 20 (5 %), far below the overall budget of 100.
	gone := len(deleted) - e.onSecondary(deleted)
	assert.Equal(t, 3*20, gone, "the brake let more deletes through than its budget")
	st, err := e.reg.BrakeStatus(ctx)
	require.NoError(t, err)
	require.Len(t, st.Tripped, 3)
	for _, sc := range st.Tripped {
		assert.Contains(t, []string{"npm_package_file", "maven_package_file", "nuget_package_file"}, sc.Scope)
		assert.Contains(t, sc.Reason, "more than 20 deletes of "+sc.Scope)
	}
	assert.EqualValues(t, len(deleted)-gone, st.HeldTotal)
	h, err := e.runner().Health(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 3, h.DeleteBrakeTripped, "published as the DeleteBrakeTripped metric")
	assert.EqualValues(t, len(deleted)-gone, h.HeldDeletes)

	// Copies of new and changed objects continue while the brake is tripped.
	e.put(typedKey(5000), []byte("new while tripped"))
	e.put(typedKey(3), []byte("v2 changed while tripped")) // i%5 == 3: not deleted
	rep := e.run(backfill.Request{})
	assert.Zero(t, rep.Sync.Deleted, "held deletes stay held across passes")
	sec := s3test.Contents(t, e.second3)
	assert.Equal(t, "new while tripped", string(sec[typedKey(5000)]))
	assert.Equal(t, "v2 changed while tripped", string(sec[typedKey(3)]))
	assert.Equal(t, len(deleted)-gone, e.onSecondary(deleted))

	// Release one type first, then everything.
	n, err := e.reg.ResolveHeld(ctx, registry.ActionRelease, registry.HoldFilter{Prefix: "npm/"}, "test-operator", true)
	require.NoError(t, err)
	assert.Positive(t, n, "dry run counts")
	released, err := e.reg.ResolveHeld(ctx, registry.ActionRelease, registry.HoldFilter{Prefix: "npm/"}, "test-operator", false)
	require.NoError(t, err)
	assert.Equal(t, n, released)
	rep = e.run(backfill.Request{})
	assert.EqualValues(t, released, rep.Sync.Deleted)
	for _, k := range deleted {
		if strings.HasPrefix(k, "npm/") {
			_, ok := s3test.Contents(t, e.second3)[k]
			require.False(t, ok, "released delete of %s propagated", k)
			break
		}
	}
	st, err = e.reg.BrakeStatus(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, st.Tripped, "a prefix release does not re-arm the brake")

	_, err = e.reg.ResolveHeld(ctx, registry.ActionRelease, registry.HoldFilter{}, "test-operator", false)
	require.NoError(t, err)
	e.run(backfill.Request{})
	assert.Zero(t, e.onSecondary(deleted), "release deletes the rest")
	st, err = e.reg.BrakeStatus(ctx)
	require.NoError(t, err)
	assert.Empty(t, st.Tripped, "releasing everything re-arms the brake")
	assert.Zero(t, st.HeldTotal)
	e.requireConverged()

	audit, err := e.reg.Audit(ctx, 10)
	require.NoError(t, err)
	require.Len(t, audit, 2)
	assert.Equal(t, "delete_brake_release", audit[0].Action)
	assert.Equal(t, "test-operator", audit[0].Actor)
	assert.EqualValues(t, len(deleted)-gone-int(released), audit[0].Rows)
}

func TestDeleteBrakeMassDeleteDiscard(t *testing.T) {
	t.Parallel()
	e, deleted := massWorld(t)
	ctx := t.Context()
	kept := e.onSecondary(deleted)
	require.Equal(t, len(deleted)-3*20, kept)

	n, err := e.reg.ResolveHeld(ctx, registry.ActionDiscard, registry.HoldFilter{}, "test-operator", false)
	require.NoError(t, err)
	assert.EqualValues(t, kept, n)
	st, err := e.reg.BrakeStatus(ctx)
	require.NoError(t, err)
	assert.Empty(t, st.Tripped)
	assert.Zero(t, st.HeldTotal)

	// Two passes change nothing: the secondary keeps the objects, every
	// row is consistent (tombstones synced, live rows synced).
	before := s3test.Contents(t, e.second3)
	for range 2 {
		rep := e.run(backfill.Request{})
		assert.Zero(t, rep.Sync.Claimed+rep.Reconcile.DeletesQueued+rep.Reconcile.Registered)
	}
	assert.Equal(t, before, s3test.Contents(t, e.second3))
	assert.Equal(t, kept, e.onSecondary(deleted))
	for k, r := range e.rows(true) {
		assert.Equal(t, registry.StateSynced, r.State, k)
	}
	held := 0
	for _, k := range deleted {
		r, err := e.reg.Get(ctx, mustType(t, e, k), k)
		require.NoError(t, err)
		assert.True(t, r.Tombstoned(), k)
		if _, ok := before[k]; ok {
			held++
		}
	}
	assert.Equal(t, kept, held)
}

// A primary bucket that is gone (renamed, deleted, or the configuration
// names the wrong one) must never read as "every key is gone".
func TestDeleteBrakePrimaryBucketMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{brake: massDeletePolicy})
	for i := range 20 {
		e.put(typedKey(i), []byte(typedKey(i)))
	}
	e.run(backfill.Request{})
	e.requireConverged()
	before := s3test.Contents(t, e.second3)

	// The configuration now names a bucket that does not exist.
	renamed := blobstore.New(s3test.Client(t.Context(), e.pEndpoint), "renamed-primary", blobstore.Options{})
	eng, err := replication.New(replication.Options{
		Registry: e.reg, Primary: renamed, Secondary: e.secondary, Catalog: e.catalog, Brake: massDeletePolicy,
	})
	require.NoError(t, err)
	out, err := eng.Apply(t.Context(), events.ObjectEvent{
		Kind: events.KindRemoved, EventName: "ObjectRemoved:Delete", Source: events.SourceS3,
		Bucket: "renamed-primary", Key: typedKey(1), Sequencer: "FF", EventTime: time.Now(),
	})
	require.NoError(t, err)
	assert.Equal(t, replication.OutcomeHeld, out)
	o := e.opts
	o.Config = e.cfg
	o.Engine, o.Primary, o.PrimaryBucket = eng, renamed, "renamed-primary"
	r, err := backfill.New(o)
	require.NoError(t, err)
	_, err = r.Run(t.Context(), backfill.Request{})
	assert.Error(t, err, "a pass over a missing bucket fails loudly")

	// The real primary bucket removed (emptied without events, then deleted).
	for k := range before {
		e.del(e.primaryS3, k)
	}
	require.NoError(t, e.primaryS3.Remove(t.Context()))
	for i := 2; i < 20; i++ {
		out, err := e.engine.Apply(t.Context(), events.ObjectEvent{
			Kind: events.KindRemoved, EventName: "ObjectRemoved:Delete", Source: events.SourceS3,
			Bucket: primaryBucket, Key: typedKey(i), Sequencer: "FF", EventTime: time.Now(),
		})
		require.NoError(t, err)
		assert.Equal(t, replication.OutcomeHeld, out, typedKey(i))
	}
	_, err = e.runner().Run(t.Context(), backfill.Request{})
	assert.Error(t, err)

	assert.Equal(t, before, s3test.Contents(t, e.second3), "nothing deleted on the secondary")
	st, err := e.reg.BrakeStatus(context.Background())
	require.NoError(t, err)
	require.Len(t, st.Tripped, 1)
	assert.Contains(t, st.Tripped[0].Reason, "primary bucket missing")
	assert.EqualValues(t, 19, st.HeldTotal)
}

// A missing sentinel object trips the brake before any delete.
func TestDeleteBrakeSentinel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{brake: massDeletePolicy, sentinel: "geoblob-sentinel"})
	e.put("geoblob-sentinel", []byte("keep me"))
	e.put(typedKey(0), []byte("a"))
	e.put(typedKey(1), []byte("b"))
	e.run(backfill.Request{})
	e.del(e.primaryS3, typedKey(0))
	e.run(backfill.Request{})
	assert.Equal(t, 0, e.onSecondary([]string{typedKey(0)}), "with the sentinel present deletes flow")

	e.del(e.primaryS3, "geoblob-sentinel")
	e.del(e.primaryS3, typedKey(1))
	e.run(backfill.Request{})
	assert.Equal(t, 1, e.onSecondary([]string{typedKey(1)}), "sentinel gone: delete held")
	st, err := e.reg.BrakeStatus(t.Context())
	require.NoError(t, err)
	require.Len(t, st.Tripped, 1)
	assert.Contains(t, st.Tripped[0].Reason, "sentinel")
}

// With a grace period a delete waits; a create within it cancels it.
func TestDeleteGrace(t *testing.T) {
	t.Parallel()
	policy := massDeletePolicy
	policy.Grace = time.Hour
	clock := time.Now()
	now := func() time.Time { return clock }
	e := newEnv(t, envOptions{brake: policy, regOpts: registry.Options{Clock: now}})
	e.put(typedKey(0), []byte("a"))
	e.put(typedKey(1), []byte("b"))
	e.run(backfill.Request{})

	e.del(e.primaryS3, typedKey(0))
	e.del(e.primaryS3, typedKey(1))
	e.run(backfill.Request{})
	assert.Equal(t, 2, e.onSecondary([]string{typedKey(0), typedKey(1)}), "deletes wait for the grace period")
	row, err := e.reg.Get(t.Context(), mustType(t, e, typedKey(0)), typedKey(0))
	require.NoError(t, err)
	assert.Equal(t, registry.StateFailed, row.State)
	assert.Contains(t, row.LastSyncFailure, "grace period")

	// typedKey(1) comes back within the grace period.
	e.put(typedKey(1), []byte("b again"))
	clock = clock.Add(30 * time.Minute)
	e.run(backfill.Request{})
	clock = clock.Add(31 * time.Minute)
	e.run(backfill.Request{})
	assert.Equal(t, 0, e.onSecondary([]string{typedKey(0)}), "after the grace period the delete propagates")
	got := s3test.Contents(t, e.second3)[typedKey(1)]
	assert.Equal(t, "b again", string(got), "the create cancelled the delete")
	e.requireConverged()
}
