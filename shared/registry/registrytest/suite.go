package registrytest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
)

// NewStoreFunc returns a Store on a fresh, empty, migrated database that
// uses opts (the suite injects its clock and retry policy).
type NewStoreFunc func(t *testing.T, opts registry.Options) *registry.Store

// Run runs the registry conformance suite: every state transition, event
// ordering by sequencer, compare-and-set, concurrent claims, fairness,
// backoff, failure truncation, stuck-row recovery and stats. Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, newStore NewStoreFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"CreateClaimSyncLifecycle", testLifecycle},
		{"FailureThenRetry", testFailureThenRetry},
		{"Resync", testResync},
		{"NotFound", testNotFound},
		{"TombstoneAndPropagation", testTombstone},
		{"RemoveUnknownKeyThenLateCreate", testRemoveUnknownThenLateCreate},
		{"StaleAndDuplicateCreates", testStaleCreates},
		{"LateDeleteNeverRemovesNewerObject", testLateDelete},
		{"SequencerNormalization", testSequencerNormalization},
		{"EmptySequencerAlwaysApplies", testEmptySequencer},
		{"ContentChangeClearsChecksum", testContentChange},
		{"EventDuringClaimLosesCAS", testEventDuringClaim},
		{"DeleteDuringClaimLosesCAS", testDeleteDuringClaim},
		{"ConcurrentClaimKeyOneWinner", testConcurrentClaimKey},
		{"ConcurrentClaimDueNoDuplicates", testConcurrentClaimDue},
		{"ClaimDueFairAcrossTypes", testClaimDueFairness},
		{"ClaimDuePendingBeforeFailedAndNotYetDue", testClaimDuePriority},
		{"ClaimDueDataTypeFilter", testClaimDueFilter},
		{"BackoffGrowsAndCaps", testBackoff},
		{"BackoffMissingOnPrimaryCap", testBackoffMissing},
		{"LongFailureTruncated", testLongFailure},
		{"RecoverStuck", testRecoverStuck},
		{"AcceptClaimHandsOverOnce", testAcceptClaim},
		{"AcceptVerificationClaimHandsOverOnce", testAcceptVerificationClaim},
		{"DueScanFairAndOnce", testDueScanFairAndOnce},
		{"DueScanPendingBeforeFailed", testDueScanPendingBeforeFailed},
		{"ClaimRequested", testClaimRequested},
		{"Register", testRegister},
		{"RecordBatch", testRecordBatch},
		{"ListPaging", testList},
		{"Stats", testStats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := NewClock(time.Time{})
			// Deterministic backoff: no jitter.
			retry := registry.GeoBackoff{Rand: func() float64 { return 0 }}
			s := newStore(t, registry.Options{Clock: clock.Now, Retry: retry})
			tc.fn(t, &env{ctx: context.Background(), clock: clock, s: s})
		})
	}
}

type env struct {
	ctx   context.Context
	clock *Clock
	s     *registry.Store
}

const (
	typeA = "maven_package_file"
	typeB = "npm_package_file"
	typeC = "nuget_symbol"
	sha1  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	sha2  = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

func event(dataType, key, seq string) registry.ObjectEvent {
	return registry.ObjectEvent{DataType: dataType, Key: key, Size: 1000, ETag: "etag-" + seq,
		VersionID: "", Sequencer: seq}
}

func (e *env) created(t *testing.T, ev registry.ObjectEvent) bool {
	t.Helper()
	ok, err := e.s.RecordCreated(e.ctx, ev)
	require.NoError(t, err)
	return bool(ok)
}

func (e *env) removed(t *testing.T, dataType, key, seq string) bool {
	t.Helper()
	ok, err := e.s.RecordRemoved(e.ctx, registry.ObjectEvent{DataType: dataType, Key: key, Sequencer: seq})
	require.NoError(t, err)
	return bool(ok)
}

func (e *env) get(t *testing.T, dataType, key string) registry.Row {
	t.Helper()
	row, err := e.s.Get(e.ctx, dataType, key)
	require.NoError(t, err)
	return row
}

func (e *env) claim(t *testing.T, dataType, key string) registry.Claim {
	t.Helper()
	c, ok, err := e.s.ClaimKey(e.ctx, dataType, key)
	require.NoError(t, err)
	require.True(t, ok, "claim %s/%s", dataType, key)
	return c
}

// createdAndClaimed records the creation of key (typeA) and returns its
// sync claim, the only row due.
func (e *env) createdAndClaimed(t *testing.T, key string) registry.Claim {
	t.Helper()
	require.True(t, e.created(t, event(typeA, key, "10")))
	claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, 1)
	return claims[0]
}

func (e *env) synced(t *testing.T, c registry.Claim, res registry.SyncResult) {
	t.Helper()
	ok, err := e.s.MarkSynced(e.ctx, c, res)
	require.NoError(t, err)
	require.True(t, ok, "mark synced %s/%s", c.DataType, c.ObjectKey)
}

func (e *env) failed(t *testing.T, c registry.Claim, msg string, missing bool) {
	t.Helper()
	ok, err := e.s.MarkFailed(e.ctx, c, msg, missing)
	require.NoError(t, err)
	require.True(t, ok, "mark failed %s/%s", c.DataType, c.ObjectKey)
}

// failAgain claims key a minute later and fails it with msg (missing on
// the primary or not). It returns the row and how long after the failure
// the row is due again.
func (e *env) failAgain(t *testing.T, dataType, key, msg string, missing bool) (registry.Row, time.Duration) {
	t.Helper()
	c := e.claim(t, dataType, key)
	now := e.clock.Advance(time.Minute)
	e.failed(t, c, msg, missing)
	row := e.get(t, dataType, key)
	require.NotNil(t, row.RetryAt, "retry time of %s", key)
	return row, row.RetryAt.Sub(now)
}

