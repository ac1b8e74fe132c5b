package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/sigv4proxy"
	"github.com/geoblob/geoblob/shared/api"
	"github.com/geoblob/geoblob/shared/registry"
)

const apiUsage = `  status -json  the operator API's status (per-type counters, passes, health) as JSON
  list          registry rows of the operator API with filters (-type, -state, -failed, ...)
  resync        resync rows: by id, or in bulk (-all, -failed or the filter flags; -yes to run)
  reverify      reverify rows: by id, or in bulk (like resync)
  dr-report     DR readiness: RPO, objects a failover now would lose or serve stale, verification coverage (-format table|json|csv)
  console       serve the operator console on 127.0.0.1 in the foreground (-aws URL: a deployed stack's, requests signed with your AWS credentials)
`

// apiClient calls the operator API (shared/api), over HTTP (-url) or
// in-process on the local stack's registry: the same handler, the same
// requests either way.
type apiClient struct {
	base string
	hc   *http.Client
}

// handlerTransport serves requests with an in-process handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// newAPIClient returns a client of the API at base ("" = in-process on the
// stack in dir) and a func to release it.
func newAPIClient(ctx context.Context, dir, base string, logger *slog.Logger) (*apiClient, func(), error) {
	if base != "" {
		hc := &http.Client{Timeout: time.Minute}
		if u, err := url.Parse(base); err == nil {
			if _, err := sigv4proxy.RegionOf(u); err == nil {
				// A deployed stack's function URL (AWS_IAM): sign every call.
				if hc.Transport, err = sigv4proxy.NewTransport(ctx, u, ""); err != nil {
					return nil, nil, err
				}
			}
		}
		return &apiClient{base: strings.TrimSuffix(base, "/"), hc: hc}, func() {}, nil
	}
	_, h, closeConsole, err := devstack.OpenConsole(ctx, dir, logger)
	if err != nil {
		return nil, nil, err
	}
	return &apiClient{base: "http://geoblob.invalid", hc: &http.Client{Transport: handlerTransport{h}}}, closeConsole, nil
}

