package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geoblob/geoblob/shared/registry"
)

// Verifier runs verification passes. It is safe for concurrent use; passes
// in several processes share the work through the registry's row locks.
type Verifier struct {
	store     Store
	primary   Side
	secondary Side
	opts      Options
	stats     *workerStats
}

// New returns a Verifier over the registry store and the two buckets.
func New(store Store, primary, secondary Side, opts Options) (*Verifier, error) {
	if store == nil || primary == nil || secondary == nil {
		return nil, fmt.Errorf("%w: store, primary and secondary are required", ErrInvalid)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Verifier{store: store, primary: primary, secondary: secondary, opts: o, stats: &workerStats{}}, nil
}

// RunOptions adjust one pass (on-demand invocations).
type RunOptions struct {
	// Mode, when set, overrides the configured mode of every data type.
	Mode Mode `json:"mode,omitempty"`
	// Budget, when > 0, replaces the configured time budget.
	Budget time.Duration `json:"budget,omitempty"`
}

// Counts are the results of one side in a pass.
type Counts struct {
	Checked    int64 `json:"checked"`    // checks finished (any outcome)
	Matched    int64 `json:"matched"`    // content equals the registry's checksum (or was recorded)
	Mismatched int64 `json:"mismatched"` // content differs
	Missing    int64 `json:"missing"`    // object does not exist
	Errors     int64 `json:"errors"`     // could not check; retried with backoff
	Resynced   int64 `json:"resynced"`   // rows sent back to sync (secondary only)
	Stale      int64 `json:"stale"`      // row changed during the check; claim released
	Fast       int64 `json:"fast"`       // decided by the stored checksum, no bytes read
	BytesRead  int64 `json:"bytesRead"`  // bytes hashed
}

// Report summarises a pass.
type Report struct {
	Started         time.Time     `json:"started"`
	Elapsed         time.Duration `json:"elapsedNs"`
	Recovered       int64         `json:"recovered"`             // stuck claims given back
	Dispatched      int64         `json:"dispatched,omitempty"`  // verification requests sent to the workers (dispatching passes)
	WindowWaits     int64         `json:"windowWaits,omitempty"` // rounds that found the workers' window full
	Secondary       Counts        `json:"secondary"`
	Primary         Counts        `json:"primary"`
	BudgetExhausted bool          `json:"budgetExhausted"` // stopped with work possibly left
}

// counters are updated by workers.
type counters struct {
	checked, matched, mismatched, missing, errors, resynced, stale, fast, bytes atomic.Int64
}

func (c *counters) snapshot() Counts {
	return Counts{
		Checked: c.checked.Load(), Matched: c.matched.Load(), Mismatched: c.mismatched.Load(),
		Missing: c.missing.Load(), Errors: c.errors.Load(), Resynced: c.resynced.Load(),
		Stale: c.stale.Load(), Fast: c.fast.Load(), BytesRead: c.bytes.Load(),
	}
}

func (c *counters) add(chk Check) {
	c.checked.Add(1)
	c.bytes.Add(chk.BytesRead)
	if chk.Fast {
		c.fast.Add(1)
	}
	switch chk.Outcome {
	case OutcomeMatch:
		c.matched.Add(1)
	case OutcomeMismatch:
		c.mismatched.Add(1)
	case OutcomeMissing:
		c.missing.Add(1)
	default:
		c.errors.Add(1)
	}
}

// cleanupTimeout bounds registry writes made after ctx may be cancelled.
const cleanupTimeout = 10 * time.Second

func (v *Verifier) claimOptions() registry.VerifyClaimOptions {
	return registry.VerifyClaimOptions{
		Limit:            v.opts.BatchSize,
		ReverifyInterval: v.opts.ReverifyInterval,
		ReverifySpread:   v.opts.ReverifySpread,
	}
}

// PassLog records the outcome of every pass; *registry.Store satisfies it.
type PassLog interface {
	// RecordPass stores the pass as the job's last pass.
	RecordPass(ctx context.Context, p registry.PassResult) error
}

var _ PassLog = (*registry.Store)(nil)

// Run does one pass: recover stuck claims, then claim and check due rows
// (secondaries and primaries alternately, at most Concurrency at once) until
// none is due or the budget is spent (or the context's deadline is less than
// Options.DeadlineMargin away). With Options.Dispatcher set, the pass
// sends the claims to the workers instead of checking them (see
// dispatchPass and HandleRequests). Errors checking one object are
// recorded on its row; Run returns an error only when the registry fails.
// With Options.PassLog set, the outcome is recorded there.
func (v *Verifier) Run(ctx context.Context, ro RunOptions) (Report, error) {
	start := v.opts.Now()
	rep, err := v.run(ctx, ro)
	if v.opts.PassLog != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		res := registry.PassResult{Job: registry.JobVerify, Started: start, Finished: v.opts.Now(), Err: err, Summary: rep}
		if rerr := v.opts.PassLog.RecordPass(rctx, res); rerr != nil {
			v.opts.Logger.WarnContext(rctx, "verify: record pass", "error", rerr)
		}
	}
	return rep, err
}

