// Package health is geoblob's health check (Geo's gitlab:geo:check): it
// checks what replication needs — valid configuration, a reachable and
// migrated registry, both buckets reachable with the permissions the
// functions use, notifications configured on the primary, recent and
// successful backfill and verify passes, no dead letters, and a clock in
// step with S3 — and reports one result per check with a fix hint.
// `geoblob check` prints the report and GET /api/v1/health returns it.
package health

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/registry"
)

// Status is the outcome of one check.
type Status string

// Check outcomes.
const (
	// StatusOK: the condition holds.
	StatusOK Status = "ok"
	// StatusFail: the condition does not hold; Hint says what to do.
	StatusFail Status = "fail"
)

// Names of the checks, in report order.
const (
	CheckConfig        = "config"
	CheckRegistry      = "registry"
	CheckMigrations    = "migrations"
	CheckPrimary       = "primary_bucket"
	CheckSecondary     = "secondary_bucket"
	CheckNotifications = "notifications"
	CheckBackfillPass  = "backfill_pass"
	CheckVerifyPass    = "verify_pass"
	CheckDeadLetters   = "dead_letters"
	CheckClockSkew     = "clock_skew"
	CheckDeleteBrake   = "delete_brake"
)

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Hint says how to fix a failure (empty when ok).
	Hint string `json:"hint,omitempty"`
}

// Report is the outcome of every check.
type Report struct {
	// OK is true when every check passed.
	OK        bool      `json:"ok"`
	CheckedAt time.Time `json:"checked_at"`
	Checks    []Result  `json:"checks"`
}

// Failed returns the failed checks.
func (r Report) Failed() []Result {
	var out []Result
	for _, c := range r.Checks {
		if c.Status != StatusOK {
			out = append(out, c)
		}
	}
	return out
}

// Registry is the registry as the checks read it; *registry.Store
// satisfies it.
type Registry interface {
	// SchemaVersion returns the applied and the embedded schema versions.
	SchemaVersion(ctx context.Context) (applied, embedded int64, err error)
	// Passes returns the last pass of every job.
	Passes(ctx context.Context) ([]registry.Pass, error)
	// BrakeStatus returns the tripped delete-brake scopes and held deletes.
	BrakeStatus(ctx context.Context) (registry.BrakeStatus, error)
}

// Primary is the primary bucket as the checks probe it; *blobstore.Store
// satisfies it.
type Primary interface {
	Bucket() string
	List(ctx context.Context, opts blobstore.ListOptions, fn func(page []blobstore.Object) error) error
	Head(ctx context.Context, key string) (blobstore.Object, error)
	Notifications(ctx context.Context) (blobstore.Notifications, error)
	ServerTime(ctx context.Context) (time.Time, error)
}

// Secondary is the secondary bucket as the checks probe it;
// *blobstore.Store satisfies it.
type Secondary interface {
	Bucket() string
	List(ctx context.Context, opts blobstore.ListOptions, fn func(page []blobstore.Object) error) error
	Head(ctx context.Context, key string) (blobstore.Object, error)
	Put(ctx context.Context, key string, body io.Reader, size int64, attrs blobstore.PutAttrs) (blobstore.PutResult, error)
	Delete(ctx context.Context, key string) error
}

// DeadLetters counts the events that could not be delivered.
type DeadLetters interface {
	// DeadLetters returns how many messages wait in the dead-letter
	// queue(s) and where they are (shown in the report).
	DeadLetters(ctx context.Context) (n int64, where string, err error)
}

var (
	_ Registry  = (*registry.Store)(nil)
	_ Primary   = (*blobstore.Store)(nil)
	_ Secondary = (*blobstore.Store)(nil)
)

// Defaults of Options.
const (
	DefaultBackfillMaxAge = 10 * time.Minute
	DefaultVerifyMaxAge   = 30 * time.Minute
	DefaultMaxClockSkew   = 60 * time.Second
	DefaultCheckTimeout   = 15 * time.Second
)

