package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// ErrMismatch is returned when the secondary differs from the primary.
var ErrMismatch = errors.New("devstack: secondary differs from primary")

// ErrTimeout is returned (wrapped) when replication did not finish in time.
var ErrTimeout = errors.New("devstack: replication did not finish in time")

// ErrNotVerified is returned (wrapped) when a live file is not verified.
var ErrNotVerified = errors.New("devstack: files not verified")

// Catalog returns the data-type catalog the stack's functions use (the
// stack's configuration plus any GEOBLOB_* tuning in the environment).
func (s Settings) Catalog() (*datatype.Catalog, error) {
	cfg, err := config.FromEnv(s.Getenv(os.Getenv))
	if err != nil {
		return nil, fmt.Errorf("devstack: configuration: %w", err)
	}
	cat, err := cfg.Catalog()
	if err != nil {
		return nil, fmt.Errorf("devstack: catalog: %w", err)
	}
	return cat, nil
}

// Status prints the per-type table of the stack in dir.
func Status(ctx context.Context, dir string, out io.Writer) error {
	s, err := LoadSettings(dir)
	if err != nil {
		return err
	}
	return s.PrintStatus(ctx, out)
}

// PrintStatus prints the per-type table from the registry's counters.
func (s Settings) PrintStatus(ctx context.Context, out io.Writer) error {
	cat, err := s.Catalog()
	if err != nil {
		return err
	}
	reg, closeReg, err := s.OpenRegistry(ctx)
	if err != nil {
		return err
	}
	defer closeReg()
	stats, err := reg.TypeStatus(ctx)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := WriteStatus(out, cat.Names(), stats); err != nil {
		return err
	}
	baselines, err := reg.ProgressBaselines(ctx, registry.ProgressWindow)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	fmt.Fprintln(out, "backlog:", registry.SiteProgress(time.Now(), stats, baselines))
	c, err := sqsspool.CountSpool(s.SpoolDir(), s.DeadLetterDir())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "events: %d queued in the spool (%d retrying), %d dead letters", c.Queued, c.Retrying, c.DeadLetters)
	if c.DeadLetters > 0 {
		fmt.Fprintf(out, " in %s (each with a .reason.txt; `geoblob backfill` reconciles what they missed)", s.DeadLetterDir())
	}
	fmt.Fprintln(out)
	return nil
}

// DemoOptions configure Demo.
type DemoOptions struct {
	Settings Settings
	Events   EventsRunner
	// Timeout bounds the wait for replication (default 3 minutes).
	Timeout time.Duration
	// ExtraPerType is how many files per type to add beyond its examples.
	ExtraPerType int
	// BigSize is the size of the one large file (0: none).
	BigSize int
	Out     io.Writer
	Logger  *slog.Logger
	// Functions, when enabled, runs the demo's backfill and verify passes
	// by invoking the backfill and verify function binaries under the
	// emulator (on demand, as `aws lambda invoke` would) instead of in this
	// process.
	Functions FunctionsOptions
}

// demoDeleteKey is uploaded and deleted again to show deletes replicating.
const demoDeleteKey = "generic/demo/1.0.0/deleted-again.bin"

// demoBeforeKeys are uploaded while the primary's notifications are off,
// like files that were in the bucket before geoblob was deployed: no event
// announces them, the backfill pass must find them.
var demoBeforeKeys = []string{
	"generic/before-events/1.0.0/before-events-a.bin",
	"generic/before-events/1.0.0/before-events-b.bin",
}

