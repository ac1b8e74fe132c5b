package registry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// countWhere counts rows with plain SQL: the oracle for filters.
func countWhere(t *testing.T, pool *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM blob_registry WHERE "+where, args...).Scan(&n))
	return n
}

func listAll(t *testing.T, s *registry.Store, q registry.PageQuery) []registry.Entry {
	t.Helper()
	var out []registry.Entry
	for {
		p, err := s.ListPage(context.Background(), q)
		require.NoError(t, err)
		out = append(out, p.Entries...)
		if p.Next == "" {
			return out
		}
		q.After = p.Next
	}
}

func TestListPageFiltersAndSorts(t *testing.T) {
	t.Parallel()
	s, pool := registrytest.NewStorePool(t, registry.Options{})
	registrytest.Seed(t, pool, 300, "npm", "maven")

	for name, c := range map[string]struct {
		f     registry.Filter
		where string
	}{
		"type":               {registry.Filter{DataType: "npm"}, "data_type = 'npm'"},
		"failed":             {registry.Filter{DataType: "npm", State: "failed"}, "data_type = 'npm' AND state = 3"},
		"pending":            {registry.Filter{DataType: "npm", State: "pending"}, "data_type = 'npm' AND state = 0"},
		"verification":       {registry.Filter{DataType: "npm", VerificationState: "succeeded"}, "data_type = 'npm' AND verification_state = 2"},
		"failed only":        {registry.Filter{DataType: "npm", FailedOnly: true}, "data_type = 'npm' AND (state = 3 OR verification_state = 3)"},
		"missing":            {registry.Filter{DataType: "npm", MissingOnPrimary: true}, "data_type = 'npm' AND missing_on_primary"},
		"quarantined":        {registry.Filter{DataType: "npm", Quarantined: true}, "data_type = 'npm' AND quarantined_at IS NOT NULL"},
		"mismatch":           {registry.Filter{DataType: "npm", ChecksumMismatch: true}, "data_type = 'npm' AND checksum_mismatch"},
		"prefix":             {registry.Filter{DataType: "npm", KeyPrefix: "pkg/npm/3/"}, "data_type = 'npm' AND object_key LIKE 'pkg/npm/3/%'"},
		"contains":           {registry.Filter{DataType: "npm", KeyContains: "file-2"}, "data_type = 'npm' AND object_key LIKE '%file-2%'"},
		"all types, failed":  {registry.Filter{State: "failed"}, "state = 3"},
		"combined":           {registry.Filter{DataType: "maven", State: "failed", MissingOnPrimary: true}, "data_type = 'maven' AND state = 3 AND missing_on_primary"},
		"prefix, no matches": {registry.Filter{DataType: "npm", KeyPrefix: "zzz"}, "false"},
	} {
		t.Run(name, func(t *testing.T) {
			// the time sorts list the rows whose time is current (00750)
			only := map[string]string{registry.SortID: "true", registry.SortLastSynced: "state = 2",
				registry.SortVerifiedAt: "verification_state = 2"}
			for _, sort := range []string{registry.SortID, registry.SortLastSynced, registry.SortVerifiedAt} {
				want := countWhere(t, pool, c.where+" AND "+only[sort])
				if sort == registry.SortLastSynced && c.f.State != "" && c.f.State != "synced" {
					_, err := s.ListPage(context.Background(), registry.PageQuery{Filter: c.f, Sort: sort})
					assert.ErrorIs(t, err, registry.ErrInvalidFilter, "a sort by sync time of rows that are not synced")
					continue
				}
				byKey := sort == registry.SortID && c.f.KeyPrefix != "" && c.f.DataType != ""
				for _, order := range []string{"asc", "desc"} {
					got := listAll(t, s, registry.PageQuery{Filter: c.f, Sort: sort, Order: order, Limit: 17})
					require.Len(t, got, want, "%s %s", sort, order)
					seen := map[int64]bool{}
					for i, e := range got {
						assert.False(t, seen[e.ID], "no row twice")
						seen[e.ID] = true
						if sort == registry.SortLastSynced {
							assert.Equal(t, registry.StateSynced, e.State)
						}
						if sort == registry.SortVerifiedAt {
							assert.Equal(t, registry.VerificationSucceeded, e.VerificationState)
						}
						if i == 0 {
							continue
						}
						prev := got[i-1]
						switch {
						case byKey:
							// a prefix list of one type is in key (byte) order
							assert.Equal(t, order == "asc", prev.ObjectKey < e.ObjectKey, "%q then %q", prev.ObjectKey, e.ObjectKey)
						case sort == registry.SortID:
							assert.Equal(t, order == "asc", prev.ID < e.ID)
						case sort == registry.SortLastSynced:
							a, b := tOrMin(prev.LastSyncedAt), tOrMin(e.LastSyncedAt)
							if order == "asc" {
								assert.True(t, a.Before(b) || a.Equal(b) && prev.ID < e.ID)
							} else {
								assert.True(t, a.After(b) || a.Equal(b) && prev.ID > e.ID)
							}
						case sort == registry.SortVerifiedAt:
							a, b := tOrMin(prev.VerifiedAt), tOrMin(e.VerifiedAt)
							if order == "asc" {
								assert.True(t, a.Before(b) || a.Equal(b) && prev.ID < e.ID)
							} else {
								assert.True(t, a.After(b) || a.Equal(b) && prev.ID > e.ID)
							}
						}
					}
				}
			}
		})
	}
	_, err := s.ListPage(context.Background(), registry.PageQuery{Sort: "size"})
	assert.ErrorIs(t, err, registry.ErrInvalidFilter)
	_, err = s.ListPage(context.Background(), registry.PageQuery{Filter: registry.Filter{State: "done"}})
	assert.ErrorIs(t, err, registry.ErrInvalidFilter)
	_, err = s.ListPage(context.Background(), registry.PageQuery{Filter: registry.Filter{VerificationState: "failed"}, Sort: registry.SortVerifiedAt})
	assert.ErrorIs(t, err, registry.ErrInvalidFilter)
	_, err = s.ListPage(context.Background(), registry.PageQuery{After: "!!"})
	assert.ErrorIs(t, err, registry.ErrInvalidFilter)
}

