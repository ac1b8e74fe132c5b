package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"

	"github.com/geoblob/geoblob/shared/dispatch"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
)

// Dispatcher sends verification requests to the queue the verify workers
// consume; *dispatch.SQS satisfies it, and the local stack plugs its SQS
// stand-in in.
type Dispatcher interface {
	// SendVerify enqueues the requests. On error some may have been sent
	// (a duplicate request is harmless: a worker takes a claim over with a
	// compare-and-set on its token).
	SendVerify(ctx context.Context, reqs []events.VerifyRequest) error
}

var _ Dispatcher = (*dispatch.SQS)(nil)

// DefaultPollInterval is how long a dispatching pass waits when its window
// is full before it counts the claims in flight again.
const DefaultPollInterval = 250 * time.Millisecond

// WithDispatcher returns a Verifier like v whose passes dispatch to d with
// at most window verification claims in flight (<= 0: the configured
// Options.Window) instead of checking in process (the local stack plugs its
// queue in this way; in AWS, Build does it from GEOBLOB_VERIFY_QUEUE_URL).
func (v *Verifier) WithDispatcher(d Dispatcher, window int) *Verifier {
	c := *v
	c.opts.Dispatcher = d
	if window > 0 {
		c.opts.Window = window
	}
	c.stats = &workerStats{}
	return &c
}

// sideClaim is a verification claim and the side it is for.
type sideClaim struct {
	side  events.VerifySide
	claim registry.Claim
}

// dispatchPass is a pass when a Dispatcher is configured: it claims due
// rows of both sides (alternating which side goes first, so neither
// starves) and sends one verification request per claim to the workers,
// never letting the verification claims in flight (the registry's count,
// queued and running alike) exceed Options.Window, the workers' cap. When
// the window is full it waits; it ends when neither side has due rows or
// at the deadline. A request whose worker dies is recovered by the next
// pass's RecoverVerification after Options.Timeout.
func (v *Verifier) dispatchPass(ctx context.Context, ro RunOptions, deadline time.Time, rep *Report, log *slog.Logger) error {
	var round atomic.Int64
	w := dispatch.Window[sideClaim]{
		Size:     int64(v.opts.Window),
		Batch:    v.opts.BatchSize,
		InFlight: v.store.CountVerifying,
		Claim: func(ctx context.Context, n int) ([]sideClaim, bool, error) {
			sides := []events.VerifySide{events.SideSecondary, events.SidePrimary}
			if round.Add(1)%2 == 0 {
				sides[0], sides[1] = sides[1], sides[0]
			}
			var out []sideClaim
			for _, side := range sides {
				if len(out) >= n || (side == events.SidePrimary && v.opts.NoPrimary) {
					continue
				}
				o := v.claimOptions()
				o.Limit = n - len(out)
				claim := v.store.ClaimSecondary
				if side == events.SidePrimary {
					claim = v.store.ClaimPrimary
				}
				claims, err := claim(ctx, o)
				if err != nil {
					return out, false, errors.Join(err, v.releaseAll(ctx, out))
				}
				for _, c := range claims {
					out = append(out, sideClaim{side: side, claim: c})
				}
			}
			return out, false, nil
		},
		Send: func(ctx context.Context, claims []sideClaim) error {
			reqs := make([]events.VerifyRequest, len(claims))
			for i, c := range claims {
				reqs[i] = events.VerifyRequest{DataType: c.claim.DataType, Key: c.claim.ObjectKey, Side: c.side,
					Generation: c.claim.Generation, ClaimedAt: c.claim.ClaimedAt(), Mode: string(ro.Mode)}
			}
			err := v.opts.Dispatcher.SendVerify(ctx, reqs)
			if err == nil {
				return nil
			}
			// Give the claims back so they are due at once (a request that
			// did get through and was taken over is left alone: the release
			// compares the claim's token).
			return fmt.Errorf("verify: dispatch %d verification requests: %w", len(reqs), errors.Join(err, v.releaseAll(ctx, claims)))
		},
		Wait: func(ctx context.Context) bool {
			t := time.NewTimer(v.opts.PollInterval)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			}
			return v.opts.Now().Before(deadline)
		},
		Expired: func() bool { return !v.opts.Now().Before(deadline) },
	}
	stats, err := w.Run(ctx)
	rep.Dispatched, rep.WindowWaits = stats.Claimed, stats.Waits
	rep.BudgetExhausted = ctx.Err() != nil || !v.opts.Now().Before(deadline)
	log.Info("verify dispatch", "dispatched", stats.Claimed, "rounds", stats.Rounds, "window", v.opts.Window,
		"window_waits", stats.Waits, "budget_exhausted", rep.BudgetExhausted)
	return err
}

// releaseAll gives claims back without a result.
func (v *Verifier) releaseAll(ctx context.Context, claims []sideClaim) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	for _, c := range claims {
		release := v.store.ReleaseSecondary
		if c.side == events.SidePrimary {
			release = v.store.ReleasePrimary
		}
		errs = append(errs, release(wctx, c.claim))
	}
	return errors.Join(errs...)
}

// WorkReport is what a worker invocation did with its requests.
type WorkReport struct {
	Messages  int    `json:"messages"`
	Requests  int    `json:"requests"`
	Dropped   int64  `json:"dropped"`   // claim gone (finished, recovered, duplicate): nothing hashed
	Rejected  int    `json:"rejected"`  // messages that are not verification requests (reported as failed)
	Secondary Counts `json:"secondary"` // checks made
	Primary   Counts `json:"primary"`
}

