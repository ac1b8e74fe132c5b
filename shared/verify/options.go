package verify

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/dispatch"
	"github.com/geoblob/geoblob/shared/registry"
)

// Defaults of Options.
const (
	DefaultConcurrency      = 10 // Geo's verification concurrency
	DefaultBatchSize        = 20
	DefaultBudget           = 10 * time.Minute // leaves 5 of Lambda's 15 minutes for in-flight checks
	DefaultTimeout          = time.Hour
	DefaultReverifyInterval = 90 * 24 * time.Hour
	DefaultSpreadFraction   = 0.10
	DefaultBackoffCap       = registry.DefaultVerificationBackoffCap
	DefaultWindow           = 100 // verification claims in flight when dispatching
	// DefaultDeadlineMargin is kept free before the invocation's deadline
	// for the checks in flight when claiming stops.
	DefaultDeadlineMargin = time.Minute
)

// Options tune a Verifier. Zero fields take the defaults.
type Options struct {
	// Mode is the default mode; TypeModes override it per data type.
	Mode      Mode
	TypeModes map[string]Mode
	// Concurrency caps the objects checked at once; BatchSize is the number
	// of rows claimed per query.
	Concurrency int
	BatchSize   int
	// Budget bounds a pass: no claim is made after it is spent.
	Budget time.Duration
	// DeadlineMargin: when the context has a deadline (a Lambda
	// invocation's), no claim is made later than this before it, so the
	// checks in flight finish (and record their results) instead of being
	// cut off mid-hash. Default DefaultDeadlineMargin.
	DeadlineMargin time.Duration
	// Timeout: claims started longer ago are recovered.
	Timeout time.Duration
	// ReverifyInterval is the maximum age of a verification; ReverifySpread
	// how much earlier (stable per row, in [0, spread)) rows may come due.
	ReverifyInterval time.Duration
	ReverifySpread   time.Duration
	// Primary turns primary checksumming and reverification on (NoPrimary
	// off): the zero value verifies primaries.
	NoPrimary bool
	// PassLog, when set, records every pass's outcome (registry.JobVerify)
	// for the health check and the console.
	PassLog PassLog
	// BackoffCap (GEOBLOB_VERIFY_BACKOFF_CAP) caps the registry's retry
	// policy for failed verifications: the wiring builds
	// registry.Options.VerificationRetry from it (see RetryPolicy). The
	// Verifier itself computes no retry times.
	BackoffCap time.Duration
	// Now is the clock of the pass budget (default time.Now); the times
	// written to the registry come from the registry's clock.
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Dispatcher, when set, makes passes dispatch their claims to the
	// verify workers (see HandleRequests) instead of checking them, with at
	// most Window claims in flight (GEOBLOB_VERIFY_WINDOW, default 100),
	// looking again every PollInterval (default DefaultPollInterval) while
	// the window is full.
	Dispatcher   Dispatcher
	Window       int
	PollInterval time.Duration
	// QueueURL is GEOBLOB_VERIFY_QUEUE_URL: Build makes the Dispatcher
	// from it.
	QueueURL string
}