// syncKey creates, claims and syncs a key.
func (e *env) syncKey(t *testing.T, dataType, key, seq string) registry.Row {
	t.Helper()
	require.True(t, e.created(t, event(dataType, key, seq)))
	e.synced(t, e.claim(t, dataType, key), registry.SyncResult{Size: 1000, SHA256: sha1, ETag: "etag-" + seq})
	return e.get(t, dataType, key)
}

func assertTime(t *testing.T, want time.Time, got *time.Time, msg string) {
	t.Helper()
	if assert.NotNil(t, got, msg) {
		assert.True(t, want.Equal(*got), "%s: want %s, got %s", msg, want, got)
	}
}

func testLifecycle(t *testing.T, e *env) {
	t0 := e.clock.Now()
	require.True(t, e.created(t, registry.ObjectEvent{DataType: typeA, Key: "com/acme/a/1.0/a-1.0.jar",
		Size: 1234, ETag: "e1", VersionID: "v1", Sequencer: "0055AED6DCD90281E5"}))
	row := e.get(t, typeA, "com/acme/a/1.0/a-1.0.jar")
	assert.Equal(t, registry.StatePending, row.State)
	assert.Equal(t, int64(1), row.Generation)
	assert.Equal(t, int64(1234), row.Size)
	assert.Equal(t, "e1", row.ETag)
	assert.Equal(t, "v1", row.VersionID)
	assert.Equal(t, registry.NormalizeSequencer("0055AED6DCD90281E5"), row.LastSequencer)
	assert.Equal(t, registry.VerificationDisabled, row.VerificationState, "not synced: verification disabled")
	assert.Nil(t, row.DeletedAt)
	assert.False(t, row.Tombstoned())
	assert.True(t, t0.Equal(row.CreatedAt))
	assert.True(t, t0.Equal(row.UpdatedAt))

	t1 := e.clock.Advance(time.Second)
	c := e.claim(t, typeA, row.ObjectKey)
	assert.Equal(t, registry.StateStarted, c.State)
	assert.Equal(t, int64(2), c.Generation, "claim bumps the generation")
	assertTime(t, t1, c.StartedAt, "started_at")
	_, again, err := e.s.ClaimKey(e.ctx, typeA, row.ObjectKey)
	require.NoError(t, err)
	assert.False(t, again, "a started row can not be claimed twice")

	t2 := e.clock.Advance(time.Second)
	e.synced(t, c, registry.SyncResult{Size: 1234, SHA256: strings.ToUpper(sha1), ETag: "e1", VersionID: "v1"})
	row = e.get(t, typeA, row.ObjectKey)
	assert.Equal(t, registry.StateSynced, row.State)
	assertTime(t, t2, row.LastSyncedAt, "last_synced_at")
	assert.Equal(t, sha1, row.PrimarySHA256, "checksum stored lower-case")
	assert.Equal(t, registry.VerificationPending, row.VerificationState, "synced with checksum: verification pending")
	assert.Zero(t, row.RetryCount)
	assert.Nil(t, row.RetryAt)
	assert.True(t, t2.Equal(row.UpdatedAt))

	_, ok, err := e.s.ClaimKey(e.ctx, typeA, row.ObjectKey)
	require.NoError(t, err)
	assert.False(t, ok, "a synced row can not be claimed")
	ok, err = e.s.MarkSynced(e.ctx, c, registry.SyncResult{})
	require.NoError(t, err)
	assert.False(t, ok, "a claim can be finished only once")

	// Synced without a checksum: verification stays disabled.
	require.True(t, e.created(t, event(typeB, "pkg/-/pkg-1.0.0.tgz", "01")))
	e.synced(t, e.claim(t, typeB, "pkg/-/pkg-1.0.0.tgz"), registry.SyncResult{Size: 5})
	row = e.get(t, typeB, "pkg/-/pkg-1.0.0.tgz")
	assert.Equal(t, registry.StateSynced, row.State)
	assert.Equal(t, registry.VerificationDisabled, row.VerificationState)
	assert.Equal(t, int64(5), row.Size)
}

func testFailureThenRetry(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "10")))
	c := e.claim(t, typeA, "k")
	now := e.clock.Advance(time.Minute)
	e.failed(t, c, "copy: connection reset", false)
	row := e.get(t, typeA, "k")
	assert.Equal(t, registry.StateFailed, row.State)
	assert.Equal(t, 1, row.RetryCount)
	assertTime(t, now.Add(16*time.Second), row.RetryAt, "retry_at = now + 1^4 + 15 s")
	assert.Equal(t, "copy: connection reset", row.LastSyncFailure)
	assert.False(t, row.MissingOnPrimary)

	ok, err := e.s.MarkFailed(e.ctx, c, "again", false)
	require.NoError(t, err)
	assert.False(t, ok, "a failed claim can not fail twice")

	// failed -> started ignores retry_at (an event or operator is a fresh reason).
	c2 := e.claim(t, typeA, "k")
	assert.Equal(t, registry.StateStarted, c2.State)
	assert.Equal(t, 1, c2.RetryCount)
	e.synced(t, c2, registry.SyncResult{Size: 1000, SHA256: sha1})
	row = e.get(t, typeA, "k")
	assert.Equal(t, registry.StateSynced, row.State)
	assert.Zero(t, row.RetryCount)
	assert.Nil(t, row.RetryAt)
	assert.Empty(t, row.LastSyncFailure)
}

