package backfill_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/replication"
)

// Files uploaded while notifications are off are replicated by one pass;
// files deleted or overwritten while they are off are deleted or recopied.
func TestOnePassReplicatesUnannouncedChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putTyped(40, func(i int) int { return 100 + i*37 })
	e.put("unrelated/readme.txt", []byte("not a package"))

	rep := e.run(backfill.Request{})
	assert.EqualValues(t, 41, rep.Reconcile.Listed)
	assert.EqualValues(t, 40, rep.Reconcile.Selected)
	assert.EqualValues(t, 40, rep.Reconcile.Registered)
	assert.EqualValues(t, 40, rep.Sync.Synced)
	assert.True(t, rep.Reconcile.PassComplete)
	e.requireConverged()
	_, copied := s3test.Contents(t, e.second3)["unrelated/readme.txt"]
	assert.False(t, copied, "keys of no data type are not replicated")

	// Notifications still off: delete 5, overwrite 3, add 2.
	for i := range 5 {
		e.del(e.primaryS3, typedKey(i))
	}
	for i := 10; i < 13; i++ {
		e.put(typedKey(i), samples.Bytes("v2"+typedKey(i), 333))
	}
	e.put(typedKey(100), []byte("new one"))
	e.put(typedKey(101), []byte("new two"))

	rep = e.run(backfill.Request{})
	assert.EqualValues(t, 5, rep.Reconcile.DeletesQueued)
	assert.EqualValues(t, 2, rep.Reconcile.Registered)
	assert.EqualValues(t, 3, rep.Reconcile.Changed)
	e.requireConverged()
	for i := range 5 {
		row, err := e.reg.Get(t.Context(), mustType(t, e, typedKey(i)), typedKey(i))
		require.NoError(t, err)
		assert.True(t, row.Tombstoned(), "row of deleted %s is a tombstone", typedKey(i))
	}

	// A quiet pass does nothing.
	rep = e.run(backfill.Request{})
	assert.Zero(t, rep.Reconcile.Registered+rep.Reconcile.DeletesQueued+rep.Reconcile.Changed+rep.Sync.Claimed)
}

func mustType(t *testing.T, e *env, key string) string {
	t.Helper()
	ty, ok := e.catalog.Match(key)
	require.True(t, ok, key)
	return ty.Name
}

// A pass stopped by its time budget saves its cursor; the next pass
// continues after the last listed key instead of listing again.
func TestBudgetInterruptedPassResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const n, page = 230, 20
	e.putTyped(n, func(int) int { return 64 })
	// The clock moves one second per reading: a 6 s budget ends a pass
	// after a few pages whatever the machine's speed.
	e.opts.Clock = steppingClock(time.Second)
	e.opts.ListPageSize = page
	e.cfg.BatchSize = page
	e.cfg.Budget = 6 * time.Second

	var listed, runs int64
	seen := map[int64]bool{}
	for runs = 1; runs < 100; runs++ {
		rep := e.run(backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
		listed += rep.Reconcile.Listed
		if runs == 1 {
			require.True(t, rep.BudgetExhausted, "the first pass must be cut by its budget")
			require.Less(t, rep.Reconcile.Listed, int64(n))
		} else {
			assert.True(t, rep.Reconcile.Resumed || rep.Reconcile.PassComplete)
		}
		seen[rep.Reconcile.Listed] = true
		if rep.Reconcile.PassComplete {
			break
		}
	}
	assert.Greater(t, runs, int64(2), "several invocations were needed")
	assert.EqualValues(t, n, listed, "every object listed exactly once across the invocations")
	// n/page full pages plus one short page: no page was fetched twice.
	assert.EqualValues(t, (n+page-1)/page, e.pproxy.OpCount(s3test.OpListObjects))
	assert.Len(t, e.rows(false), n)

	// The next pass starts over (a new pass, not a resumed one).
	rep := e.run(backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
	assert.False(t, rep.Reconcile.Resumed)
}

// Two invocations at once never copy the same row: each key is read from
// the primary exactly once.
func TestConcurrentRunsNeverCopyARowTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{concurrency: 4})
	const n = 120
	e.putTyped(n, func(int) int { return 2048 })
	e.run(backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})

	var (
		mu   sync.Mutex
		gets = map[string]int{}
	)
	e.setRules(func(r *http.Request) s3test.Fault {
		if s3test.Op(r) == s3test.OpGetObject {
			mu.Lock()
			gets[r.URL.Path]++
			mu.Unlock()
		}
		return s3test.Fault{}
	}, nil)
	e.cfg.ClaimSize = 7
	var g errgroup.Group
	reps := make([]backfill.Report, 3)
	for i := range reps {
		g.Go(func() (err error) {
			reps[i], err = e.runner().Run(t.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseSync}})
			return err
		})
	}
	require.NoError(t, g.Wait())
	var synced int64
	for _, r := range reps {
		synced += r.Sync.Synced
	}
	assert.EqualValues(t, n, synced)
	require.Len(t, gets, n)
	for k, c := range gets {
		assert.Equal(t, 1, c, "%s read %d times", k, c)
	}
	e.requireConverged()
}

