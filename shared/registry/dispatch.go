package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dispatch without claiming (issue #12). A dispatcher (backfill's sync
// phase) reads due rows read-only, records one narrow lease per request in
// sync_dispatch_lease and sends (data type, key, generation) requests; the
// worker that receives a request claims the row with ClaimRequested, which
// deletes the lease in the same statement. So a row is written once per
// sync attempt by its worker (claim) instead of twice (dispatcher's claim,
// worker's take-over), and the claim writes run in the workers, in
// parallel. A live lease keeps the row from being sent again while its
// request is queued; an expired lease (the request was lost) lets it be
// sent again. The dispatcher's window counts live leases plus started rows
// (CountDispatched).

// DueRequest is a due row a DueScan leased for one sync request.
type DueRequest struct {
	ID         int64
	DataType   string
	ObjectKey  string
	Generation int64 // the row's generation when it was read
	Failed     bool  // a failed row due for a retry (not a pending one)
}

// DueScan reads due rows of some data types for a dispatcher, fair across
// types, and leases them. It keeps a keyset position per type in memory, so
// each call continues where the last one stopped (an index range scan from
// the position, not from the start of the type's due rows); when every
// type is drained it starts over from the beginning, which picks up rows
// that came due behind the positions (a retry time reached, a lease
// expired, a late commit). It is safe for concurrent use; calls are
// serialized.
type DueScan struct {
	s           *Store
	lease       time.Duration
	maxAttempts int
	types       []string // nil until resolved (all types of the table)

	mu     sync.Mutex
	pos    map[string]*scanPos
	rotate int // which type gets the remainder of an uneven split first
}

// scanPos is one type's keyset position: after the pending row (pu, pi)
// in (updated_at, id) order and after the failed row (fr, fi) in
// (retry_at, id) order. drained: the type had no more due rows after its
// position in this cycle.
type scanPos struct {
	pu, fr  time.Time
	pi, fi  int64
	drained bool
}

// NewDueScan returns a scan of the due rows of dataTypes (empty: every type
// in the table) and the Store's key prefixes, leasing each row it returns
// for lease (a request not taken by a worker within lease is considered
// lost and its row may be sent again). Failed rows that failed maxAttempts
// times or more (> 0) are left for Quarantine, never returned.
func (s *Store) NewDueScan(dataTypes []string, lease time.Duration, maxAttempts int) *DueScan {
	d := &DueScan{s: s, lease: lease, maxAttempts: maxAttempts, pos: map[string]*scanPos{}}
	if len(dataTypes) > 0 {
		d.types = append([]string(nil), dataTypes...)
	}
	return d
}

// startPos is the position before every row.
var startPos = scanPos{pu: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), fr: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}