func tOrMin(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// TestListPageStableWhileRowsChange pages through failed rows in id order
// while other rows are inserted and the rows already listed and not yet
// listed change state: every row that stays failed all along is listed
// exactly once.
func TestListPageStableWhileRowsChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := registrytest.NewStorePool(t, registry.Options{})
	registrytest.Seed(t, pool, 400, "npm")
	stable := map[int64]bool{}
	rows, err := pool.Query(ctx, "SELECT id FROM blob_registry WHERE data_type = 'npm' AND state = 3 AND id % 2 = 0")
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		stable[id] = true
	}
	require.NoError(t, rows.Err())
	q := registry.PageQuery{Filter: registry.Filter{DataType: "npm", State: "failed"}, Limit: 10}
	seen := map[int64]int{}
	for i := 0; ; i++ {
		p, err := s.ListPage(ctx, q)
		require.NoError(t, err)
		for _, e := range p.Entries {
			seen[e.ID]++
		}
		// churn: odd failed rows flip to synced and back, new failed rows
		// appear at the end
		_, err = pool.Exec(ctx, "UPDATE blob_registry SET state = CASE WHEN state = 3 THEN 2 ELSE 3 END, retry_at = coalesce(retry_at, now()) WHERE data_type = 'npm' AND id % 2 = 1 AND state IN (2, 3) AND id % 5 = $1", i%5)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO blob_registry (data_type, object_key, state, retry_at, created_at, updated_at)
			VALUES ('npm', $1, 3, now(), now(), now())`, fmt.Sprintf("new/%d", i))
		require.NoError(t, err)
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	for id := range stable {
		assert.Equal(t, 1, seen[id], "stable failed row %d listed once", id)
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "row %d listed once", id)
	}
}

func TestActOnRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := registrytest.NewClock(time.Time{})
	s, pool := registrytest.NewStorePool(t, registry.Options{Clock: clock.Now})
	_, err := s.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: "a", Size: 3})
	require.NoError(t, err)
	claims, err := s.ClaimDue(ctx, registry.ClaimOptions{})
	require.NoError(t, err)
	require.Len(t, claims, 1)
	_, err = s.MarkFailed(ctx, claims[0], "boom", false)
	require.NoError(t, err)
	id := claims[0].ID

	// reverify of a failed row: nothing to do
	e, changed, err := s.ActOnRow(ctx, registry.ActionReverify, id, "alice")
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, registry.StateFailed, e.State)

	e, changed, err = s.ActOnRow(ctx, registry.ActionResync, id, "alice")
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, registry.StatePending, e.State)
	assert.Greater(t, e.Generation, claims[0].Generation)
	ok, err := s.MarkSynced(ctx, claims[0], registry.SyncResult{Size: 3, SHA256: fmt64("x")})
	require.NoError(t, err)
	assert.False(t, ok, "a copy in flight before the resync can not mark the row synced")

	_, changed, err = s.ActOnRow(ctx, registry.ActionResync, id, "bob")
	require.NoError(t, err)
	assert.False(t, changed, "resync of a pending row changes nothing")

	claims, err = s.ClaimDue(ctx, registry.ClaimOptions{})
	require.NoError(t, err)
	_, err = s.MarkSynced(ctx, claims[0], registry.SyncResult{Size: 3, SHA256: fmt64("x")})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE blob_registry SET verification_state = 3 WHERE id = $1", id)
	require.NoError(t, err)
	e, changed, err = s.ActOnRow(ctx, registry.ActionReverify, id, "carol")
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, registry.VerificationPending, e.VerificationState)

	_, _, err = s.ActOnRow(ctx, registry.ActionResync, 999, "x")
	assert.ErrorIs(t, err, registry.ErrNotFound)
	_, _, err = s.ActOnRow(ctx, "delete", id, "x")
	assert.ErrorIs(t, err, registry.ErrActionInvalid)

	audit, err := s.Audit(ctx, 10)
	require.NoError(t, err)
	require.Len(t, audit, 4, "every applied request is audited, changed or not")
	assert.Equal(t, "carol", audit[0].Actor)
	assert.Equal(t, "reverify", audit[0].Action)
	assert.Equal(t, int64(1), audit[0].Rows)
	assert.Equal(t, "a", *audit[0].ObjectKey)
	assert.Equal(t, int64(0), audit[1].Rows)
}

func TestBulkDryRunEqualsActualAndResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := registrytest.NewStorePool(t, registry.Options{})
	registrytest.Seed(t, pool, 2000, "npm", "maven")

	for _, c := range []struct {
		a registry.Action
		f registry.Filter
	}{
		{registry.ActionResync, registry.Filter{DataType: "npm", State: "failed"}},
		{registry.ActionReverify, registry.Filter{DataType: "maven", VerificationState: "failed"}},
		{registry.ActionResync, registry.Filter{DataType: "maven", KeyPrefix: "pkg/maven/4/"}},
		{registry.ActionReverify, registry.Filter{}},
	} {
		dry, err := s.CountAction(ctx, c.a, c.f)
		require.NoError(t, err)
		require.NotZero(t, dry)
		op, err := s.StartBulk(ctx, c.a, c.f, "ops@example")
		require.NoError(t, err)
		assert.Equal(t, dry, op.Planned)
		op, err = s.RunBulk(ctx, op.ID, registry.BulkOptions{Owner: "t", FirstBatch: 50, Workers: 1 + len(c.f.DataType)%4})
		require.NoError(t, err)
		assert.Equal(t, registry.BulkDone, op.State)
		assert.Equal(t, dry, op.Changed, "%s %+v changes exactly the dry-run count", c.a, c.f)
		again, err := s.CountAction(ctx, c.a, c.f)
		require.NoError(t, err)
		assert.Zero(t, again, "idempotent: nothing left to do")
		op2, err := s.StartBulk(ctx, c.a, c.f, "ops@example")
		require.NoError(t, err)
		op2, err = s.RunBulk(ctx, op2.ID, registry.BulkOptions{Owner: "t"})
		require.NoError(t, err)
		assert.Zero(t, op2.Changed)
	}
	assert.Zero(t, countWhere(t, pool, "data_type = 'npm' AND state = 3"))

	// stop: a runner stops after some batches (its context ends); the
	// rows it changed are copied again (synced) before another runner
	// resumes; the resume finishes without changing any of them again
	f := registry.Filter{DataType: "maven", State: "synced"}
	var synced []int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT array_agg(id) FROM blob_registry WHERE data_type = 'maven' AND state = 2").Scan(&synced))
	dry, err := s.CountAction(ctx, registry.ActionResync, f)
	require.NoError(t, err)
	op, err := s.StartBulk(ctx, registry.ActionResync, f, "ops@example")
	require.NoError(t, err)
	short, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cur, err := s.BulkOperation(ctx, op.ID)
			if err == nil && cur.Batches >= 2 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// three workers on spans of 100 ids (the least): the batches under way
	// when ctx ends finish and the cursor records all of them
	half, err := s.RunBulk(short, op.ID, registry.BulkOptions{Owner: "crashed", FirstBatch: 20, Lease: time.Millisecond,
		Workers: 3, TargetBatch: time.Nanosecond})
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, registry.BulkRunning, half.State, "the first runner stopped half way")
	require.Less(t, half.Changed, dry)
	changed := "data_type = 'maven' AND state = 0 AND id = ANY($1)"
	assert.Zero(t, countWhere(t, pool, changed+" AND id > $2", synced, half.CursorID), "no committed change above the cursor")
	// the onCreate workers copy the resynced rows again meanwhile
	tag, err := pool.Exec(ctx, "UPDATE blob_registry SET state = 2 WHERE "+changed, synced)
	require.NoError(t, err)
	require.Equal(t, half.Changed, tag.RowsAffected())
	n, err := s.ResumeBulk(ctx, registry.BulkOptions{Owner: "second"})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	done, err := s.BulkOperation(ctx, op.ID)
	require.NoError(t, err)
	assert.Equal(t, registry.BulkDone, done.State)
	assert.Equal(t, dry, done.Changed, "every row changed once")
	assert.Equal(t, int(half.Changed), countWhere(t, pool, "data_type = 'maven' AND state = 2 AND id = ANY($1)", synced),
		"the rows copied again after the stop were not resynced twice")
	assertCountersExact(t, s, pool)

	audit, err := s.Audit(ctx, 100)
	require.NoError(t, err)
	require.Len(t, audit, 9)
	assert.Equal(t, "bulk_resync", audit[0].Action)
	assert.Equal(t, dry, audit[0].Rows)
	assert.JSONEq(t, `{"data_type":"maven","state":"synced"}`, string(audit[0].Filter))
}