func testResync(t *testing.T, e *env) {
	row := e.syncKey(t, typeA, "synced", "10")
	require.NoError(t, e.s.Resync(e.ctx, typeA, "synced"))
	got := e.get(t, typeA, "synced")
	assert.Equal(t, registry.StatePending, got.State)
	assert.Equal(t, row.Generation+1, got.Generation)
	assert.Equal(t, registry.VerificationDisabled, got.VerificationState)

	// Resync of a pending row changes nothing.
	require.NoError(t, e.s.Resync(e.ctx, typeA, "synced"))
	assert.Equal(t, got.Generation, e.get(t, typeA, "synced").Generation)

	// failed -> pending, retries reset.
	require.True(t, e.created(t, event(typeA, "failed", "10")))
	e.failed(t, e.claim(t, typeA, "failed"), "boom", false)
	require.NoError(t, e.s.Resync(e.ctx, typeA, "failed"))
	got = e.get(t, typeA, "failed")
	assert.Equal(t, registry.StatePending, got.State)
	assert.Zero(t, got.RetryCount)
	assert.Nil(t, got.RetryAt)

	// started -> pending: the copy in flight loses its CAS.
	c := e.claim(t, typeA, "failed")
	require.NoError(t, e.s.Resync(e.ctx, typeA, "failed"))
	ok, err := e.s.MarkSynced(e.ctx, c, registry.SyncResult{Size: 1})
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, registry.StatePending, e.get(t, typeA, "failed").State)
}

func testNotFound(t *testing.T, e *env) {
	_, err := e.s.Get(e.ctx, typeA, "nope")
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = e.s.GetByID(e.ctx, 424242)
	require.ErrorIs(t, err, registry.ErrNotFound)
	require.ErrorIs(t, e.s.Resync(e.ctx, typeA, "nope"), registry.ErrNotFound)
	_, ok, err := e.s.ClaimKey(e.ctx, typeA, "nope")
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = e.s.RecordCreated(e.ctx, registry.ObjectEvent{DataType: typeA})
	require.Error(t, err, "an event without a key is rejected")
}

func testTombstone(t *testing.T, e *env) {
	live := e.syncKey(t, typeA, "gone.jar", "10")
	deletedAt := e.clock.Advance(time.Minute)
	require.True(t, e.removed(t, typeA, "gone.jar", "20"))
	row := e.get(t, typeA, "gone.jar")
	assertTime(t, deletedAt, row.DeletedAt, "deleted_at")
	assert.True(t, row.Tombstoned())
	assert.Equal(t, registry.StatePending, row.State, "the delete must still reach the secondary")
	assert.Equal(t, live.Generation+1, row.Generation)
	assert.Equal(t, registry.NormalizeSequencer("20"), row.LastSequencer)
	assert.Equal(t, registry.VerificationDisabled, row.VerificationState)

	rows, err := e.s.List(e.ctx, registry.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, rows, "List hides tombstones by default")
	rows, err = e.s.List(e.ctx, registry.ListOptions{IncludeTombstones: true})
	require.NoError(t, err)
	require.Len(t, rows, 1)

	claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, 1, "tombstones are claimed to propagate the delete")
	assert.True(t, claims[0].Tombstoned())
	e.clock.Advance(time.Second)
	e.synced(t, claims[0], registry.SyncResult{})
	row = e.get(t, typeA, "gone.jar")
	assert.Equal(t, registry.StateSynced, row.State, "delete propagated")
	assert.True(t, row.Tombstoned())
	assertTime(t, deletedAt, row.DeletedAt, "deleted_at kept")
	assert.Equal(t, registry.VerificationDisabled, row.VerificationState, "nothing to verify for a tombstone")

	// A duplicate delete (same sequencer) changes nothing.
	assert.False(t, e.removed(t, typeA, "gone.jar", "20"))
	assert.Equal(t, registry.StateSynced, e.get(t, typeA, "gone.jar").State)

	// A newer create resurrects it.
	require.True(t, e.created(t, event(typeA, "gone.jar", "30")))
	row = e.get(t, typeA, "gone.jar")
	assert.False(t, row.Tombstoned())
	assert.Equal(t, registry.StatePending, row.State)
	assert.Empty(t, row.PrimarySHA256, "new object: old checksum dropped")
}

func testRemoveUnknownThenLateCreate(t *testing.T, e *env) {
	require.True(t, e.removed(t, typeA, "k", "50"))
	row := e.get(t, typeA, "k")
	assert.True(t, row.Tombstoned(), "a delete of an unknown key leaves a tombstone")
	assert.Equal(t, registry.StatePending, row.State)
	assert.Equal(t, int64(1), row.Generation)

	assert.False(t, e.created(t, event(typeA, "k", "40")), "a late create must never resurrect a deleted blob")
	row2 := e.get(t, typeA, "k")
	assert.True(t, row2.Tombstoned())
	assert.Equal(t, row.Generation, row2.Generation)
	assert.Equal(t, row.LastSequencer, row2.LastSequencer)
	assert.Zero(t, row2.Size)
}