// Demo brings the stack up, uploads two files with the primary's
// notifications off (files from before geoblob), uploads sample files of
// every data type, deletes one again, waits until the registry shows the
// evented ones replicated, runs one backfill pass (which must replicate the
// files no event announced) and verify passes, prints the per-type table
// and a byte-for-byte comparison of both buckets, and says how to continue
// by hand. It returns an error wrapping ErrMismatch when the buckets
// differ, ErrTimeout when replication does not finish within the timeout,
// and ErrNotVerified unless every live file is verified. The stack stays up.
func Demo(ctx context.Context, opts DemoOptions) error {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Minute
	}
	fmt.Fprintf(out, "== 1. local stack (%s)\n", opts.Settings.Dir)
	st, err := Up(ctx, UpOptions{Settings: opts.Settings, Events: opts.Events, Detach: true, Out: out, Logger: opts.Logger})
	if err != nil {
		return err
	}
	s := st.Settings
	PrintAccess(out, s)

	cat, err := s.Catalog()
	if err != nil {
		return err
	}
	files, err := samples.ForCatalog(cat, samples.Set{ExtraPerType: opts.ExtraPerType, BigSize: opts.BigSize, Odd: true})
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	for i := range files {
		if files[i].Size == 0 {
			files[i].Size = demoSize(i)
		}
	}
	before, beforeStarted, err := uploadWithoutEvents(ctx, s, cat, out)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\n== 3. upload %d package files of %d data types to s3://%s (%s)\n", len(files), len(cat.Names()), s.PrimaryBucket, s.PrimaryEndpoint())
	started, total, err := upload(ctx, s.Bucket(Primary), files, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "uploaded %d files, %s\n", len(files), HumanBytes(total))
	del := samples.File{Key: demoDeleteKey, Size: 1024}
	var delStart time.Time
	if t, ok := cat.Match(demoDeleteKey); ok {
		del.DataType = t.Name
		delStart = time.Now()
		body, err := del.Body()
		if err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
		if err := s.Bucket(Primary).Put(ctx, del.Key, body, ""); err != nil {
			return err
		}
		if err := s.Bucket(Primary).Delete(ctx, del.Key); err != nil {
			return err
		}
		fmt.Fprintf(out, "uploaded and deleted %s again (the delete must reach the secondary too)\n", del.Key)
	}

	path := "lambda JSON path -> handler (in-process)"
	if opts.Functions.Enabled() {
		path = "onCreate/onDelete function processes under aws-lambda-rie, logs in " + s.FunctionLogDir()
	}
	fmt.Fprintf(out, "\n== 4. wait for replication (events: MinIO webhook -> %s -> spool %s -> SQS event -> %s)\n", s.EventsURL(), s.SpoolDir(), path)
	reg, closeReg, err := s.OpenRegistry(ctx)
	if err != nil {
		return err
	}
	defer closeReg()
	if err := waitSynced(ctx, reg, s.Bucket(Secondary), files, started, del, delStart, opts.Timeout, out); err != nil {
		return err
	}

	cfg, err := config.FromEnv(s.Getenv(os.Getenv))
	if err != nil {
		return fmt.Errorf("devstack: configuration: %w", err)
	}
	var fns *Functions
	if opts.Functions.Enabled() {
		if fns, err = StartFunctions(ctx, opts.Functions, FunctionEnv(s, os.Environ()),
			filepath.Join(s.FunctionLogDir(), "on-demand"), FnBackfill, FnVerify); err != nil {
			return err
		}
		defer fns.Close()
	}
	fmt.Fprintf(out, "\n== 5. one backfill pass (the scheduled function: registers what no event announced, syncs what is due)\n")
	if err := demoBackfill(ctx, cfg, s.Getenv(os.Getenv), fns, opts.Logger, out); err != nil {
		return err
	}
	if err := waitSynced(ctx, reg, s.Bucket(Secondary), before, beforeStarted, samples.File{}, time.Time{}, opts.Timeout, out); err != nil {
		return fmt.Errorf("files uploaded without events were not backfilled: %w", err)
	}

	fmt.Fprintf(out, "\n== 6. verify pass (the scheduled function: re-reads every secondary copy and compares its SHA-256)\n")
	if err := demoVerify(ctx, cfg, s.Getenv(os.Getenv), fns, opts.Timeout, opts.Logger, out); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n== 7. registry (per data type)\n")
	if err := s.PrintStatus(ctx, out); err != nil {
		return err
	}
	stats, err := reg.TypeStatus(ctx)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	var unverified []string
	for _, st := range stats {
		if st.Verified != st.Rows {
			unverified = append(unverified, fmt.Sprintf("%s: %d of %d verified", st.DataType, st.Verified, st.Rows))
		}
	}

	fmt.Fprintf(out, "\n== 8. byte-for-byte comparison of s3://%s and s3://%s (size and SHA-256 of every object)\n", s.PrimaryBucket, s.SecondaryBucket)
	cmp, err := Compare(ctx, s.Bucket(Primary), s.Bucket(Secondary))
	if err != nil {
		return err
	}
	if err := cmp.Write(out, true); err != nil {
		return err
	}
	if n := len(cmp.Mismatches()); n > 0 {
		PrintHowTo(out, s)
		return fmt.Errorf("%w: %d object(s)", ErrMismatch, n)
	}
	if len(unverified) > 0 {
		PrintHowTo(out, s)
		return fmt.Errorf("%w: %s", ErrNotVerified, strings.Join(unverified, "; "))
	}
	fmt.Fprintf(out, "every file replicated and verified: VERIFIED == FILES for every data type\n")
	PrintHowTo(out, s)
	return nil
}

