package registrytest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
)

// dispatchLease is the lease of the dispatch tests.
const dispatchLease = 10 * time.Minute

func dueTypes(reqs []registry.DueRequest) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		out[r.DataType]++
	}
	return out
}

func dueKeys(reqs []registry.DueRequest) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.ObjectKey
	}
	return out
}

func (e *env) dispatched(t *testing.T) int64 {
	t.Helper()
	n, err := e.s.CountDispatched(e.ctx, dispatchLease)
	require.NoError(t, err)
	return n
}

// testDueScanFairAndOnce: a dispatch scan shares a batch round-robin across
// types (a type with few due rows leaves its share to the others), oldest
// rows first, never returns a row twice while its lease lives, writes
// nothing to the rows, and counts every leased row as in flight.
func testDueScanFairAndOnce(t *testing.T, e *env) {
	e.createUneven(t)
	before := e.get(t, typeA, "a00")

	scan := e.s.NewDueScan([]string{typeA, typeB, typeC}, dispatchLease, 0)
	first, err := scan.Next(e.ctx, 12)
	require.NoError(t, err)
	perType := dueTypes(first)
	assert.Equal(t, 3, perType[typeB], "the small type gets all its rows")
	assert.Equal(t, 9, perType[typeA]+perType[typeC], "its share goes to the others")
	assert.ElementsMatch(t, []int{4, 5}, []int{perType[typeA], perType[typeC]}, "round-robin")
	for _, r := range first {
		if r.DataType == typeA {
			assert.Contains(t, []string{"a00", "a01", "a02", "a03", "a04"}, r.ObjectKey, "oldest rows first")
			assert.Equal(t, before.Generation, r.Generation)
		}
	}
	assert.EqualValues(t, 12, e.dispatched(t), "leased requests are in flight")
	after := e.get(t, typeA, "a00")
	assert.Equal(t, registry.StatePending, after.State, "dispatch writes no row")
	assert.Equal(t, before.Generation, after.Generation)

	seen := map[string]bool{}
	for _, r := range first {
		seen[r.ObjectKey] = true
	}
	for {
		next, err := scan.Next(e.ctx, 7)
		require.NoError(t, err)
		if len(next) == 0 {
			break
		}
		for _, r := range next {
			assert.False(t, seen[r.ObjectKey], "%s sent twice", r.ObjectKey)
			seen[r.ObjectKey] = true
		}
	}
	assert.Len(t, seen, 73, "every due row sent once")

	// A fresh scan (another pass) sends nothing while the leases live.
	again, err := e.s.NewDueScan(nil, dispatchLease, 0).Next(e.ctx, 100)
	require.NoError(t, err)
	assert.Empty(t, again)
	assert.EqualValues(t, 73, e.dispatched(t))
}

// testDueScanPendingBeforeFailed: pending rows before due failed rows,
// failed rows only once their retry time has passed and while they have
// attempts left, started and synced rows never, and a scan that reached
// the end starts over and finds rows that came due behind its position.
func testDueScanPendingBeforeFailed(t *testing.T, e *env) {
	for _, k := range []string{"f1", "f2"} {
		require.True(t, e.created(t, event(typeA, k, "10")))
		e.failed(t, e.claim(t, typeA, k), "boom", false)
		e.clock.Advance(10 * time.Second)
	}
	// f1 due at t0+16s, f2 at t0+26s; now t0+20s.
	require.True(t, e.created(t, event(typeA, "p1", "10")))
	require.True(t, e.created(t, event(typeA, "s1", "10")))
	e.synced(t, e.claim(t, typeA, "s1"), registry.SyncResult{Size: 1, SHA256: sha1})
	require.True(t, e.created(t, event(typeA, "st", "10")))
	e.claim(t, typeA, "st")

	scan := e.s.NewDueScan([]string{typeA}, dispatchLease, 0)
	got, err := scan.Next(e.ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, []string{"p1"}, dueKeys(got), "pending first")
	got, err = scan.Next(e.ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"f1"}, dueKeys(got), "f2 is not due yet")
	assert.True(t, got[0].Failed)
	got, err = scan.Next(e.ctx, 10)
	require.NoError(t, err)
	assert.Empty(t, got)

	e.clock.Advance(10 * time.Second)
	got, err = scan.Next(e.ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"f2"}, dueKeys(got), "due once retry_at has passed (behind the scan's position)")

	// Leases expired: rows that used up their attempts are not sent.
	e.clock.Advance(dispatchLease + time.Second)
	got, err = e.s.NewDueScan([]string{typeA}, dispatchLease, 1).Next(e.ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"p1"}, dueKeys(got), "f1 and f2 failed once: their one attempt is used up")
	got, err = e.s.NewDueScan([]string{typeA}, dispatchLease, 2).Next(e.ctx, 10)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"f1", "f2"}, dueKeys(got))
}