func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("api %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("api %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusServiceUnavailable {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("api %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// filterFlags are the registry filters of list, resync and reverify.
type filterFlags struct {
	dataType, state, vstate, prefix, contains  *string
	failedOnly, missing, quarantined, mismatch *bool
}

func addFilterFlags(fs *flag.FlagSet) filterFlags {
	return filterFlags{
		dataType:    fs.String("type", "", "data type (e.g. npm_package_file)"),
		state:       fs.String("state", "", "replication state: pending, started, synced, failed"),
		vstate:      fs.String("verification-state", "", "verification state: pending, started, succeeded, failed, disabled"),
		prefix:      fs.String("prefix", "", "keys starting with"),
		contains:    fs.String("contains", "", "keys containing"),
		failedOnly:  fs.Bool("failed-only", false, "sync or verification failed"),
		missing:     fs.Bool("missing", false, "missing on the primary"),
		quarantined: fs.Bool("quarantined", false, "quarantined rows"),
		mismatch:    fs.Bool("mismatch", false, "checksum mismatch"),
	}
}

func (f filterFlags) filter() registry.Filter {
	return registry.Filter{DataType: *f.dataType, State: *f.state, VerificationState: *f.vstate,
		KeyPrefix: *f.prefix, KeyContains: *f.contains, FailedOnly: *f.failedOnly,
		MissingOnPrimary: *f.missing, Quarantined: *f.quarantined, ChecksumMismatch: *f.mismatch}
}

func (f filterFlags) query() url.Values {
	v := url.Values{}
	flt := f.filter()
	for k, s := range map[string]string{"data_type": flt.DataType, "state": flt.State, "verification_state": flt.VerificationState,
		"key_prefix": flt.KeyPrefix, "key_contains": flt.KeyContains} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for k, b := range map[string]bool{"failed_only": flt.FailedOnly, "missing_on_primary": flt.MissingOnPrimary,
		"quarantined": flt.Quarantined, "checksum_mismatch": flt.ChecksumMismatch} {
		if b {
			v.Set(k, "true")
		}
	}
	return v
}

// runAPICommand runs status -json, list, resync, reverify and console.
func runAPICommand(ctx context.Context, cmd string, fs *flag.FlagSet, dir *string, args []string, stdout io.Writer, logger *slog.Logger) error {
	base := fs.String("url", "", "operator API base URL (e.g. the daemon's console http://127.0.0.1:9400); default: in-process on the local stack")
	// connect parses the flags and opens the API client.
	connect := func() (*apiClient, func(), error) {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		return newAPIClient(ctx, *dir, *base, logger)
	}
	switch cmd {
	case "status":
		asJSON := fs.Bool("json", false, "print the operator API's status as JSON")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if !*asJSON && *base == "" {
			return devstack.Status(ctx, *dir, stdout)
		}
		c, done, err := newAPIClient(ctx, *dir, *base, logger)
		if err != nil {
			return err
		}
		defer done()
		return show(ctx, c, "/api/v1/status", *asJSON, stdout, writeStatusTable)
	case "list":
		ff := addFilterFlags(fs)
		sort := fs.String("sort", "id", "id, last_synced (synced rows only) or verified_at (verified rows only)")
		order := fs.String("order", "", "asc or desc (default: the sort's)")
		limit := fs.Int("limit", 50, "rows per page")
		after := fs.String("after", "", "cursor of the next page (printed after a page)")
		asJSON := fs.Bool("json", false, "print the API's JSON")
		c, done, err := connect()
		if err != nil {
			return err
		}
		defer done()
		q := ff.query()
		q.Set("sort", *sort)
		q.Set("limit", strconv.Itoa(*limit))
		if *order != "" {
			q.Set("order", *order)
		}
		if *after != "" {
			q.Set("after", *after)
		}
		return show(ctx, c, "/api/v1/rows?"+q.Encode(), *asJSON, stdout, writeRows)
	case "resync", "reverify":
		ff := addFilterFlags(fs)
		all := fs.Bool("all", false, "bulk: every row (of -type, else of every type)")
		failed := fs.Bool("failed", false, "bulk: rows whose sync (resync) or verification (reverify) failed")
		yes := fs.Bool("yes", false, "bulk: run it (without -yes only the dry-run count is printed)")
		wait := fs.Bool("wait", true, "bulk: wait for the operation to end, printing progress")
		c, done, err := connect()
		if err != nil {
			return err
		}
		defer done()
		if fs.NArg() > 0 {
			for _, a := range fs.Args() {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil {
					return fmt.Errorf("%s: %q is not a row id", cmd, a)
				}
				var res api.ActionJSON
				if err := c.call(ctx, "POST", fmt.Sprintf("/api/v1/rows/%d/%s", id, cmd), nil, &res); err != nil {
					return err
				}
				what := "unchanged"
				if res.Changed {
					what = "changed"
				}
				fmt.Fprintf(stdout, "%s %d %s/%s: %s (replication %s, verification %s)\n", cmd, id, res.Row.DataType, res.Row.ObjectKey,
					what, res.Row.State, res.Row.VerificationState)
			}
			return nil
		}
		req := api.BulkRequest{Action: cmd, Scope: "filter", Filter: ff.filter(), DryRun: true}
		switch {
		case *all && *failed:
			return errors.New("-all and -failed exclude each other")
		case *all:
			req.Scope = "all"
		case *failed:
			req.Scope = "failed"
		case req.Filter == (registry.Filter{}) || req.Filter == (registry.Filter{DataType: req.Filter.DataType}):
			return fmt.Errorf("%s needs row ids, -all, -failed or a filter flag", cmd)
		}
		var dry api.DryRunJSON
		if err := c.call(ctx, "POST", "/api/v1/bulk", req, &dry); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s: %s rows would change (filter %+v)\n", cmd, req.Scope, humanize.Comma(dry.Rows), dry.Filter)
		if !*yes {
			fmt.Fprintln(stdout, "dry run: add -yes to run it")
			return nil
		}
		req.DryRun = false
		var op registry.BulkOperation
		if err := c.call(ctx, "POST", "/api/v1/bulk", req, &op); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "bulk operation %d started (%s rows planned)\n", op.ID, humanize.Comma(op.Planned))
		for *wait && op.State == registry.BulkRunning {
			select {
			case <-ctx.Done():
				fmt.Fprintf(stdout, "stopped waiting; the operation goes on (geoblob list, or the console's /bulk/%d)\n", op.ID)
				return nil
			case <-time.After(500 * time.Millisecond):
			}
			if err := c.call(ctx, "GET", fmt.Sprintf("/api/v1/bulk/%d", op.ID), nil, &op); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  %s of %s rows changed, %d batches\n", humanize.Comma(op.Changed), humanize.Comma(op.Planned), op.Batches)
		}
		fmt.Fprintf(stdout, "bulk operation %d %s: %s rows changed in %d batches (longest %.0f ms)\n",
			op.ID, op.State, humanize.Comma(op.Changed), op.Batches, op.LongestBatchMS)
		return nil
	case "dr-report":
		return runDRReport(ctx, fs, *dir, base, args, stdout, logger)
	case "console":
		listen := fs.String("listen", "", "127.0.0.1 address to serve on (default: the stack's console port + 1; with -aws 127.0.0.1:9480)")
		awsURL := fs.String("aws", "", "function URL of a deployed stack (output OperatorApiUrl): serve its console here, every request signed with SigV4 from your AWS credentials")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *awsURL != "" {
			return awsConsole(ctx, *awsURL, *listen, stdout, logger)
		}
		return devstack.Console(ctx, *dir, *listen, func(u string) {
			fmt.Fprintf(stdout, "geoblob console: %s   (Ctrl-C stops it)\n", u)
		}, logger)
	}
	return fmt.Errorf("unknown API command %q", cmd)
}

// show GETs path and prints the API's JSON as it is (asJSON) or through
// write.
func show[T any](ctx context.Context, c *apiClient, path string, asJSON bool, out io.Writer, write func(io.Writer, T) error) error {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", path, nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := out.Write(raw)
		return err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("api GET %s: %w", path, err)
	}
	return write(out, v)
}

func writeStatusTable(out io.Writer, s api.StatusJSON) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "TYPE\tROWS\tSYNCED\tQUEUED\tSTARTED\tFAILED\tVERIFIED\tV-FAILED\tMISMATCH\tMISSING\tQUARANTINED\tREPLICATED\tPENDING\tOLDEST UNSYNCED\tBACKLOG\t")
	for _, t := range s.Types {
		// the age travels as seconds (TypeStatus.OldestUnsyncedAge is not on the wire)
		age := time.Duration(t.OldestUnsyncedAgeSeconds * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", t.DataType, t.Rows, t.Synced, t.Pending, t.Started,
			t.Failed, t.Verified, t.VerificationFailed, t.ChecksumMismatch, t.MissingOnPrimary, t.Quarantined,
			humanize.IBytes(uint64(max(t.BytesSynced, 0))), humanize.IBytes(uint64(max(t.BytesPending, 0))),
			age, t.Progress)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "backlog: %s\n", s.Progress)
	for _, p := range s.Passes {
		outcome := "ok"
		if !p.OK {
			outcome = "failed: " + p.Error
		}
		fmt.Fprintf(out, "last %s pass: %s, %s\n", p.Job, p.FinishedAt.UTC().Format(time.RFC3339), outcome)
	}
	if s.DeadLetters != nil {
		fmt.Fprintf(out, "dead letters: %d\n", *s.DeadLetters)
	}
	fmt.Fprintf(out, "health: %s\n", s.Health.Verdict)
	for _, c := range s.Health.Checks {
		if c.Status != "ok" {
			fmt.Fprintf(out, "  %s: %s (%s)\n", c.Name, c.Detail, c.Hint)
		}
	}
	return nil
}

