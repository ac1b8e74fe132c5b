package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dustin/go-humanize"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
)

// Service is a Verifier wired from configuration (app.BuildVerify), with
// the store it uses.
type Service struct {
	*Verifier
	Store *registry.Store
	// Release, when set, is called by Close (the wiring's database pool).
	Release func()
}

// Close releases what the wiring opened for the service.
func (s *Service) Close() {
	if s.Release != nil {
		s.Release()
	}
}

// Request is the input of the verify function: an EventBridge Scheduler or
// scheduled-rule event (whose other fields are ignored) or an on-demand
// request such as {"mode":"deep","budget":"10m"}.
type Request struct {
	// Mode "deep" or "fast" overrides the configured modes for this pass.
	Mode string `json:"mode,omitempty"`
	// Budget is a Go duration replacing GEOBLOB_VERIFY_BUDGET for this pass.
	Budget string `json:"budget,omitempty"`
}

// ParseRequest decodes a function payload into RunOptions. An empty
// payload, null or a scheduler event gives the configured defaults.
func ParseRequest(payload []byte) (RunOptions, error) {
	var ro RunOptions
	if len(strings.TrimSpace(string(payload))) == 0 {
		return ro, nil
	}
	var req Request
	if err := json.Unmarshal(payload, &req); err != nil {
		return ro, fmt.Errorf("%w: request: %v", ErrInvalid, err)
	}
	if req.Mode != "" {
		m, err := ParseMode(req.Mode)
		if err != nil {
			return ro, err
		}
		ro.Mode = m
	}
	if req.Budget != "" {
		d, err := time.ParseDuration(req.Budget)
		if err != nil || d <= 0 {
			return ro, fmt.Errorf("%w: request: budget must be a positive Go duration such as 10m, got %q", ErrInvalid, req.Budget)
		}
		ro.Budget = d
	}
	return ro, nil
}

// Handle is the Lambda handler of both verify roles. An SQS event (from
// the verification queue's event source mapping) is worker work: see
// HandleRequests; the answer is the batch's partial failures. Anything
// else is a pass with the request's options (a schedule, or on demand),
// which dispatches to the workers when GEOBLOB_VERIFY_QUEUE_URL is set;
// the answer is its Report. A pass fails (so the invocation is reported as
// failed) only for an invalid request or a registry error; objects that
// fail verification are recorded on their rows and counted in the report.
func (s *Service) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	if events.IsSQSEvent(payload) {
		resp, _, err := s.HandleRequests(ctx, payload)
		return resp, err
	}
	ro, err := ParseRequest(payload)
	if err != nil {
		return Report{}, err
	}
	return s.Run(ctx, ro)
}

// ErrNotVerified is returned by RunUntilDone when live files remain that
// are not verified.
var ErrNotVerified = errors.New("verify: files not verified")

// RunUntilDone runs passes until one finds nothing due (at most maxPasses),
// then prints the per-type verification table to out. It returns an error
// wrapping ErrNotVerified when a live, synced file is not verified (the
// table says which types). The local stack's `make verify` and `make demo`
// call it.
func (s *Service) RunUntilDone(ctx context.Context, ro RunOptions, maxPasses int, out io.Writer) (Report, error) {
	var total Report
	for i := 0; i < max(maxPasses, 1); i++ {
		rep, err := s.Run(ctx, ro)
		if err != nil {
			return total, err
		}
		total = total.Add(rep)
		if rep.Secondary.Checked+rep.Primary.Checked == 0 && !rep.BudgetExhausted {
			break
		}
	}
	sums, err := s.Store.VerificationSummaries(ctx)
	if err != nil {
		return total, err
	}
	if err := WriteSummary(out, total, sums); err != nil {
		return total, fmt.Errorf("verify: print: %w", err)
	}
	var bad []string
	for _, sm := range sums {
		if sm.Verified != sm.Files || sm.PrimaryMismatch > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d of %d verified, %d mismatched, %d primary flagged",
				sm.DataType, sm.Verified, sm.Files, sm.ChecksumMismatch, sm.PrimaryMismatch))
		}
	}
	if len(bad) > 0 {
		return total, fmt.Errorf("%w: %s", ErrNotVerified, strings.Join(bad, "; "))
	}
	return total, nil
}

// Add returns the sum of two pass reports: counts, recoveries, dispatches
// and time added up; Started is r's (o's when r is the zero Report, the
// start of a sum), BudgetExhausted o's (the later pass's).
func (r Report) Add(o Report) Report {
	add := func(x, y Counts) Counts {
		return Counts{
			Checked: x.Checked + y.Checked, Matched: x.Matched + y.Matched, Mismatched: x.Mismatched + y.Mismatched,
			Missing: x.Missing + y.Missing, Errors: x.Errors + y.Errors, Resynced: x.Resynced + y.Resynced,
			Stale: x.Stale + y.Stale, Fast: x.Fast + y.Fast, BytesRead: x.BytesRead + y.BytesRead,
		}
	}
	r.Secondary = add(r.Secondary, o.Secondary)
	r.Primary = add(r.Primary, o.Primary)
	if r.Started.IsZero() {
		r.Started = o.Started
	}
	r.Recovered += o.Recovered
	r.Dispatched += o.Dispatched
	r.WindowWaits += o.WindowWaits
	r.Elapsed += o.Elapsed
	r.BudgetExhausted = o.BudgetExhausted
	return r
}

// WriteSummary prints what a pass did and the per-type verification table.
func WriteSummary(out io.Writer, rep Report, sums []Summary) error {
	fmt.Fprintf(out, "verification: secondary %d checked (%d verified, %d mismatched, %d missing, %d errors, %d sent to resync, %d by stored checksum), %s read\n",
		rep.Secondary.Checked, rep.Secondary.Matched, rep.Secondary.Mismatched, rep.Secondary.Missing,
		rep.Secondary.Errors, rep.Secondary.Resynced, rep.Secondary.Fast, bytesText(rep.Secondary.BytesRead))
	fmt.Fprintf(out, "              primary %d checked (%d ok, %d changed without an event, %d missing, %d errors), %s read\n",
		rep.Primary.Checked, rep.Primary.Matched, rep.Primary.Mismatched, rep.Primary.Missing,
		rep.Primary.Errors, bytesText(rep.Primary.BytesRead))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data type\tfiles\tsynced\tverified\tfailed\tmismatch\tpending\tprimary sha\tprimary flagged\t")
	var tot Summary
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.DataType, s.Files, s.Synced, s.Verified,
			s.VerifyFailed, s.ChecksumMismatch, s.VerifyPending, s.PrimaryChecksum, s.PrimaryMismatch)
		tot.Files += s.Files
		tot.Synced += s.Synced
		tot.Verified += s.Verified
		tot.VerifyFailed += s.VerifyFailed
		tot.ChecksumMismatch += s.ChecksumMismatch
		tot.VerifyPending += s.VerifyPending
		tot.PrimaryChecksum += s.PrimaryChecksum
		tot.PrimaryMismatch += s.PrimaryMismatch
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", tot.Files, tot.Synced, tot.Verified,
		tot.VerifyFailed, tot.ChecksumMismatch, tot.VerifyPending, tot.PrimaryChecksum, tot.PrimaryMismatch)
	return tw.Flush()
}

func bytesText(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// DefaultMaxPasses bounds the passes of a local `geoblob verify` run
// (RunUntilDone).
const DefaultMaxPasses = 5