// testClaimRequested: the worker side of a dispatched request. Of a
// request and its duplicates exactly one claims the row, the lease ends
// with the first, a request for a row that changed since does the row's
// current work, a lost request's row is sent again after the lease, and a
// released lease makes the row due again at once.
func testClaimRequested(t *testing.T, e *env) {
	for _, k := range []string{"k", "changed", "lost", "unsent"} {
		require.True(t, e.created(t, event(typeA, k, "10")))
	}
	scan := e.s.NewDueScan([]string{typeA}, dispatchLease, 0)
	reqs, err := scan.Next(e.ctx, 10)
	require.NoError(t, err)
	require.Len(t, reqs, 4)
	byKey := map[string]registry.DueRequest{}
	for _, r := range reqs {
		byKey[r.ObjectKey] = r
	}

	// duplicates: one claim, the lease ends with it
	c, ok, err := e.s.ClaimRequested(e.ctx, typeA, "k")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Greater(t, c.Generation, byKey["k"].Generation, "the claim is a new generation")
	assert.EqualValues(t, 4, e.dispatched(t), "the lease became a started row")
	_, ok, err = e.s.ClaimRequested(e.ctx, typeA, "k")
	require.NoError(t, err)
	assert.False(t, ok, "a duplicate request gets nothing")
	e.synced(t, c, registry.SyncResult{Size: 1, SHA256: sha1})
	_, ok, err = e.s.ClaimRequested(e.ctx, typeA, "k")
	require.NoError(t, err)
	assert.False(t, ok, "a late duplicate finds the row synced")

	// a row changed after dispatch: the request does its current work
	require.True(t, e.created(t, event(typeA, "changed", "20")))
	c, ok, err = e.s.ClaimRequested(e.ctx, typeA, "changed")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "etag-20", c.ETag, "the claim is of the row as it is now")

	// a request whose send failed: released, due again at once
	require.NoError(t, e.s.ReleaseLeases(e.ctx, []int64{byKey["unsent"].ID}))
	got, err := e.s.NewDueScan([]string{typeA}, dispatchLease, 0).Next(e.ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"unsent"}, dueKeys(got))

	// a lost request: its row is sent again once the lease expired
	e.clock.Advance(dispatchLease + time.Second)
	assert.EqualValues(t, 1, e.dispatched(t), "expired leases are not in flight; the started claim is")
	got, err = e.s.NewDueScan([]string{typeA}, dispatchLease, 0).Next(e.ctx, 10)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"lost", "unsent"}, dueKeys(got))
	n, err := e.s.ExpireLeases(e.ctx, dispatchLease)
	require.NoError(t, err)
	assert.Zero(t, n, "renewed leases are live")
	e.clock.Advance(dispatchLease + time.Second)
	n, err = e.s.ExpireLeases(e.ctx, dispatchLease)
	require.NoError(t, err)
	assert.EqualValues(t, 2, n)

	_, ok, err = e.s.ClaimRequested(e.ctx, typeA, "missing")
	require.NoError(t, err)
	assert.False(t, ok)
}