func testStaleCreates(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "20")))
	e.syncKey(t, typeA, "other", "1") // unrelated key: sequencers compare per key only
	assert.False(t, e.created(t, event(typeA, "k", "20")), "duplicate")
	assert.False(t, e.created(t, event(typeA, "k", "1F")), "reordered older event")
	got := e.get(t, typeA, "k")
	assert.Equal(t, int64(1), got.Generation, "stale events change nothing")
	assert.Equal(t, "etag-20", got.ETag)

	e.synced(t, e.claim(t, typeA, "k"), registry.SyncResult{Size: 1000, SHA256: sha1, ETag: "etag-20"})
	assert.False(t, e.created(t, event(typeA, "k", "10")))
	assert.Equal(t, registry.StateSynced, e.get(t, typeA, "k").State, "a stale create does not force a resync")

	require.True(t, e.created(t, event(typeA, "k", "21")))
	got = e.get(t, typeA, "k")
	assert.Equal(t, registry.StatePending, got.State)
	assert.Equal(t, "etag-21", got.ETag)
}

func testLateDelete(t *testing.T, e *env) {
	e.syncKey(t, typeA, "k", "30")
	assert.False(t, e.removed(t, typeA, "k", "2F"), "a late delete must never remove a newer object")
	row := e.get(t, typeA, "k")
	assert.False(t, row.Tombstoned())
	assert.Equal(t, registry.StateSynced, row.State)
}

func testSequencerNormalization(t *testing.T, e *env) {
	// Unpadded, "F" > "10" as text; after normalization 0x10 > 0xF.
	require.True(t, e.created(t, event(typeA, "k", "f")))
	assert.True(t, e.created(t, event(typeA, "k", "10")), "0x10 is newer than 0xf")
	assert.False(t, e.created(t, event(typeA, "k", "0F")), "0x0F is older than 0x10")
	assert.False(t, e.created(t, event(typeA, "k", "0010")), "same value, other spelling: duplicate")
	assert.Equal(t, registry.NormalizeSequencer("10"), e.get(t, typeA, "k").LastSequencer)
	assert.True(t, e.created(t, event(typeA, "k", "0055aed6dcd90281e5")), "lower-case input")
	assert.False(t, e.created(t, event(typeA, "k", "0055AED6DCD90281E5")))
}

func testEmptySequencer(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "40")))
	assert.True(t, e.created(t, event(typeA, "k", "")), "without a sequencer the order is unknown: apply")
	row := e.get(t, typeA, "k")
	assert.Equal(t, int64(2), row.Generation)
	assert.Equal(t, registry.NormalizeSequencer("40"), row.LastSequencer, "the known sequencer is kept")
	assert.False(t, e.created(t, event(typeA, "k", "39")), "ordering still holds afterwards")
	require.True(t, e.created(t, event(typeA, "fresh", "")))
	assert.Empty(t, e.get(t, typeA, "fresh").LastSequencer)
	assert.True(t, e.created(t, event(typeA, "fresh", "01")))
}

func testContentChange(t *testing.T, e *env) {
	e.syncKey(t, typeA, "k", "10")
	// Same ETag/version (e.g. re-notification with a newer sequencer): checksum kept.
	ev := event(typeA, "k", "11")
	ev.ETag = "etag-10"
	require.True(t, e.created(t, ev))
	row := e.get(t, typeA, "k")
	assert.Equal(t, sha1, row.PrimarySHA256)
	assert.Equal(t, registry.StatePending, row.State)
	assert.Equal(t, registry.VerificationDisabled, row.VerificationState)
	e.synced(t, e.claim(t, typeA, "k"), registry.SyncResult{Size: 1000})
	row = e.get(t, typeA, "k")
	assert.Equal(t, sha1, row.PrimarySHA256, "a sync without checksum keeps the known one")
	assert.Equal(t, registry.VerificationPending, row.VerificationState)

	// New content: checksum cleared until the next copy computes it.
	require.True(t, e.created(t, event(typeA, "k", "12")))
	row = e.get(t, typeA, "k")
	assert.Empty(t, row.PrimarySHA256)
	assert.Equal(t, "etag-12", row.ETag)
	e.synced(t, e.claim(t, typeA, "k"), registry.SyncResult{Size: 2000, SHA256: sha2, ETag: "etag-12"})
	row = e.get(t, typeA, "k")
	assert.Equal(t, sha2, row.PrimarySHA256)
	assert.Equal(t, int64(2000), row.Size)
}

func testEventDuringClaim(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "10")))
	c := e.claim(t, typeA, "k")
	require.True(t, e.created(t, event(typeA, "k", "11")), "event arrives while the copy runs")
	row := e.get(t, typeA, "k")
	assert.Equal(t, registry.StatePending, row.State)
	assert.Greater(t, row.Generation, c.Generation)

	ok, err := e.s.MarkSynced(e.ctx, c, registry.SyncResult{Size: 1, SHA256: sha1, ETag: "etag-10"})
	require.NoError(t, err)
	assert.False(t, ok, "the stale copy must not mark the row synced")
	ok, err = e.s.MarkFailed(e.ctx, c, "x", false)
	require.NoError(t, err)
	assert.False(t, ok)
	after := e.get(t, typeA, "k")
	assert.Equal(t, registry.StatePending, after.State, "another copy is still due")
	assert.Equal(t, "etag-11", after.ETag)
	assert.Empty(t, after.PrimarySHA256)
	assert.Zero(t, after.RetryCount)

	// The next claim wins normally.
	c2 := e.claim(t, typeA, "k")
	e.synced(t, c2, registry.SyncResult{Size: 2, SHA256: sha2, ETag: "etag-11"})
	assert.Equal(t, registry.StateSynced, e.get(t, typeA, "k").State)
}