// A row that keeps failing is quarantined after MaxAttempts: it stays
// visible and counted, is no longer attempted, and a resync brings it back.
func TestQuarantineAndResync(t *testing.T) {
	t.Parallel()
	e, clock := newRetryEnv(t, 3)
	bad, good := typedKey(1), typedKey(2)
	e.put(bad, []byte("always fails"))
	e.put(good, []byte("fine"))
	e.refuseSecondaryPuts(bad)
	attempts := func() int64 { return e.sproxy.OpCount(s3test.OpPutObject) }

	var quarantined int64
	for range 10 {
		rep := e.run(backfill.Request{})
		quarantined += rep.Sync.Quarantined
		clock.Advance(2 * time.Hour) // past any backoff
	}
	assert.EqualValues(t, 1, quarantined)
	row, err := e.reg.Get(t.Context(), mustType(t, e, bad), bad)
	require.NoError(t, err)
	assert.Equal(t, registry.StateFailed, row.State)
	assert.Equal(t, 3, row.RetryCount)
	putsForBad := attempts() - 1 // one put of the good key
	assert.EqualValues(t, 3, putsForBad, "attempted exactly MaxAttempts times, then left alone")

	st, err := e.runner().Status(t.Context())
	require.NoError(t, err)
	var q int64
	for _, s := range st {
		q += s.Quarantined
	}
	assert.EqualValues(t, 1, q, "quarantined rows are counted")

	_, err = e.runner().ResyncQuarantined(t.Context(), nil, good)
	require.ErrorIs(t, err, backfill.ErrNotQuarantined)

	e.setRules(nil, nil)
	n, err := e.runner().ResyncQuarantined(t.Context(), nil, bad)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	rep := e.run(backfill.Request{})
	assert.EqualValues(t, 1, rep.Sync.Synced)
	e.requireConverged()
	st, err = e.runner().Status(t.Context())
	require.NoError(t, err)
	for _, s := range st {
		assert.Zero(t, s.Quarantined)
	}
}

// Stuck started rows are recovered and then synced.
func TestRecoverStuckRows(t *testing.T) {
	t.Parallel()
	clock := registrytest.NewClock(time.Now())
	e := newEnv(t, envOptions{clock: clock.Now})
	e.opts.SyncTimeout = time.Minute
	key := typedKey(3)
	e.put(key, []byte("stuck"))
	e.run(backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile}})
	claims, err := e.reg.ClaimDue(t.Context(), registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, 1) // a worker claims it and dies

	rep := e.run(backfill.Request{})
	assert.Zero(t, rep.Recovered, "not stuck yet")
	assert.Zero(t, rep.Sync.Claimed)
	clock.Advance(2 * time.Minute)
	rep = e.run(backfill.Request{})
	assert.EqualValues(t, 1, rep.Recovered)
	assert.EqualValues(t, 1, rep.Sync.Synced)
	e.requireConverged()
}