// ProbePrefix is the key prefix of the secondary's probe objects (no data
// type matches it, so replication ignores them).
const ProbePrefix = ".geoblob-health/"

// Options are the checker's dependencies; the zero durations take the
// defaults.
type Options struct {
	// ConfigErr is the error of loading the configuration; when set, only
	// the config check runs (nothing else can be built).
	ConfigErr error
	Registry  Registry
	Primary   Primary
	Secondary Secondary
	// ReadOnly probes the secondary with list and head only (the api
	// function's role may not write); otherwise a probe object is put,
	// read back and deleted, exercising what onCreate and onDelete do.
	ReadOnly bool
	// DeadLetters, when nil, makes the dead-letter check fail: no source
	// is configured, so nothing proves the queues are empty.
	DeadLetters DeadLetters
	// BackfillMaxAge and VerifyMaxAge: the last successful pass must have
	// finished within this long.
	BackfillMaxAge, VerifyMaxAge time.Duration
	// MaxClockSkew bounds |S3 Date − local clock|.
	MaxClockSkew time.Duration
	// CheckTimeout bounds each check.
	CheckTimeout time.Duration
	// Now is the local clock (default time.Now); tests skew it.
	Now func() time.Time
}

// Checker runs the checks.
type Checker struct{ o Options }