func testDeleteDuringClaim(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "10")))
	c := e.claim(t, typeA, "k")
	require.True(t, e.removed(t, typeA, "k", "11"))
	ok, err := e.s.MarkSynced(e.ctx, c, registry.SyncResult{Size: 1, SHA256: sha1})
	require.NoError(t, err)
	assert.False(t, ok)
	row := e.get(t, typeA, "k")
	assert.True(t, row.Tombstoned())
	assert.Equal(t, registry.StatePending, row.State, "the delete is still to be propagated")
	assert.Empty(t, row.PrimarySHA256)
}

func testConcurrentClaimKey(t *testing.T, e *env) {
	const n = 16
	for round := range 5 {
		key := fmt.Sprintf("k%d", round)
		require.True(t, e.created(t, event(typeA, key, "10")))
		var wins sync.Map
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, ok, err := e.s.ClaimKey(e.ctx, typeA, key)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					wins.Store(i, c.Generation)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		count := 0
		wins.Range(func(_, _ any) bool { count++; return true })
		assert.Equal(t, 1, count, "exactly one of %d concurrent claimers wins", n)
		row := e.get(t, typeA, key)
		assert.Equal(t, registry.StateStarted, row.State)
		assert.Equal(t, int64(2), row.Generation, "one claim, one generation bump")
	}
}

func testConcurrentClaimDue(t *testing.T, e *env) {
	const rows, workers = 200, 4
	events := make([]registry.ObjectEvent, rows)
	for i := range events {
		events[i] = event([]string{typeA, typeB, typeC}[i%3], fmt.Sprintf("k%03d", i), "10")
	}
	applied, err := e.s.RecordCreatedBatch(e.ctx, events)
	require.NoError(t, err)
	require.Len(t, applied, rows)

	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for empty := 0; empty < 3; {
				claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 7})
				if err != nil {
					errs <- err
					return
				}
				if len(claims) == 0 {
					empty++ // others may still hold locks on rows they skip
					continue
				}
				mu.Lock()
				for _, c := range claims {
					seen[c.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Workers stop after a few empty rounds; claim any remainder alone.
	for {
		claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 50})
		require.NoError(t, err)
		if len(claims) == 0 {
			break
		}
		for _, c := range claims {
			seen[c.ID]++
		}
	}
	assert.Len(t, seen, rows, "every due row is claimed")
	for id, n := range seen {
		assert.Equal(t, 1, n, "row %d claimed %d times", id, n)
	}
	stats, err := e.s.Stats(e.ctx)
	require.NoError(t, err)
	var started int64
	for _, st := range stats {
		started += st.Started
		assert.Zero(t, st.Pending, st.DataType)
	}
	assert.Equal(t, int64(rows), started)
}

// createUneven records due rows of three types: 50 of typeA (a00..a49),
// 3 of typeB, 20 of typeC.
func (e *env) createUneven(t *testing.T) {
	t.Helper()
	var events []registry.ObjectEvent
	for i := range 50 {
		events = append(events, event(typeA, fmt.Sprintf("a%02d", i), "10"))
	}
	for i := range 3 {
		events = append(events, event(typeB, fmt.Sprintf("b%02d", i), "10"))
	}
	for i := range 20 {
		events = append(events, event(typeC, fmt.Sprintf("c%02d", i), "10"))
	}
	_, err := e.s.RecordCreatedBatch(e.ctx, events)
	require.NoError(t, err)
}

func testClaimDueFairness(t *testing.T, e *env) {
	e.createUneven(t)

	claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 12})
	require.NoError(t, err)
	perType := countTypes(claims)
	assert.Equal(t, map[string]int{typeA: 5, typeB: 3, typeC: 4}, perType,
		"round-robin: the small type gets all its rows, the rest is shared")
	for _, c := range claims {
		if c.DataType == typeA {
			assert.Contains(t, []string{"a00", "a01", "a02", "a03", "a04"}, c.ObjectKey, "oldest rows first")
		}
	}
}

func testClaimDuePriority(t *testing.T, e *env) {
	// Failed rows of typeA: two due, one not yet due.
	for _, k := range []string{"f1", "f2", "f3"} {
		require.True(t, e.created(t, event(typeA, k, "10")))
		e.failed(t, e.claim(t, typeA, k), "boom", false)
		e.clock.Advance(10 * time.Second)
	}
	// f1 failed at t0 (due t0+16s), f2 at t0+10s (due +26s), f3 at t0+20s (due +36s).
	// now = t0+30s: f1 and f2 are due, f3 is not.
	for i := range 3 {
		require.True(t, e.created(t, event(typeB, fmt.Sprintf("p%d", i), "10")))
	}

	claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{typeB: 2}, countTypes(claims), "pending rows before failed ones")

	claims, err = e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	keys := claimedKeys(claims)
	assert.ElementsMatch(t, []string{"p2", "f1", "f2"}, keys, "f3 is not due yet")
	assert.Equal(t, registry.StateFailed, e.get(t, typeA, "f3").State)

	e.clock.Advance(6 * time.Second)
	claims, err = e.s.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"f3"}, claimedKeys(claims), "due once retry_at has passed")

	claims, err = e.s.ClaimDue(e.ctx, registry.ClaimOptions{})
	require.NoError(t, err)
	assert.Empty(t, claims, "started and synced rows are never claimed")
}