// Selective sync: only enabled types and selected prefixes are registered
// and synced; turning a type off stops its work but deletes nothing.
func TestSelectiveSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{types: []string{"npm_package_file", "generic_package_file"},
		keyPrefixes: []string{"npm/", "generic/team-x/"}})
	e.put("npm/a/-/a-1.0.0.tgz", []byte("a"))
	e.put("npm/b/-/b-1.0.0.tgz", []byte("b"))
	e.put("generic/team-x/f.bin", []byte("x"))
	e.put("generic/team-y/f.bin", []byte("y"))
	e.put("maven/com/x/1/x.jar", []byte("maven is off"))

	rep := e.run(backfill.Request{Orphans: backfill.OrphansDelete, Phases: []backfill.Phase{
		backfill.PhaseReconcile, backfill.PhaseSync, backfill.PhaseOrphans}})
	assert.EqualValues(t, 3, rep.Sync.Synced)
	got := s3test.Contents(t, e.second3)
	assert.Equal(t, []string{"generic/team-x/f.bin", "npm/a/-/a-1.0.0.tgz", "npm/b/-/b-1.0.0.tgz"}, keysOf(got))
	assert.Len(t, e.rows(true), 3)

	// A row outside the prefixes created by an event is not synced by backfill.
	_, err := e.reg.RecordCreated(t.Context(), registry.ObjectEvent{DataType: "generic_package_file", Key: "generic/team-y/f.bin", Size: 1})
	require.NoError(t, err)
	rep = e.run(backfill.Request{})
	assert.Zero(t, rep.Sync.Claimed)

	// Turn npm off: its copies and rows stay; its new objects are ignored.
	cat, err := datatypeCatalog("generic_package_file")
	require.NoError(t, err)
	cat = cat.WithPrefixes(e.catalog.Prefixes()...)
	engine, err := replication.New(replication.Options{Registry: e.reg, Primary: e.primary, Secondary: e.secondary,
		Catalog: cat, Logger: e.opts.Logger})
	require.NoError(t, err)
	o := e.opts
	o.Config, o.Catalog, o.Engine = e.cfg, cat, engine
	off, err := backfill.New(o)
	require.NoError(t, err)
	e.put("npm/c/-/c-1.0.0.tgz", []byte("c"))
	e.del(e.primaryS3, "npm/a/-/a-1.0.0.tgz")
	rep, err = off.Run(t.Context(), backfill.Request{Orphans: backfill.OrphansDelete, Phases: []backfill.Phase{
		backfill.PhaseReconcile, backfill.PhaseSync, backfill.PhaseOrphans}})
	require.NoError(t, err)
	assert.Zero(t, rep.Reconcile.Registered)
	assert.Zero(t, rep.Reconcile.DeletesQueued)
	assert.Zero(t, rep.Orphans.Deleted)
	got = s3test.Contents(t, e.second3)
	assert.Contains(t, got, "npm/a/-/a-1.0.0.tgz", "a disabled type's copies are never deleted")
	assert.NotContains(t, got, "npm/c/-/c-1.0.0.tgz")
	row, err := e.reg.Get(t.Context(), "npm_package_file", "npm/a/-/a-1.0.0.tgz")
	require.NoError(t, err)
	assert.False(t, row.Tombstoned())
}

// The orphans phase reports (dry run) and then deletes secondary objects
// without a primary, resuming its own cursor.
func TestSecondaryOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.put(typedKey(0), []byte("kept"))
	e.run(backfill.Request{})
	for i := 1; i <= 3; i++ {
		_, err := e.secondary.Put(t.Context(), typedKey(i), bytes.NewReader([]byte("stray")), 5, blobstoreAttrs())
		require.NoError(t, err)
	}
	_, err := e.secondary.Put(t.Context(), "unrelated/x", bytes.NewReader([]byte("x")), 1, blobstoreAttrs())
	require.NoError(t, err)
	only := []backfill.Phase{backfill.PhaseOrphans}

	rep := e.run(backfill.Request{Phases: only}) // off by default
	assert.Zero(t, rep.Orphans.Listed)
	rep = e.run(backfill.Request{Phases: only, Orphans: backfill.OrphansReport})
	assert.EqualValues(t, 3, rep.Orphans.Found)
	assert.Zero(t, rep.Orphans.Deleted)
	assert.Len(t, s3test.Contents(t, e.second3), 5, "a dry run deletes nothing")

	rep = e.run(backfill.Request{Phases: only, Orphans: backfill.OrphansDelete})
	assert.EqualValues(t, 3, rep.Orphans.Deleted)
	got := s3test.Contents(t, e.second3)
	assert.Equal(t, []string{typedKey(0), "unrelated/x"}, keysOf(got))
}
