// Package registrytest holds the registry conformance suite and helpers
// for tests that need a migrated registry database.
//
// Tests using NewPool or NewStore must call pgtest.Main from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		clock := registrytest.NewClock(time.Time{})
//		store := registrytest.NewStore(t, registry.Options{Clock: clock.Now})
//		...
//	}
package registrytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/registry"
)

// NewDB returns the URL of a fresh database with the registry schema
// migrated (cloned from a template migrated once per test binary). It is
// dropped when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	return pgtest.NewDBFrom(t, "registry", func(ctx context.Context, dsn string) error {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return err
		}
		defer pool.Close()
		return registry.Migrate(ctx, pool)
	})
}

// NewPool returns a pool on NewDB(t). It is closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return pgtest.Connect(t, NewDB(t))
}

// NewStore returns a Store on NewPool(t).
func NewStore(t testing.TB, opts registry.Options) *registry.Store {
	t.Helper()
	s, _ := NewStorePool(t, opts)
	return s
}

// NewStorePool returns a Store on NewPool(t) and the pool, for tests that
// also look at the tables directly.
func NewStorePool(t testing.TB, opts registry.Options) (*registry.Store, *pgxpool.Pool) {
	t.Helper()
	pool := NewPool(t)
	return registry.New(pool, opts), pool
}

// Clock is a manual clock for Options.Clock: time moves only when told.
// It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock showing start, or 2026-03-01 12:00 UTC if start
// is zero.
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	}
	return &Clock{now: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// HoldDelete makes key of dataType a held delete, as a tripped delete brake
// leaves it: it records the removal, trips the brake for all types, claims
// the tombstone and has the brake refuse it.
func HoldDelete(t testing.TB, s *registry.Store, dataType, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.RecordRemoved(ctx, registry.ObjectEvent{DataType: dataType, Key: key}); err != nil {
		t.Fatalf("registrytest: record removed: %v", err)
	}
	if err := s.TripBrake(ctx, registry.ScopeAll, "registrytest.HoldDelete"); err != nil {
		t.Fatalf("registrytest: trip brake: %v", err)
	}
	c, ok, err := s.ClaimKey(ctx, dataType, key)
	if err != nil || !ok {
		t.Fatalf("registrytest: claim %s: ok=%v err=%v", key, ok, err)
	}
	d, err := s.AdmitDelete(ctx, c, registry.BrakePolicy{})
	if err != nil || d.Verdict != registry.VerdictHold {
		t.Fatalf("registrytest: admit delete %s: %v %v", key, d.Verdict, err)
	}
}
