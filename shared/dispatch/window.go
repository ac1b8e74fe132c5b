package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Window is the claim-and-send loop every dispatcher runs (backfill's sync
// phase, verify's scheduled pass): rounds claim due registry rows and send
// one request per claim to the workers' queue, never letting the claims in
// flight (counted by the registry, so every worker's claims count, however
// they were made) exceed Size. When the window is full it waits; it ends
// when Claim finds nothing due (and says no more will come), when Wait
// says the budget or the context ended, or at the first error. A claim
// whose request is lost is the registry's stuck-claim timeout's to recover.
// C is the claim type.
type Window[C any] struct {
	// Size is the most claims in flight: the workers' cap.
	Size int64
	// Batch is the most rows one round claims.
	Batch int
	// Loops is how many claim loops share the window (<= 0: 1); a round is
	// mostly waiting on the database and the queue.
	Loops int
	// InFlight returns the claims in flight now. It is called under the
	// window's lock once per round (see Recount), so it may also do
	// per-round upkeep.
	InFlight func(ctx context.Context) (int64, error)
	// Recount, when > 0, lets rounds go by without calling InFlight: the
	// window then counts what it claimed since the last count on top of
	// that count (never less than what is in flight, as finished work only
	// lowers it), and counts again when that estimate leaves no room or
	// the last count is older than Recount (so other claimers' work, such
	// as event copies, shows). 0: InFlight every round.
	Recount time.Duration
	// Claim claims up to n due rows. When it claims none, more says
	// whether rows may still come due soon (wait and look again) rather
	// than the registry being drained.
	Claim func(ctx context.Context, n int) (claims []C, more bool, err error)
	// Send sends one request per claim. On error it gives back the claims
	// it could not send (so they come due again) before returning.
	Send func(ctx context.Context, claims []C) error
	// Wait sleeps before the next look (window full, or more rows to
	// come); false ends the loop.
	Wait func(ctx context.Context) bool
	// Expired reports whether the budget is spent.
	Expired func() bool
}

// WindowStats are what a Window's loops did.
type WindowStats struct {
	Rounds  int64 // rounds that claimed rows
	Claimed int64 // rows claimed and sent
	Waits   int64 // rounds that found the window full
}

// windowRun is the state the loops of one Run share.
type windowRun[C any] struct {
	w         *Window[C]
	mu        sync.Mutex // guards the fields below
	reserved  int64      // rows being claimed right now (not yet counted in flight)
	counted   int64      // InFlight's last answer
	countedAt time.Time  // when it was asked (zero: never)
	since     int64      // rows claimed since then
	stats     WindowStats
}

// Run runs the loops until they end and returns what they did.
func (w *Window[C]) Run(ctx context.Context) (WindowStats, error) {
	r := &windowRun[C]{w: w}
	var (
		wg   sync.WaitGroup
		errs = make([]error, max(w.Loops, 1))
	)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.loop(ctx)
		}()
	}
	wg.Wait()
	return r.stats, errors.Join(errs...)
}

// loop claims and sends until nothing is due, the budget ends or an error
// occurs.
func (r *windowRun[C]) loop(ctx context.Context) error {
	w := r.w
	for !w.Expired() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dispatch: %w", err)
		}
		take, err := r.reserve(ctx)
		if err != nil {
			return err
		}
		if take == 0 {
			if !w.Wait(ctx) {
				break
			}
			continue
		}
		claims, more, err := w.Claim(ctx, int(take))
		r.release(take, int64(len(claims)))
		if err != nil {
			return err
		}
		if len(claims) == 0 {
			if more && w.Wait(ctx) {
				continue
			}
			break
		}
		if err := w.Send(ctx, claims); err != nil {
			return err
		}
		r.mu.Lock()
		r.stats.Rounds++
		r.stats.Claimed += int64(len(claims))
		r.mu.Unlock()
	}
	return nil
}

// reserve returns how many rows this loop may claim now (0: the window is
// full), counting the claims in flight and what other loops are claiming.
func (r *windowRun[C]) reserve(ctx context.Context) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := max(r.w.Size, 1)
	now := time.Now()
	if r.w.Recount <= 0 || r.countedAt.IsZero() || now.Sub(r.countedAt) >= r.w.Recount ||
		r.counted+r.since+r.reserved >= size {
		inFlight, err := r.w.InFlight(ctx)
		if err != nil {
			return 0, fmt.Errorf("dispatch: claims in flight: %w", err)
		}
		r.counted, r.countedAt, r.since = inFlight, now, 0
	}
	room := size - r.counted - r.since - r.reserved
	if room <= 0 {
		r.stats.Waits++
		return 0, nil
	}
	take := min(room, int64(max(r.w.Batch, 1)))
	r.reserved += take
	return take, nil
}

// release ends a reservation of n rows once got of them are claimed (and
// so counted in flight) or the claim failed.
func (r *windowRun[C]) release(n, got int64) {
	r.mu.Lock()
	r.reserved -= n
	r.since += got
	r.mu.Unlock()
}