func (o Options) withDefaults() (Options, error) {
	if o.Mode == "" {
		o.Mode = ModeDeep
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return o, err
	}
	for t, m := range o.TypeModes {
		if _, err := ParseMode(string(m)); err != nil {
			return o, fmt.Errorf("%w (type %s)", err, t)
		}
	}
	config.Default(&o.Concurrency, DefaultConcurrency)
	config.Default(&o.BatchSize, DefaultBatchSize)
	config.Default(&o.Budget, DefaultBudget)
	config.Default(&o.DeadlineMargin, DefaultDeadlineMargin)
	config.Default(&o.Timeout, DefaultTimeout)
	config.Default(&o.ReverifyInterval, DefaultReverifyInterval)
	if o.ReverifySpread < 0 || o.ReverifySpread >= o.ReverifyInterval {
		return o, fmt.Errorf("%w: reverify spread %s must be at least 0 and below the interval %s", ErrInvalid, o.ReverifySpread, o.ReverifyInterval)
	}
	config.Default(&o.BackoffCap, DefaultBackoffCap)
	if o.Now == nil {
		o.Now = time.Now
	}
	config.Default(&o.Window, DefaultWindow)
	config.Default(&o.PollInterval, DefaultPollInterval)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// RetryPolicy is the registry retry policy of failed verifications these
// options ask for: Geo's backoff capped at BackoffCap (DefaultBackoffCap
// when unset).
func (o Options) RetryPolicy() registry.RetryPolicy {
	c := o.BackoffCap
	if c <= 0 {
		c = DefaultBackoffCap
	}
	return registry.GeoBackoff{Cap: c, MissingCap: c}
}

// modeFor returns the mode of a data type.
func (o Options) modeFor(dataType string) Mode {
	if m, ok := o.TypeModes[dataType]; ok {
		return m
	}
	return o.Mode
}

// OptionsFromEnv reads the GEOBLOB_VERIFY_* variables (see Reference)
// through getenv. reverifyInterval is GEOBLOB_REVERIFY_INTERVAL as read by
// shared/config. Every problem is reported, each naming its variable.
func OptionsFromEnv(getenv func(string) string, reverifyInterval time.Duration) (Options, error) {
	if reverifyInterval <= 0 {
		reverifyInterval = DefaultReverifyInterval
	}
	env := config.NewEnv(getenv, ErrInvalid)
	fail, str := env.Fail, env.Str
	integer := func(name string, def, lo, hi int) int { return int(env.Int(name, int64(def), int64(lo), int64(hi))) }
	duration := env.Duration
	o := Options{
		Mode:             ModeDeep,
		Concurrency:      integer("GEOBLOB_VERIFY_CONCURRENCY", DefaultConcurrency, 1, 1000),
		BatchSize:        integer("GEOBLOB_VERIFY_BATCH_SIZE", DefaultBatchSize, 1, 10_000),
		Budget:           duration("GEOBLOB_VERIFY_BUDGET", DefaultBudget),
		Timeout:          duration("GEOBLOB_VERIFY_TIMEOUT", DefaultTimeout),
		ReverifyInterval: reverifyInterval,
	}
	if v := str("GEOBLOB_VERIFY_MODE"); v != "" {
		m, err := ParseMode(v)
		if err != nil {
			fail("GEOBLOB_VERIFY_MODE", "must be deep or fast, got %q", v)
		}
		o.Mode = m
	}
	if v := str("GEOBLOB_VERIFY_TYPE_MODES"); v != "" {
		var raw map[string]string
		if err := json.Unmarshal([]byte(v), &raw); err != nil {
			fail("GEOBLOB_VERIFY_TYPE_MODES", "must be a JSON object of data type to deep or fast: %v", err)
		}
		o.TypeModes = map[string]Mode{}
		for t, s := range raw {
			m, err := ParseMode(s)
			if err != nil {
				fail("GEOBLOB_VERIFY_TYPE_MODES", "type %s: must be deep or fast, got %q", t, s)
				continue
			}
			o.TypeModes[t] = m
		}
	}
	spread, err := parseSpread(str("GEOBLOB_VERIFY_REVERIFY_SPREAD"), reverifyInterval)
	if err != nil {
		fail("GEOBLOB_VERIFY_REVERIFY_SPREAD", "%v", err)
	}
	o.ReverifySpread = spread
	o.BackoffCap = duration("GEOBLOB_VERIFY_BACKOFF_CAP", DefaultBackoffCap)
	o.NoPrimary = !env.Bool("GEOBLOB_VERIFY_PRIMARY", true)
	o.Window = integer("GEOBLOB_VERIFY_WINDOW", DefaultWindow, 1, 1_000_000)
	if v := str("GEOBLOB_VERIFY_QUEUE_URL"); v != "" {
		if !dispatch.ValidQueueURL(v) {
			fail("GEOBLOB_VERIFY_QUEUE_URL", "must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), got %q", v)
		}
		o.QueueURL = v
	}
	if err := env.Err(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// parseSpread reads "10%" (of interval) or a duration below interval; ""
// gives DefaultSpreadFraction of interval.
func parseSpread(v string, interval time.Duration) (time.Duration, error) {
	if v == "" {
		return time.Duration(float64(interval) * DefaultSpreadFraction), nil
	}
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f >= 100 {
			return 0, fmt.Errorf("must be a percentage from 0%% to below 100%% or a duration, got %q", v)
		}
		return time.Duration(float64(interval) * f / 100), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d >= interval {
		return 0, fmt.Errorf("must be a duration from 0 to below GEOBLOB_REVERIFY_INTERVAL (%s) or a percentage, got %q", interval, v)
	}
	return d, nil
}