func writeRows(out io.Writer, l api.ListJSON) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tSTATE\tVERIFICATION\tRETRIES\tSIZE\tLAST SYNCED\tKEY\tFAILURE")
	for _, r := range l.Rows {
		synced := "never"
		if r.LastSyncedAt != nil {
			synced = humanize.Time(*r.LastSyncedAt)
		}
		failure := r.LastSyncFailure
		if r.VerificationFailure != "" {
			failure = strings.TrimPrefix(failure+"; "+r.VerificationFailure, "; ")
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%q\t%s\n", r.ID, r.DataType, r.State, r.VerificationState, r.RetryCount,
			humanize.IBytes(uint64(max(r.Size, 0))), synced, r.ObjectKey, failure)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if l.Next != "" {
		fmt.Fprintf(out, "more: add -after %s\n", l.Next)
	}
	return nil
}

// awsConsole serves the console of the deployed stack at function URL
// target on listen (127.0.0.1 only), signing every request with the
// operator's own credentials (standard chain); the browser holds none.
func awsConsole(ctx context.Context, target, listen string, stdout io.Writer, logger *slog.Logger) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("-aws: %w", err)
	}
	rt, err := sigv4proxy.NewTransport(ctx, u, "")
	if err != nil {
		return err
	}
	if listen == "" {
		listen = "127.0.0.1:9480"
	}
	fmt.Fprintf(stdout, "geoblob console: http://%s/   (%s, signed with your AWS credentials; Ctrl-C stops it)\n", listen, u.Host)
	return devstack.ServeConsole(ctx, listen, sigv4proxy.Proxy(u, rt), logger)
}
