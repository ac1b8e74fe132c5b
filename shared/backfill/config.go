package backfill

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/dispatch"
)

// Phase names a unit of backfill work.
type Phase string

// Phases, in the order a pass runs them.
const (
	PhaseRecover   Phase = "recover"   // rows stuck in started -> failed with a due retry
	PhaseReconcile Phase = "reconcile" // register unannounced objects, propagate lost deletes
	PhaseSync      Phase = "sync"      // copy pending and due-failed rows
	PhaseOrphans   Phase = "orphans"   // secondary objects without a primary (report or delete)
)

var allPhases = []Phase{PhaseRecover, PhaseReconcile, PhaseSync, PhaseOrphans}

// OrphanMode says what the orphans phase does with secondary objects that
// have no primary counterpart.
type OrphanMode string

// Orphan modes.
const (
	OrphansOff    OrphanMode = "off"
	OrphansReport OrphanMode = "report" // dry run: count and log them
	OrphansDelete OrphanMode = "delete"
)

// Config is backfill's validated configuration.
type Config struct {
	Budget      time.Duration
	Phases      []Phase
	Inventory   *S3URL // nil: reconcile lists the primary bucket
	BatchSize   int
	ClaimSize   int
	MaxAttempts int
	Orphans     OrphanMode
	// RelistInterval: a completed listing pass is not restarted before it.
	RelistInterval time.Duration
	// SyncQueueURL: sync dispatches to this queue (empty: sync copies in
	// process).
	SyncQueueURL string
	// Window is the most sync claims in flight the dispatcher fills up to.
	Window int
	// DispatchLease is how long a sent sync request keeps its row from
	// being sent again and counts in the window; a request not taken up
	// by a worker within it (lost, dead-lettered) is sent again.
	DispatchLease time.Duration
}

// S3URL is a parsed s3://bucket/key location.
type S3URL struct {
	Bucket string
	Key    string
}

// String returns the s3:// form.
func (u S3URL) String() string { return "s3://" + u.Bucket + "/" + u.Key }

// DefaultConfig returns the defaults of Vars.
func DefaultConfig() Config {
	return Config{
		Budget:      10 * time.Minute,
		Phases:      []Phase{PhaseRecover, PhaseReconcile, PhaseSync},
		BatchSize:   10_000,
		ClaimSize:   50,
		MaxAttempts: 10,
		Orphans:     OrphansOff,

		RelistInterval: time.Hour,
		Window:         100,
		DispatchLease:  5 * time.Minute,
	}
}

// ConfigFromEnv reads the GEOBLOB_BACKFILL_* variables through getenv.
// Every problem is reported, each naming its variable and wrapping
// ErrInvalidConfig.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	env := config.NewEnv(getenv, ErrInvalidConfig)
	fail, get := env.Fail, env.Str
	integer := func(name string, def, lo, hi int) int { return int(env.Int(name, int64(def), int64(lo), int64(hi))) }
	c.Budget = env.Duration("GEOBLOB_BACKFILL_BUDGET", c.Budget)
	if v := get("GEOBLOB_BACKFILL_PHASES"); v != "" {
		ps, err := ParsePhases(strings.Split(v, ","))
		if err != nil {
			fail("GEOBLOB_BACKFILL_PHASES", "%v", err)
		} else {
			c.Phases = ps
		}
	}
	if v := get("GEOBLOB_BACKFILL_INVENTORY"); v != "" {
		u, err := ParseS3URL(v)
		if err != nil {
			fail("GEOBLOB_BACKFILL_INVENTORY", "%v", err)
		} else {
			c.Inventory = &u
		}
	}
	c.BatchSize = integer("GEOBLOB_BACKFILL_BATCH_SIZE", c.BatchSize, 1, 1_000_000)
	c.ClaimSize = integer("GEOBLOB_BACKFILL_CLAIM_SIZE", c.ClaimSize, 1, 10_000)
	c.MaxAttempts = integer("GEOBLOB_BACKFILL_MAX_ATTEMPTS", c.MaxAttempts, 1, 1_000_000)
	c.RelistInterval = env.Duration("GEOBLOB_BACKFILL_RELIST_INTERVAL", c.RelistInterval)
	c.Window = integer("GEOBLOB_SYNC_WINDOW", c.Window, 1, 1_000_000)
	c.DispatchLease = env.Duration("GEOBLOB_SYNC_DISPATCH_LEASE", c.DispatchLease)
	if v := get("GEOBLOB_SYNC_QUEUE_URL"); v != "" {
		if !dispatch.ValidQueueURL(v) {
			fail("GEOBLOB_SYNC_QUEUE_URL", "must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), got %q", v)
		} else {
			c.SyncQueueURL = v
		}
	}
	if v := get("GEOBLOB_BACKFILL_SECONDARY_ORPHANS"); v != "" {
		switch m := OrphanMode(strings.ToLower(v)); m {
		case OrphansOff, OrphansReport, OrphansDelete:
			c.Orphans = m
		default:
			fail("GEOBLOB_BACKFILL_SECONDARY_ORPHANS", "must be off, report or delete, got %q", v)
		}
	}
	if err := env.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParsePhases validates phase names (empty entries are ignored) and returns
// them in canonical order without duplicates.
func ParsePhases(names []string) ([]Phase, error) {
	want := map[Phase]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if !slices.Contains(allPhases, Phase(n)) {
			return nil, fmt.Errorf("%w: unknown phase %q (want recover, reconcile, sync, orphans)", ErrInvalidConfig, n)
		}
		want[Phase(n)] = true
	}
	var out []Phase
	for _, p := range allPhases {
		if want[p] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no phase selected", ErrInvalidConfig)
	}
	return out, nil
}

// ParseS3URL parses s3://bucket/key (the key may be empty or a prefix).
func ParseS3URL(s string) (S3URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return S3URL{}, fmt.Errorf("%w: %q is not an s3://bucket/key URL", ErrInvalidConfig, s)
	}
	return S3URL{Bucket: u.Host, Key: strings.TrimPrefix(u.Path, "/")}, nil
}