func testClaimDueFilter(t *testing.T, e *env) {
	for i := range 3 {
		require.True(t, e.created(t, event(typeA, fmt.Sprintf("a%d", i), "1")))
		require.True(t, e.created(t, event(typeB, fmt.Sprintf("b%d", i), "1")))
		require.True(t, e.created(t, event(typeC, fmt.Sprintf("c%d", i), "1")))
	}
	claims, err := e.s.ClaimDue(e.ctx, registry.ClaimOptions{DataTypes: []string{typeB, typeC, "unknown_type"}})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{typeB: 3, typeC: 3}, countTypes(claims))
	assert.Equal(t, registry.StatePending, e.get(t, typeA, "a0").State)

	// Key prefixes (selective sync), pending and due failed rows alike.
	require.True(t, e.created(t, event(typeA, "com/acme/x.jar", "1")))
	require.True(t, e.created(t, event(typeA, "org/other/y.jar", "1")))
	require.True(t, e.created(t, event(typeA, "com/acme/failed.jar", "1")))
	e.failed(t, e.claim(t, typeA, "com/acme/failed.jar"), "boom", false)
	e.clock.Advance(time.Hour)
	claims, err = e.s.WithKeyPrefixes("com/acme/", "net/").ClaimDue(e.ctx, registry.ClaimOptions{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"com/acme/x.jar", "com/acme/failed.jar"}, claimedKeys(claims))
	assert.Equal(t, registry.StatePending, e.get(t, typeA, "org/other/y.jar").State)
}

func testBackoff(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "1")))
	var prev time.Duration
	for attempt := 1; attempt <= 10; attempt++ {
		row, got := e.failAgain(t, typeA, "k", fmt.Sprintf("attempt %d", attempt), false)
		assert.Equal(t, attempt, row.RetryCount)
		want := time.Duration(attempt*attempt*attempt*attempt)*time.Second + 15*time.Second
		if want > time.Hour {
			want = time.Hour
		}
		assert.Equal(t, want, got, "attempt %d", attempt)
		assert.GreaterOrEqual(t, got, prev, "backoff never shrinks")
		assert.LessOrEqual(t, got, time.Hour, "capped at 1 h")
		prev = got
	}
	assert.Equal(t, time.Hour, prev, "10 failures reach the cap")
}

func testBackoffMissing(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "k", "1")))
	var got time.Duration
	for attempt := 1; attempt <= 12; attempt++ {
		var row registry.Row
		row, got = e.failAgain(t, typeA, "k", "primary: NoSuchKey", true)
		assert.True(t, row.MissingOnPrimary)
		if attempt == 8 {
			assert.Equal(t, (8*8*8*8+15)*time.Second, got, "above the 1 h cap when missing")
		}
	}
	assert.Equal(t, 4*time.Hour, got, "missing on primary caps at 4 h")
	stats, err := e.s.Stats(e.ctx)
	require.NoError(t, err)
	require.Len(t, stats, 1)
	assert.Equal(t, int64(1), stats[0].Missing)

	// A successful sync clears the flag.
	e.synced(t, e.claim(t, typeA, "k"), registry.SyncResult{Size: 1})
	assert.False(t, e.get(t, typeA, "k").MissingOnPrimary)
}

func testLongFailure(t *testing.T, e *env) {
	cases := map[string]string{
		"ascii":     strings.Repeat("x", 10_000),
		"multibyte": strings.Repeat("é日本🙂", 2_500),
		"invalid":   strings.Repeat("\xff\x00a", 400),
	}
	for name, msg := range cases {
		key := "k-" + name
		require.True(t, e.created(t, event(typeA, key, "1")))
		e.failed(t, e.claim(t, typeA, key), msg, false)
		row := e.get(t, typeA, key)
		assert.Equal(t, registry.StateFailed, row.State, "%s: a long failure never blocks the transition", name)
		assert.Equal(t, registry.MaxFailureLen, utf8.RuneCountInString(row.LastSyncFailure), name)
		assert.True(t, utf8.ValidString(row.LastSyncFailure), name)
		if name != "invalid" {
			assert.True(t, strings.HasPrefix(msg, row.LastSyncFailure), "%s: a prefix of the message is kept", name)
		}
	}
}