func (v *Verifier) run(ctx context.Context, ro RunOptions) (Report, error) {
	if ro.Mode != "" {
		if _, err := ParseMode(string(ro.Mode)); err != nil {
			return Report{}, err
		}
	}
	budget := v.opts.Budget
	if ro.Budget > 0 {
		budget = ro.Budget
	}
	start := v.opts.Now()
	deadline := start.Add(budget)
	if dl, ok := ctx.Deadline(); ok {
		// The invocation deadline is wall time; translate it onto our
		// clock and keep the margin free for the checks in flight.
		if d := start.Add(time.Until(dl) - v.opts.DeadlineMargin); d.Before(deadline) {
			deadline = d
		}
	}
	rep := Report{Started: start}
	log := v.opts.Logger.With("component", "verify")

	n, err := v.store.RecoverVerification(ctx, v.opts.Timeout)
	if err != nil {
		return rep, err
	}
	rep.Recovered = n
	if v.opts.Dispatcher != nil {
		err := v.dispatchPass(ctx, ro, deadline, &rep, log)
		rep.Elapsed = v.opts.Now().Sub(start)
		return rep, err
	}

	var sec, pri counters
	sem := make(chan struct{}, v.opts.Concurrency)
	var wg sync.WaitGroup
	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	failed := func() bool {
		errMu.Lock()
		defer errMu.Unlock()
		return firstErr != nil
	}

	// Claim until neither side has due rows. Checks can make new rows due
	// (a computed primary checksum enables its secondary's verification), so
	// once both sides run dry the pass waits for the checks in flight and
	// looks again if anything was claimed since it last looked.
	sides := []*passSide{
		{claim: v.store.ClaimSecondary, verify: v.verifySecondary, cnt: &sec},
		{claim: v.store.ClaimPrimary, verify: v.verifyPrimary, cnt: &pri, off: v.opts.NoPrimary},
	}
	lookAgain := func() {
		for _, sd := range sides {
			sd.done = sd.off
		}
	}
	lookAgain()
	claimed := 0
claiming:
	for {
		if !slices.ContainsFunc(sides, func(sd *passSide) bool { return !sd.done }) {
			wg.Wait()
			if claimed == 0 || failed() {
				break
			}
			claimed = 0
			lookAgain()
		}
		if ctx.Err() != nil || !v.opts.Now().Before(deadline) {
			rep.BudgetExhausted = true
			break
		}
		for _, sd := range sides {
			if sd.done {
				continue
			}
			claims, err := sd.claim(ctx, v.claimOptions())
			if err != nil {
				fail(err)
				break claiming
			}
			sd.done = len(claims) == 0
			claimed += len(claims)
			v.dispatch(ctx, &wg, sem, claims, func(ctx context.Context, c registry.Claim) {
				if err := sd.verify(ctx, c, ro.Mode, sd.cnt, log); err != nil {
					fail(err)
				}
			})
		}
	}
	wg.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	rep.Secondary = sec.snapshot()
	rep.Primary = pri.snapshot()
	rep.Elapsed = v.opts.Now().Sub(start)
	log.Info("verify pass done", "secondary", rep.Secondary, "primary", rep.Primary,
		"recovered", rep.Recovered, "budget_exhausted", rep.BudgetExhausted, "elapsed", rep.Elapsed)
	return rep, firstErr
}

// passSide is one side (secondary or primary) of an in-process pass: how
// its due rows are claimed and checked, its counters, and whether it has
// no due rows left (done) or is not verified at all (off).
type passSide struct {
	claim     func(context.Context, registry.VerifyClaimOptions) ([]registry.Claim, error)
	verify    func(context.Context, registry.Claim, Mode, *counters, *slog.Logger) error
	cnt       *counters
	off, done bool
}

// dispatch runs fn for every claim with at most cap(sem) running at once;
// it blocks while all slots are busy, so claims are made only as fast as
// they are worked off.
func (v *Verifier) dispatch(ctx context.Context, wg *sync.WaitGroup, sem chan struct{}, claims []registry.Claim, fn func(context.Context, registry.Claim)) {
	for _, c := range claims {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, c)
		}()
	}
}

func (v *Verifier) mode(override Mode, dataType string) Mode {
	if override != "" {
		return override
	}
	return v.opts.modeFor(dataType)
}