// WorkerStats are a Verifier's own counters of the checks it made (in
// process or as a worker), for tests and capacity measurements.
type WorkerStats struct {
	InFlight int64 // checks running now
	Peak     int64 // most checks ever running at once (never above Concurrency)
	Checks   int64 // checks made in all (each one read of an object, or one stored-checksum look-up)
	Dropped  int64 // requests whose claim was gone: nothing read
}

// workerStats are the live counters behind WorkerStats.
type workerStats struct {
	inFlight, peak, checks, dropped atomic.Int64
}

// begin counts a check starting and returns the func that ends it.
func (s *workerStats) begin() func() {
	n := s.inFlight.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	s.checks.Add(1)
	return func() { s.inFlight.Add(-1) }
}

// Stats returns the Verifier's own counters.
func (v *Verifier) Stats() WorkerStats {
	return WorkerStats{InFlight: v.stats.inFlight.Load(), Peak: v.stats.peak.Load(),
		Checks: v.stats.checks.Load(), Dropped: v.stats.dropped.Load()}
}

// HandleRequests is the verify worker: payload is an SQS event whose
// messages carry verification requests (events.VerifyRequest; or one such
// message delivered directly). Each request's claim is taken over
// (AcceptSecondaryClaim / AcceptPrimaryClaim) and checked exactly as an
// in-process pass checks it, at most Options.Concurrency at once; a
// request whose claim is gone is dropped without reading anything. A
// message fails (SQS retries it, then its dead-letter queue keeps it)
// when it is not a verification request or the registry failed; an error
// is returned only for a payload that is not an event at all or, delivered
// directly, failed.
func (v *Verifier) HandleRequests(ctx context.Context, payload []byte) (lambdaevents.SQSEventResponse, WorkReport, error) {
	resp := lambdaevents.SQSEventResponse{BatchItemFailures: []lambdaevents.SQSBatchItemFailure{}}
	var rep WorkReport
	b, err := events.Parse(payload)
	if err != nil {
		return resp, rep, fmt.Errorf("verify: worker: %w", err)
	}
	log := v.opts.Logger.With("component", "verify", "role", "worker")
	rep.Messages = len(b.Messages)
	failed := make([]atomic.Bool, len(b.Messages))
	var (
		sec, pri counters
		dropped  atomic.Int64
	)
	sem := make(chan struct{}, v.opts.Concurrency)
	var wg sync.WaitGroup
	for i, m := range b.Messages {
		if other := len(m.Events) + len(m.Syncs) + len(m.Unsupported) + len(m.Invalid) + m.Skipped; m.Err != nil || other > 0 {
			failed[i].Store(true)
			rep.Rejected++
			log.Error("not a verification request message; failed (its dead-letter queue keeps it)",
				"message_id", m.ID, "error", m.Err, "other_records", other)
			continue
		}
		rep.Requests += len(m.Verifies)
		for _, r := range m.Verifies {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				gone, err := v.perform(ctx, r, &sec, &pri, log)
				if gone {
					dropped.Add(1)
				}
				if err != nil {
					failed[i].Store(true)
					log.Error("verification request failed; the message is retried", "message_id", m.ID,
						"data_type", r.DataType, "key", r.Key, "side", r.Side, "error", err)
				}
			}()
		}
	}
	wg.Wait()
	rep.Secondary, rep.Primary = sec.snapshot(), pri.snapshot()
	rep.Dropped = dropped.Load()
	var errs []error
	for i, m := range b.Messages {
		if !failed[i].Load() {
			continue
		}
		if m.ID != "" {
			resp.BatchItemFailures = append(resp.BatchItemFailures, lambdaevents.SQSBatchItemFailure{ItemIdentifier: m.ID})
		}
		errs = append(errs, fmt.Errorf("message %q failed", m.ID))
	}
	log.Info("verify worker done", "messages", rep.Messages, "requests", rep.Requests, "dropped", rep.Dropped,
		"rejected", rep.Rejected, "failed", len(errs), "secondary", rep.Secondary, "primary", rep.Primary)
	if !b.FromSQS && len(errs) > 0 {
		return resp, rep, fmt.Errorf("verify: worker: %w", errors.Join(errs...))
	}
	return resp, rep, nil
}

// perform takes the claim of one request over and checks it; gone is true
// when the claim was gone and the request was dropped.
func (v *Verifier) perform(ctx context.Context, r events.VerifyRequest, sec, pri *counters, log *slog.Logger) (gone bool, err error) {
	accept, cnt, check := v.store.AcceptSecondaryClaim, sec, v.verifySecondary
	if r.Side == events.SidePrimary {
		accept, cnt, check = v.store.AcceptPrimaryClaim, pri, v.verifyPrimary
	}
	c, ok, err := accept(ctx, r.DataType, r.Key, r.Generation, r.ClaimedAt)
	if err != nil {
		return false, err
	}
	if !ok {
		v.stats.dropped.Add(1)
		log.Debug("verification request's claim is gone (finished, recovered or a duplicate); dropped",
			"data_type", r.DataType, "key", r.Key, "side", r.Side, "generation", r.Generation, "claimed_at", r.ClaimedAt)
		return true, nil
	}
	return false, check(ctx, c, Mode(r.Mode), cnt, log)
}