func testRecoverStuck(t *testing.T, e *env) {
	require.True(t, e.created(t, event(typeA, "old", "1")))
	require.True(t, e.created(t, event(typeA, "recent", "1")))
	require.True(t, e.created(t, event(typeA, "pending", "1")))
	old := e.claim(t, typeA, "old")
	e.clock.Advance(2 * time.Hour)
	recent := e.claim(t, typeA, "recent")
	now := e.clock.Advance(time.Minute)

	n, err := e.s.RecoverStuck(e.ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	row := e.get(t, typeA, "old")
	assert.Equal(t, registry.StateFailed, row.State)
	assertTime(t, now, row.RetryAt, "due at once")
	assert.Contains(t, row.LastSyncFailure, "timed out")
	assert.Equal(t, 1, row.RetryCount)
	assert.Equal(t, registry.StateStarted, e.get(t, typeA, "recent").State)
	assert.Equal(t, registry.StatePending, e.get(t, typeA, "pending").State)

	ok, err := e.s.MarkSynced(e.ctx, old, registry.SyncResult{Size: 1})
	require.NoError(t, err)
	assert.False(t, ok, "the stuck worker can not finish a recovered row")
	e.synced(t, recent, registry.SyncResult{Size: 1})

	n, err = e.s.RecoverStuck(e.ctx, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func testRegister(t *testing.T, e *env) {
	ok, err := e.s.Register(e.ctx, registry.ObjectEvent{DataType: typeA, Key: "found", Size: 7, ETag: "e"})
	require.NoError(t, err)
	assert.True(t, bool(ok))
	row := e.get(t, typeA, "found")
	assert.Equal(t, registry.StatePending, row.State)
	assert.Equal(t, int64(7), row.Size)
	e.synced(t, e.claim(t, typeA, "found"), registry.SyncResult{Size: 7, SHA256: sha1})

	ok, err = e.s.Register(e.ctx, registry.ObjectEvent{DataType: typeA, Key: "found", Size: 9})
	require.NoError(t, err)
	assert.False(t, bool(ok), "an existing row is left alone")
	row = e.get(t, typeA, "found")
	assert.Equal(t, registry.StateSynced, row.State)
	assert.Equal(t, int64(7), row.Size)
}

func testRecordBatch(t *testing.T, e *env) {
	applied, err := e.s.RecordBatch(e.ctx, []registry.BatchEvent{
		{Kind: registry.EventCreated, ObjectEvent: event(typeA, "a", "10")},
		{Kind: registry.EventCreated, ObjectEvent: event(typeA, "a", "10")}, // duplicate in the batch
		{Kind: registry.EventRemoved, ObjectEvent: event(typeA, "a", "11")},
		{Kind: registry.EventCreated, ObjectEvent: event(typeA, "a", "09")}, // late create
		{Kind: registry.EventCreated, ObjectEvent: event(typeB, "b", "01")},
	})
	require.NoError(t, err)
	assert.Equal(t, []registry.Applied{true, false, true, false, true}, applied)
	assert.True(t, e.get(t, typeA, "a").Tombstoned())
	assert.Equal(t, registry.StatePending, e.get(t, typeB, "b").State)

	// One kind, distinct keys (the single-statement path).
	require.True(t, e.created(t, event(typeC, "x", "50")))
	applied, err = e.s.RecordCreatedBatch(e.ctx, []registry.ObjectEvent{
		event(typeC, "z", "10"), event(typeC, "x", "40"), event(typeA, "y", "10"),
	})
	require.NoError(t, err)
	assert.Equal(t, []registry.Applied{true, false, true}, applied, "the stale create is reported")
	assert.Equal(t, "etag-50", e.get(t, typeC, "x").ETag)
	assert.Equal(t, registry.StatePending, e.get(t, typeC, "z").State)
	applied, err = e.s.RecordBatch(e.ctx, []registry.BatchEvent{
		{Kind: registry.EventRemoved, ObjectEvent: event(typeC, "x", "49")},
		{Kind: registry.EventRemoved, ObjectEvent: event(typeC, "z", "11")},
		{Kind: registry.EventRemoved, ObjectEvent: event(typeC, "new", "11")},
	})
	require.NoError(t, err)
	assert.Equal(t, []registry.Applied{false, true, true}, applied)
	assert.False(t, e.get(t, typeC, "x").Tombstoned(), "a late delete in a batch removes nothing")
	assert.True(t, e.get(t, typeC, "z").Tombstoned())
	assert.True(t, e.get(t, typeC, "new").Tombstoned())

	_, err = e.s.RecordBatch(e.ctx, []registry.BatchEvent{
		{Kind: registry.EventCreated, ObjectEvent: event(typeC, "c", "1")},
		{Kind: registry.EventCreated, ObjectEvent: registry.ObjectEvent{DataType: typeC}},
	})
	require.Error(t, err)
	_, err = e.s.Get(e.ctx, typeC, "c")
	require.ErrorIs(t, err, registry.ErrNotFound, "a failed batch applies nothing")
}

func testList(t *testing.T, e *env) {
	for i := range 7 {
		require.True(t, e.created(t, event(typeA, fmt.Sprintf("a%d", i), "1")))
		require.True(t, e.created(t, event(typeB, fmt.Sprintf("b%d", i), "1")))
	}
	require.True(t, e.removed(t, typeA, "a3", "2"))
	var keys []string
	var after int64
	for {
		page, err := e.s.List(e.ctx, registry.ListOptions{DataType: typeA, AfterID: after, Limit: 2})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		assert.LessOrEqual(t, len(page), 2)
		for _, r := range page {
			assert.Greater(t, r.ID, after)
			keys = append(keys, r.ObjectKey)
		}
		after = page[len(page)-1].ID
	}
	assert.Equal(t, []string{"a0", "a1", "a2", "a4", "a5", "a6"}, keys)
	all, err := e.s.List(e.ctx, registry.ListOptions{IncludeTombstones: true})
	require.NoError(t, err)
	assert.Len(t, all, 14)
}

func testStats(t *testing.T, e *env) {
	stats, err := e.s.Stats(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, stats)

	e.syncKey(t, typeA, "s1", "1")                        // synced 1000 bytes, verification pending
	e.syncKey(t, typeA, "s2", "1")                        // synced
	require.True(t, e.created(t, event(typeA, "p", "1"))) // pending
	require.True(t, e.created(t, event(typeA, "st", "1")))
	e.claim(t, typeA, "st") // started
	require.True(t, e.created(t, event(typeA, "f", "1")))
	e.failed(t, e.claim(t, typeA, "f"), "x", true) // failed, missing
	e.syncKey(t, typeA, "gone", "1")
	require.True(t, e.removed(t, typeA, "gone", "2")) // tombstone pending
	require.True(t, e.removed(t, typeA, "never", "1"))
	e.synced(t, e.claim(t, typeA, "never"), registry.SyncResult{}) // tombstone propagated
	require.True(t, e.created(t, event(typeB, "b", "1")))

	stats, err = e.s.Stats(e.ctx)
	require.NoError(t, err)
	require.Len(t, stats, 2)
	assert.Equal(t, registry.TypeStats{
		DataType: typeA, Files: 5, Pending: 1, Started: 1, Synced: 2, Failed: 1,
		Tombstones: 2, TombstonesPending: 1, Bytes: 2000, Missing: 1,
	}, stats[0])
	assert.Equal(t, registry.TypeStats{DataType: typeB, Files: 1, Pending: 1}, stats[1])
}

func countTypes(claims []registry.Claim) map[string]int {
	out := map[string]int{}
	for _, c := range claims {
		out[c.DataType]++
	}
	return out
}

func claimedKeys(claims []registry.Claim) []string {
	out := make([]string, 0, len(claims))
	for _, c := range claims {
		out = append(out, c.ObjectKey)
	}
	return out
}

// testAcceptClaim: a claim handed to another process (a dispatched sync
// request) is taken over exactly once, only at its generation, and the
// dispatcher's stale copy of the claim can no longer finish the row.
func testAcceptClaim(t *testing.T, e *env) {
	dispatched := e.createdAndClaimed(t, "k")
	n, err := e.s.CountStarted(e.ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)

	_, ok, err := e.s.AcceptClaim(e.ctx, typeA, "k", dispatched.Generation+1)
	require.NoError(t, err)
	assert.False(t, ok, "a generation the row never had")

	e.clock.Advance(time.Minute)
	c, ok, err := e.s.AcceptClaim(e.ctx, typeA, "k", dispatched.Generation)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Greater(t, c.Generation, dispatched.Generation)
	assertTime(t, e.clock.Now(), c.StartedAt, "accepting restarts the stuck-claim clock")

	_, ok, err = e.s.AcceptClaim(e.ctx, typeA, "k", dispatched.Generation)
	require.NoError(t, err)
	assert.False(t, ok, "a duplicate request gets nothing")
	won, err := e.s.MarkSynced(e.ctx, dispatched, registry.SyncResult{Size: 1, SHA256: sha1})
	require.NoError(t, err)
	assert.False(t, won, "the handed-over claim is no longer the dispatcher's")

	e.synced(t, c, registry.SyncResult{Size: 1, SHA256: sha1})
	_, ok, err = e.s.AcceptClaim(e.ctx, typeA, "k", c.Generation)
	require.NoError(t, err)
	assert.False(t, ok, "a synced row is not started")
	n, err = e.s.CountStarted(e.ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	_, ok, err = e.s.AcceptClaim(e.ctx, typeA, "missing", 1)
	require.NoError(t, err)
	assert.False(t, ok)
}

// testAcceptVerificationClaim: a dispatched verification claim (secondary
// or primary) is taken over once, by its generation and claim time; the
// take-over moves the token on even on a frozen clock, so a duplicate
// request and the dispatcher's own copy of the claim get nothing.
func testAcceptVerificationClaim(t *testing.T, e *env) {
	e.synced(t, e.createdAndClaimed(t, "k"), registry.SyncResult{Size: 1, SHA256: sha1})
	due := registry.VerifyClaimOptions{Limit: 10, ReverifyInterval: 90 * 24 * time.Hour}
	secs, err := e.s.ClaimSecondary(e.ctx, due)
	require.NoError(t, err)
	require.Len(t, secs, 1)
	dispatched := secs[0]
	n, err := e.s.CountVerifying(e.ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)

	_, ok, err := e.s.AcceptSecondaryClaim(e.ctx, typeA, "k", dispatched.Generation, dispatched.ClaimedAt().Add(time.Second))
	require.NoError(t, err)
	assert.False(t, ok, "a claim time the row never had")
	_, ok, err = e.s.AcceptSecondaryClaim(e.ctx, typeA, "k", dispatched.Generation+1, dispatched.ClaimedAt())
	require.NoError(t, err)
	assert.False(t, ok, "a generation the row does not have")
	c, ok, err := e.s.AcceptSecondaryClaim(e.ctx, typeA, "k", dispatched.Generation, dispatched.ClaimedAt())
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, c.ClaimedAt().After(dispatched.ClaimedAt()), "the token moves on (frozen clock)")
	_, ok, err = e.s.AcceptSecondaryClaim(e.ctx, typeA, "k", dispatched.Generation, dispatched.ClaimedAt())
	require.NoError(t, err)
	assert.False(t, ok, "a duplicate request gets nothing")
	_, ok, err = e.s.AcceptPrimaryClaim(e.ctx, typeA, "k", dispatched.Generation, dispatched.ClaimedAt())
	require.NoError(t, err)
	assert.False(t, ok, "the primary machine is not started")

	match := registry.VerifyResult{Outcome: registry.VerifyMatch, SHA256: sha1, Expected: sha1}
	won, _, err := e.s.FinishSecondary(e.ctx, dispatched, match)
	require.NoError(t, err)
	assert.False(t, won, "the handed-over claim is no longer the dispatcher's")
	won, _, err = e.s.FinishSecondary(e.ctx, c, match)
	require.NoError(t, err)
	assert.True(t, won)
	n, err = e.s.CountVerifying(e.ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	// The primary machine, due for reverification.
	e.clock.Advance(time.Hour)
	pris, err := e.s.ClaimPrimary(e.ctx, registry.VerifyClaimOptions{Limit: 10, ReverifyInterval: time.Minute})
	require.NoError(t, err)
	require.Len(t, pris, 1)
	p, ok, err := e.s.AcceptPrimaryClaim(e.ctx, typeA, "k", pris[0].Generation, pris[0].ClaimedAt())
	require.NoError(t, err)
	require.True(t, ok)
	won, err = e.s.FinishPrimary(e.ctx, p, match)
	require.NoError(t, err)
	assert.True(t, won)
	_, ok, err = e.s.AcceptPrimaryClaim(e.ctx, typeA, "k", pris[0].Generation, pris[0].ClaimedAt())
	require.NoError(t, err)
	assert.False(t, ok, "a finished claim is gone")
}