func (v *Verifier) verifySecondary(ctx context.Context, c registry.Claim, override Mode, cnt *counters, log *slog.Logger) error {
	log = log.With("side", "secondary", "data_type", c.DataType, "key", c.ObjectKey, "id", c.ID)
	done := v.stats.begin()
	chk := CheckObject(ctx, v.secondary, c.ObjectKey, c.PrimarySHA256, c.Size, v.mode(override, c.DataType))
	done()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if chk.Outcome == OutcomeError && ctx.Err() != nil {
		return v.store.ReleaseSecondary(wctx, c)
	}
	cnt.add(chk)
	f := registry.VerifyResult{Outcome: chk.Outcome, SHA256: chk.SHA256, Expected: c.PrimarySHA256}
	switch chk.Outcome {
	case OutcomeMismatch:
		f.Failure = fmt.Sprintf("verification: checksum mismatch: secondary sha256 %s (%d bytes), primary %s (%d bytes)",
			chk.SHA256, chk.Size, c.PrimarySHA256, c.Size)
	case OutcomeMissing:
		f.Failure = registry.FailureSecondaryMissing
	case OutcomeError:
		f.Failure = "verification: " + chk.Err.Error()
	}
	won, resync, err := v.store.FinishSecondary(wctx, c, f)
	if err != nil {
		return err
	}
	switch {
	case !won:
		cnt.stale.Add(1)
		log.Info("row changed during verification; released")
	case resync:
		cnt.resynced.Add(1)
		log.Warn("secondary bad; sent back to sync", "outcome", chk.Outcome.String(), "failure", f.Failure,
			"consecutive_failures", c.VerificationRetryCount+1)
	case chk.Outcome == OutcomeMatch:
		log.Debug("secondary verified", "fast", chk.Fast, "bytes_read", chk.BytesRead)
	default:
		log.Warn("secondary verification failed", "outcome", chk.Outcome.String(), "failure", f.Failure)
	}
	return nil
}

func (v *Verifier) verifyPrimary(ctx context.Context, c registry.Claim, override Mode, cnt *counters, log *slog.Logger) error {
	log = log.With("side", "primary", "data_type", c.DataType, "key", c.ObjectKey, "id", c.ID)
	want := c.PrimarySHA256
	done := v.stats.begin()
	chk := CheckObject(ctx, v.primary, c.ObjectKey, want, c.Size, v.mode(override, c.DataType))
	done()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if chk.Outcome == OutcomeError && ctx.Err() != nil {
		return v.store.ReleasePrimary(wctx, c)
	}
	sameObject := sameETag(c.ETag, chk.ETag)
	if want == "" && chk.Outcome == OutcomeMatch && (!sameObject || chk.Size != c.Size) {
		// The object is not the one the row describes: its event (or the
		// next backfill) will register it. Nothing to record yet.
		chk = Check{Outcome: OutcomeError, Err: fmt.Errorf("%w: primary changed since registration (etag %s, size %d; now etag %s, size %d)",
			errChanged, c.ETag, c.Size, chk.ETag, chk.Size)}
	}
	cnt.add(chk)
	f := registry.VerifyResult{Outcome: chk.Outcome, SHA256: chk.SHA256, Expected: want}
	switch chk.Outcome {
	case OutcomeMismatch:
		if sameObject {
			f.Failure = fmt.Sprintf("primary bytes changed in place (bit rot or tampering): registry sha256 %s, primary now %s; secondary kept", want, chk.SHA256)
		} else {
			f.Failure = fmt.Sprintf("primary overwritten without an event (etag %s -> %s): registry sha256 %s, primary now %s; secondary kept", c.ETag, chk.ETag, want, chk.SHA256)
		}
	case OutcomeMissing:
		f.Failure = "primary verification: primary object missing"
	case OutcomeError:
		f.Failure = "primary verification: " + chk.Err.Error()
	}
	won, err := v.store.FinishPrimary(wctx, c, f)
	if err != nil {
		return err
	}
	switch {
	case !won:
		cnt.stale.Add(1)
		log.Info("row changed during primary verification; released")
	case chk.Outcome == OutcomeMismatch:
		log.Error("primary content changed without an event; flagged for an operator", "failure", f.Failure)
	case chk.Outcome == OutcomeMatch:
		log.Debug("primary verified", "computed", want == "", "bytes_read", chk.BytesRead)
	default:
		log.Warn("primary verification failed", "outcome", chk.Outcome.String(), "failure", f.Failure)
	}
	return nil
}

var errChanged = errors.New("verify: primary changed")

// sameETag compares ETags as S3 (quoted) and events (unquoted) spell them;
// an unknown ETag on either side is not a difference.
func sameETag(a, b string) bool {
	a, b = strings.Trim(a, `"`), strings.Trim(b, `"`)
	return a == "" || b == "" || a == b
}