// uploadWithoutEvents turns the primary's notifications off, uploads the
// demoBeforeKeys (with content new on every run, so each run has work for
// backfill) and turns notifications back on.
func uploadWithoutEvents(ctx context.Context, s Settings, cat *datatype.Catalog, out io.Writer) ([]samples.File, map[string]time.Time, error) {
	fmt.Fprintf(out, "\n== 2. upload %d files with the primary's notifications off (files from before geoblob: no event will announce them)\n", len(demoBeforeKeys))
	b := s.Bucket(Primary)
	if err := b.setNotifications(ctx, false); err != nil {
		return nil, nil, err
	}
	var files []samples.File
	started := map[string]time.Time{}
	var errs []error
	for i, key := range demoBeforeKeys {
		t, ok := cat.Match(key)
		if !ok {
			continue
		}
		f := samples.File{Key: key, DataType: t.Name, Size: 8<<10 + i}
		body, err := f.Body()
		if err != nil {
			errs = append(errs, fmt.Errorf("devstack: %w", err))
			break
		}
		body = append(body, []byte(time.Now().Format(time.RFC3339Nano))...)
		started[key] = time.Now()
		if err := b.Put(ctx, key, body, ""); err != nil {
			errs = append(errs, err)
			break
		}
		files = append(files, f)
		fmt.Fprintf(out, "uploaded %s (%s) without an event\n", key, HumanBytes(int64(len(body))))
	}
	// Notifications back on whatever happened.
	errs = append(errs, b.setNotifications(ctx, true))
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return files, started, nil
}

// demoBackfill runs one backfill pass and prints its summary.
func demoBackfill(ctx context.Context, cfg config.Config, getenv func(string) string, fns *Functions, logger *slog.Logger, out io.Writer) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var rep backfill.Report
	var err error
	if fns != nil {
		err = invokeFor(ctx, fns.Get(FnBackfill), []byte(`{"relist":true}`), &rep)
	} else {
		svc, buildErr := app.BuildBackfill(ctx, cfg, getenv, logger, nil)
		if buildErr != nil {
			return fmt.Errorf("devstack: %w", buildErr)
		}
		defer svc.Close()
		rep, err = svc.Runner.Run(ctx, backfill.Request{Relist: true})
	}
	rc := rep.Reconcile
	skipped := ""
	if rc.Skipped != "" {
		skipped = " (listing skipped: " + rc.Skipped + "; the daemon's scheduled pass is running it)"
	}
	fmt.Fprintf(out, "backfill: listed %d objects, registered %d new, %d changed, %d deletes propagated%s; synced %d, failed %d, in %s\n",
		rc.Listed, rc.Registered, rc.Changed, rc.DeletesQueued, skipped, rep.Sync.Synced, rep.Sync.Failed, rep.Elapsed.Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("devstack: backfill pass: %w", err)
	}
	return nil
}

// demoVerify runs verify passes until nothing is due and every live file
// is verified (the daemon's scheduled pass may hold some rows for a
// moment), at most until timeout, then prints verify's per-type table.
func demoVerify(ctx context.Context, cfg config.Config, getenv func(string) string, fns *Functions, timeout time.Duration, logger *slog.Logger, out io.Writer) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	svc, err := app.BuildVerify(ctx, cfg, getenv, logger)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	defer svc.Close()
	deadline := time.Now().Add(timeout)
	var (
		total verify.Report
		sums  []verify.Summary
	)
	run := func() (verify.Report, error) { return svc.Run(ctx, verify.RunOptions{}) }
	if fns != nil {
		run = func() (rep verify.Report, err error) {
			return rep, invokeFor(ctx, fns.Get(FnVerify), []byte(`{}`), &rep)
		}
	}
	for {
		rep, err := run()
		if err != nil {
			return fmt.Errorf("devstack: verify pass: %w", err)
		}
		total = total.Add(rep)
		if rep.Secondary.Checked+rep.Primary.Checked > 0 && !rep.BudgetExhausted {
			continue
		}
		if sums, err = svc.Store.VerificationSummaries(ctx); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
		if allVerified(sums) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := verify.WriteSummary(out, total, sums); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if !allVerified(sums) {
		return fmt.Errorf("%w within %s (see the table above)", ErrNotVerified, timeout)
	}
	return nil
}