// Next leases and returns up to n due rows: pending rows first (oldest
// change first), then failed rows whose retry time has passed, shared
// round-robin across types (a type with fewer due rows leaves its share to
// the others). Rows with a live lease are skipped. It returns nothing when
// a whole cycle over every type found no due row without a live lease.
func (d *DueScan) Next(ctx context.Context, n int) ([]DueRequest, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.types == nil {
		types, err := collect(ctx, d.s.pool, "due scan types", pgx.RowTo[string], qAllTypes)
		if err != nil {
			return nil, err
		}
		if len(types) == 0 {
			return nil, nil
		}
		d.types = types
	}
	var (
		out       []DueRequest
		restarted bool
	)
	for len(out) < n {
		var active []string
		for _, t := range d.types {
			if p := d.position(t); !p.drained {
				active = append(active, t)
			}
		}
		if len(active) == 0 {
			// Every type drained: return what this call found, or start
			// over once (rows may have come due behind the positions).
			if restarted || len(out) > 0 {
				break
			}
			d.restart()
			restarted = true
			continue
		}
		got, err := d.round(ctx, active, d.split(n-len(out), len(active)))
		if err != nil {
			return out, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// position returns t's position, creating it at the start.
func (d *DueScan) position(t string) *scanPos {
	p, ok := d.pos[t]
	if !ok {
		p = new(scanPos)
		*p = startPos
		d.pos[t] = p
	}
	return p
}

// restart starts a new cycle: every type from the beginning.
func (d *DueScan) restart() {
	for _, p := range d.pos {
		*p = startPos
	}
}

// split shares rows among k types: rows/k each, the remainder one each to
// the first types in a rotating order.
func (d *DueScan) split(rows, k int) []int32 {
	limits := make([]int32, k)
	for i := range limits {
		limits[i] = int32(rows / k)
	}
	for i := range rows % k {
		limits[(d.rotate+i)%k]++
	}
	d.rotate++
	return limits
}

// round runs one leasing statement over types with per-type limits and
// moves their positions; a type that had fewer candidates than its limit
// is drained for this cycle.
func (d *DueScan) round(ctx context.Context, types []string, limits []int32) ([]DueRequest, error) {
	var (
		qt       []string
		qlim     []int32
		pu, fr   []time.Time
		pi, fi   []int64
		selected = map[string]int32{}
	)
	for i, t := range types {
		if limits[i] == 0 {
			continue
		}
		p := d.position(t)
		qt, qlim = append(qt, t), append(qlim, limits[i])
		pu, pi, fr, fi = append(pu, p.pu), append(pi, p.pi), append(fr, p.fr), append(fi, p.fi)
		selected[t] = limits[i]
	}
	if len(qt) == 0 {
		return nil, nil
	}
	now := d.s.now()
	// One round trip: a batch runs as one implicit transaction, so the
	// planner settings are local to it. The planner can not see the
	// per-type limits: without them it may JIT-compile a statement that
	// reads a few hundred index entries, and when the lease table was last
	// analyzed empty it checks leases with a sequential scan per candidate
	// row instead of its primary key.
	batch := &pgx.Batch{}
	batch.Queue(qLeasePlan)
	batch.Queue(qLeaseDue, qt, pu, pi, fr, fi, qlim, now, now.Add(-d.lease), d.s.prefixes, d.maxAttempts)
	br := d.s.pool.SendBatch(ctx, batch)
	defer func() { _ = br.Close() }()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("registry: lease due rows: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("registry: lease due rows: %w", err)
	}
	var (
		out    []DueRequest
		seen   = map[string]int32{}
		r      DueRequest
		at     time.Time
		leased bool
	)
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.DataType, &r.ObjectKey, &r.Generation, &r.Failed, &at, &leased}, func() error {
		seen[r.DataType]++
		p := d.position(r.DataType)
		if r.Failed {
			if at.After(p.fr) || (at.Equal(p.fr) && r.ID > p.fi) {
				p.fr, p.fi = at, r.ID
			}
		} else if at.After(p.pu) || (at.Equal(p.pu) && r.ID > p.pi) {
			p.pu, p.pi = at, r.ID
		}
		if leased {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: lease due rows: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("registry: lease due rows: %w", err)
	}
	for t, limit := range selected {
		if seen[t] < limit {
			d.position(t).drained = true
		}
	}
	return out, nil
}

// ReleaseLeases ends the leases of rows whose requests were not sent, so
// they are due again at once.
func (s *Store) ReleaseLeases(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, qReleaseLeases, ids); err != nil {
		return fmt.Errorf("registry: release %d dispatch leases: %w", len(ids), err)
	}
	return nil
}

// ExpireLeases deletes leases older than lease (their requests are
// considered lost) and returns how many.
func (s *Store) ExpireLeases(ctx context.Context, lease time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, qExpireLeases, s.now().Add(-lease))
	if err != nil {
		return 0, fmt.Errorf("registry: expire dispatch leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CountDispatched returns the sync work in flight: rows in state started
// (claims of every worker) plus requests sent and not yet taken by a worker
// (leases younger than lease). A dispatcher keeps it under its window.
func (s *Store) CountDispatched(ctx context.Context, lease time.Duration) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, qCountDispatched, s.now().Add(-lease)).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry: count dispatched: %w", err)
	}
	return n, nil
}

// ClaimRequested claims the row of a sync request a DueScan leased: it
// ends the row's lease and, if the row is pending or failed and due,
// moves it to started (a new generation) in one statement. ok is false
// when the row is absent, started (a duplicate request, or an event's
// copy), synced, failed and not yet due again, or locked by a concurrent
// claimer. Whatever generation the request carried, the claim is of the
// row as it is now, so the worker does the row's current work.
func (s *Store) ClaimRequested(ctx context.Context, dataType, key string) (Claim, bool, error) {
	return s.claimOne(ctx, syncMachine, "claim requested "+dataType+"/"+key, qClaimRequested, dataType, key, s.now())
}