// New returns a Checker; it fails when a dependency is missing (unless
// ConfigErr is set).
func New(o Options) (*Checker, error) {
	if o.ConfigErr == nil && (o.Registry == nil || o.Primary == nil || o.Secondary == nil) {
		return nil, errors.New("health: Registry, Primary and Secondary are required")
	}
	config.Default(&o.BackfillMaxAge, DefaultBackfillMaxAge)
	config.Default(&o.VerifyMaxAge, DefaultVerifyMaxAge)
	config.Default(&o.MaxClockSkew, DefaultMaxClockSkew)
	config.Default(&o.CheckTimeout, DefaultCheckTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Checker{o: o}, nil
}

// Run runs every check and returns the report. It never fails: a check
// that cannot run is a failed check.
func (c *Checker) Run(ctx context.Context) Report {
	rep := Report{CheckedAt: c.o.Now().UTC()}
	add := func(r Result) { rep.Checks = append(rep.Checks, r) }
	if c.o.ConfigErr != nil {
		add(fail(CheckConfig, c.o.ConfigErr.Error(),
			"fix the variables named above (README: Configuration) and run again"))
		return rep
	}
	add(ok(CheckConfig, "every variable valid"))

	var (
		passes   []registry.Pass
		passErr  error
		applied  int64
		embedded int64
	)
	c.timed(ctx, func(ctx context.Context) {
		applied, embedded, passErr = c.o.Registry.SchemaVersion(ctx)
	})
	if passErr != nil {
		add(fail(CheckRegistry, passErr.Error(),
			"start the database or fix GEOBLOB_DATABASE_URL / GEOBLOB_DATABASE_SECRET_ARN and the network path to it"))
		add(fail(CheckMigrations, "not checked: registry unreachable", "fix the registry check first"))
	} else {
		add(ok(CheckRegistry, "reachable"))
		switch {
		case applied == embedded:
			add(ok(CheckMigrations, fmt.Sprintf("schema version %d is current", applied)))
		case applied < embedded:
			add(fail(CheckMigrations, fmt.Sprintf("schema version %d, this build needs %d", applied, embedded),
				"run the migrations (functions/migrate in AWS runs on deploy; locally: geoblob up)"))
		default:
			add(fail(CheckMigrations, fmt.Sprintf("schema version %d is newer than this build's %d", applied, embedded),
				"deploy the build that migrated the registry (the functions are older than the schema)"))
		}
		c.timed(ctx, func(ctx context.Context) { passes, passErr = c.o.Registry.Passes(ctx) })
	}

	add(c.checkPrimary(ctx))
	add(c.checkSecondary(ctx))
	add(c.checkNotifications(ctx))
	for _, j := range []struct {
		check, job string
		maxAge     time.Duration
		hint       string
	}{
		{CheckBackfillPass, registry.JobBackfill, c.o.BackfillMaxAge,
			"check that the backfill schedule is enabled and read the backfill function's logs (locally: geoblob backfill)"},
		{CheckVerifyPass, registry.JobVerify, c.o.VerifyMaxAge,
			"check that the verify schedule is enabled and read the verify function's logs (locally: geoblob verify)"},
	} {
		add(c.checkPass(j.check, j.job, j.maxAge, j.hint, passes, passErr))
	}
	add(c.checkDeadLetters(ctx))
	add(c.checkClock(ctx))
	if reachable := passErr == nil || applied != 0; reachable {
		add(c.checkBrake(ctx))
	} else {
		add(fail(CheckDeleteBrake, "not checked: registry unreachable", "fix the registry check first"))
	}

	rep.OK = len(rep.Failed()) == 0
	return rep
}

func (c *Checker) timed(ctx context.Context, fn func(context.Context)) {
	ctx, cancel := context.WithTimeout(ctx, c.o.CheckTimeout)
	defer cancel()
	fn(ctx)
}

var errStop = errors.New("stop")

func (c *Checker) checkPrimary(ctx context.Context) (res Result) {
	c.timed(ctx, func(ctx context.Context) {
		b := c.o.Primary.Bucket()
		var first string
		err := c.o.Primary.List(ctx, blobstore.ListOptions{PageSize: 1}, func(page []blobstore.Object) error {
			first = page[0].Key
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			res = fail(CheckPrimary, "list "+b+": "+err.Error(),
				"check that the bucket exists and is reachable (GEOBLOB_PRIMARY_BUCKET, _REGION, _ENDPOINT) and that the role may s3:ListBucket")
			return
		}
		key, wantFound := first, true
		if key == "" {
			key, wantFound = ProbePrefix+"absent-"+token(), false
		}
		_, err = c.o.Primary.Head(ctx, key)
		switch {
		case err == nil && wantFound, errors.Is(err, blobstore.ErrNotFound) && !wantFound:
			res = ok(CheckPrimary, "list and head on "+b)
		default:
			res = fail(CheckPrimary, "head "+b+"/"+key+": "+errText(err),
				"grant s3:GetObject on the primary's objects to the functions' roles")
		}
	})
	return res
}

func (c *Checker) checkSecondary(ctx context.Context) (res Result) {
	c.timed(ctx, func(ctx context.Context) {
		b := c.o.Secondary.Bucket()
		if err := c.o.Secondary.List(ctx, blobstore.ListOptions{PageSize: 1}, func([]blobstore.Object) error { return errStop }); err != nil && !errors.Is(err, errStop) {
			res = fail(CheckSecondary, "list "+b+": "+err.Error(),
				"check that the bucket exists and is reachable (GEOBLOB_SECONDARY_BUCKET, _REGION, _ENDPOINT) and that the role may s3:ListBucket")
			return
		}
		key := ProbePrefix + "probe-" + token()
		if c.o.ReadOnly {
			if _, err := c.o.Secondary.Head(ctx, key); !errors.Is(err, blobstore.ErrNotFound) {
				res = fail(CheckSecondary, "head "+b+"/"+key+": "+errText(err), "grant s3:GetObject on the secondary's objects")
				return
			}
			res = ok(CheckSecondary, "list and head on "+b+" (read-only probe: this role may not write)")
			return
		}
		body := []byte("geoblob health probe\n")
		if _, err := c.o.Secondary.Put(ctx, key, strings.NewReader(string(body)), int64(len(body)), blobstore.PutAttrs{}); err != nil {
			res = fail(CheckSecondary, "put "+b+"/"+key+": "+err.Error(),
				"grant s3:PutObject and s3:PutObjectTagging on the secondary to the replicating roles")
			return
		}
		obj, herr := c.o.Secondary.Head(ctx, key)
		derr := c.o.Secondary.Delete(context.WithoutCancel(ctx), key)
		switch {
		case herr != nil:
			res = fail(CheckSecondary, "head "+b+"/"+key+": "+herr.Error(), "grant s3:GetObject on the secondary's objects")
		case obj.Size != int64(len(body)):
			res = fail(CheckSecondary, fmt.Sprintf("probe read back with %d bytes, wrote %d", obj.Size, len(body)),
				"the secondary does not store what it is sent: check the endpoint")
		case derr != nil:
			res = fail(CheckSecondary, "delete "+b+"/"+key+": "+derr.Error(),
				"grant s3:DeleteObject on the secondary to the onDelete role")
		default:
			res = ok(CheckSecondary, "put, head and delete of a probe object on "+b)
		}
	})
	return res
}

func (c *Checker) checkNotifications(ctx context.Context) (res Result) {
	c.timed(ctx, func(ctx context.Context) {
		b := c.o.Primary.Bucket()
		n, err := c.o.Primary.Notifications(ctx)
		hint := "enable EventBridge notifications on the primary (the PrimaryStack does) or, locally, run geoblob up again (it configures MinIO's webhook)"
		switch {
		case err != nil:
			res = fail(CheckNotifications, "read the notification configuration of "+b+": "+err.Error(),
				"grant s3:GetBucketNotification on the primary; "+hint)
		case n.EventBridge:
			res = ok(CheckNotifications, b+" sends every event to EventBridge")
		case len(n.Created) > 0 && len(n.Removed) > 0:
			res = ok(CheckNotifications, fmt.Sprintf("%s sends ObjectCreated to %s and ObjectRemoved to %s",
				b, strings.Join(n.Created, ", "), strings.Join(n.Removed, ", ")))
		case len(n.Created) > 0:
			res = fail(CheckNotifications, b+" sends ObjectCreated but no ObjectRemoved events: deletes reach the secondary only through backfill", hint)
		default:
			res = fail(CheckNotifications, b+" sends no ObjectCreated notifications: new blobs are replicated only by backfill", hint)
		}
	})
	return res
}

func (c *Checker) checkPass(name, job string, maxAge time.Duration, hint string, passes []registry.Pass, err error) Result {
	if err != nil {
		return fail(name, "not checked: "+err.Error(), "fix the registry check first")
	}
	now := c.o.Now()
	for _, p := range passes {
		if p.Job != job {
			continue
		}
		if !p.OK {
			last := "never succeeded"
			if p.LastOKAt != nil {
				last = "last success " + age(now, *p.LastOKAt) + " ago"
			}
			return fail(name, fmt.Sprintf("last pass %s ago failed: %s (%s)", age(now, p.FinishedAt), p.Error, last), hint)
		}
		if a := now.Sub(p.FinishedAt); a > maxAge {
			return fail(name, fmt.Sprintf("last pass finished %s ago, more than %s", age(now, p.FinishedAt), maxAge), hint)
		}
		return ok(name, fmt.Sprintf("last pass finished %s ago and succeeded (%d passes, %d failed)", age(now, p.FinishedAt), p.Passes, p.Failures))
	}
	return fail(name, "no "+job+" pass has run", hint)
}

func (c *Checker) checkDeadLetters(ctx context.Context) (res Result) {
	if c.o.DeadLetters == nil {
		return fail(CheckDeadLetters, "no dead-letter queue configured to count",
			"set GEOBLOB_DEAD_LETTER_QUEUES to the dead-letter queue URLs (the stack sets it on the api function)")
	}
	c.timed(ctx, func(ctx context.Context) {
		n, where, err := c.o.DeadLetters.DeadLetters(ctx)
		switch {
		case err != nil:
			res = fail(CheckDeadLetters, "count dead letters in "+where+": "+err.Error(),
				"grant sqs:GetQueueAttributes on the dead-letter queues (locally: check the stack directory)")
		case n > 0:
			res = fail(CheckDeadLetters, fmt.Sprintf("%d dead letters in %s", n, where),
				"read why they failed (the message and its reason), fix the cause, then redrive them or run a backfill pass, which registers what they announced")
		default:
			res = ok(CheckDeadLetters, "none in "+where)
		}
	})
	return res
}

// checkBrake fails while the delete brake is tripped or deletes are held:
// the secondary may be keeping objects the primary lost (a disaster) or
// deletes an operator must let through.
func (c *Checker) checkBrake(ctx context.Context) (res Result) {
	c.timed(ctx, func(ctx context.Context) {
		st, err := c.o.Registry.BrakeStatus(ctx)
		switch {
		case err != nil:
			res = fail(CheckDeleteBrake, err.Error(), "fix the registry check first")
		case len(st.Tripped) > 0 || st.HeldTotal > 0:
			var scopes []string
			for _, sc := range st.Tripped {
				scopes = append(scopes, fmt.Sprintf("%s: %s", sc.Scope, sc.Reason))
			}
			detail := fmt.Sprintf("%d deletes held", st.HeldTotal)
			if len(scopes) > 0 {
				detail = "tripped (" + strings.Join(scopes, "; ") + "); " + detail
			}
			res = fail(CheckDeleteBrake, detail,
				"find out why the primary lost objects; then geoblob brake release (the deletes were intended) or geoblob brake discard (keep the secondary copies; geoblob restore brings them back)")
		default:
			res = ok(CheckDeleteBrake, "armed, no deletes held")
		}
	})
	return res
}

func (c *Checker) checkClock(ctx context.Context) (res Result) {
	c.timed(ctx, func(ctx context.Context) {
		server, err := c.o.Primary.ServerTime(ctx)
		if err != nil {
			res = fail(CheckClockSkew, "read the S3 Date header: "+err.Error(), "fix the primary bucket check first")
			return
		}
		skew := c.o.Now().Sub(server)
		detail := fmt.Sprintf("local clock %s S3's Date header by %s", direction(skew), absDur(skew).Round(time.Second))
		if absDur(skew) >= c.o.MaxClockSkew {
			res = fail(CheckClockSkew, detail+fmt.Sprintf(", limit %s", c.o.MaxClockSkew),
				"synchronise the clock (NTP/chrony); skewed clocks break request signing and the registry's timestamps")
			return
		}
		res = ok(CheckClockSkew, detail)
	})
	return res
}

// WriteText prints the report, one line per check with its hint on
// failure, and a verdict line.
func WriteText(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		mark := "OK  "
		if c.Status != StatusOK {
			mark = "FAIL"
		}
		line := fmt.Sprintf("%s\t%s\t%s", mark, c.Name, c.Detail)
		if c.Hint != "" {
			line += "\t-> " + c.Hint
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	verdict := "healthy"
	if !r.OK {
		verdict = fmt.Sprintf("unhealthy: %d of %d checks failed", len(r.Failed()), len(r.Checks))
	}
	if _, err := fmt.Fprintln(w, verdict); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}

func ok(name, detail string) Result { return Result{Name: name, Status: StatusOK, Detail: detail} }

func fail(name, detail, hint string) Result {
	return Result{Name: name, Status: StatusFail, Detail: detail, Hint: hint}
}

func errText(err error) string {
	if err == nil {
		return "found (expected not found)"
	}
	return err.Error()
}

func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func age(now, t time.Time) string { return now.Sub(t).Round(time.Second).String() }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func direction(d time.Duration) string {
	if d < 0 {
		return "behind"
	}
	return "ahead of"
}

// DeadLetters returns the checker's dead-letter source (nil when none is
// configured), so a status page can show the same count.
func (c *Checker) DeadLetters() DeadLetters { return c.o.DeadLetters }