func allVerified(sums []verify.Summary) bool {
	for _, s := range sums {
		if s.Verified != s.Files || s.PrimaryMismatch > 0 {
			return false
		}
	}
	return true
}

// demoSize gives the demo's files varied, realistic sizes (1 KiB .. 1 MiB).
func demoSize(i int) int {
	sizes := []int{1 << 10, 7 << 10, 24 << 10, 96 << 10, 300 << 10, 1 << 20, 3 << 10}
	return sizes[i%len(sizes)]
}

// upload puts the files with a few workers and a progress line; it returns
// when each upload started (the sync must be newer) and the bytes uploaded.
func upload(ctx context.Context, b Bucket, files []samples.File, out io.Writer) (map[string]time.Time, int64, error) {
	var (
		mu      sync.Mutex
		started = make(map[string]time.Time, len(files))
		total   int64
		done    int
		errs    []error
		wg      sync.WaitGroup
		work    = make(chan samples.File)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				body, err := f.Body()
				if err == nil {
					t := time.Now()
					err = b.Put(ctx, f.Key, body, f.ContentType)
					mu.Lock()
					started[f.Key] = t
					mu.Unlock()
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done++
					total += int64(len(body))
					fmt.Fprintf(out, "\ruploading %d/%d", done, len(files))
				}
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	fmt.Fprintln(out)
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	return started, total, ctx.Err()
}

// waitSynced polls the registry until every file's row is synced by a copy
// that started after its upload, and the deleted key is tombstoned and gone
// from the secondary.
func waitSynced(ctx context.Context, reg *registry.Store, secondary Bucket, files []samples.File, started map[string]time.Time,
	del samples.File, delStart time.Time, timeout time.Duration, out io.Writer) error {
	deadline := time.Now().Add(timeout)
	begin := time.Now()
	pending := map[string]samples.File{}
	for _, f := range files {
		pending[f.Key] = f
	}
	delDone := del.DataType == ""
	var last map[string]registry.Row
	for {
		last = map[string]registry.Row{}
		failed := 0
		for key, f := range pending {
			row, err := reg.Get(ctx, f.DataType, key)
			if errors.Is(err, registry.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("devstack: %w", err)
			}
			last[key] = row
			if row.State == registry.StateSynced && !row.Tombstoned() && row.LastSyncedAt != nil && !row.LastSyncedAt.Before(started[key]) {
				delete(pending, key)
			} else if row.State == registry.StateFailed {
				failed++
			}
		}
		if !delDone {
			row, err := reg.Get(ctx, del.DataType, del.Key)
			if err == nil && row.Tombstoned() && row.State == registry.StateSynced && !row.UpdatedAt.Before(delStart) {
				exists, err := secondary.Exists(ctx, del.Key)
				if err != nil {
					return err
				}
				delDone = !exists
			}
		}
		synced := len(files) - len(pending)
		fmt.Fprintf(out, "\rreplicated %d/%d files, %d failed (retrying), delete propagated: %v  [%.1fs]   ", synced, len(files), failed, delDone, time.Since(begin).Seconds())
		if len(pending) == 0 && delDone {
			fmt.Fprintln(out)
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(out)
			var lines []string
			for key := range pending {
				row, ok := last[key]
				switch {
				case !ok:
					lines = append(lines, fmt.Sprintf("  %q: no registry row (no event arrived; is the event daemon up? see its log)", key))
				default:
					lines = append(lines, fmt.Sprintf("  %q: %s, retries %d, last failure %q", key, row.State, row.RetryCount, row.LastSyncFailure))
				}
			}
			if !delDone {
				lines = append(lines, fmt.Sprintf("  %q: delete not propagated", del.Key))
			}
			sort.Strings(lines)
			return fmt.Errorf("%w (%s): %d not replicated:\n%s", ErrTimeout, timeout, len(lines), strings.Join(lines, "\n"))
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// invokeFor invokes fn on demand (an empty request: the configured
// defaults) and decodes its report into report.
func invokeFor(ctx context.Context, fn sqsspool.Invoker, payload []byte, report any) error {
	out, err := fn.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, report); err != nil {
		return fmt.Errorf("devstack: report: %w: %.200s", err, out)
	}
	return nil
}
