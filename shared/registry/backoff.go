package registry

import (
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy decides how long a failed row waits before its next attempt.
// Implementations must be safe for concurrent use.
type RetryPolicy interface {
	// Backoff returns the delay before attempt number attempt (1 for the
	// first retry after the first failure). missingOnPrimary is set when the
	// failure was that the primary object does not exist.
	Backoff(attempt int, missingOnPrimary bool) time.Duration
}

// Defaults of GeoBackoff (GitLab Geo's numbers).
const (
	DefaultBackoffBase       = 15 * time.Second
	DefaultBackoffCap        = time.Hour
	DefaultBackoffMissingCap = 4 * time.Hour
	DefaultBackoffJitter     = 0.10
)

// GeoBackoff is Geo's retry schedule: attempt⁴ seconds + Base, plus up to
// Jitter of that as random jitter, capped at Cap (MissingCap when the object
// is missing on the primary). The zero value uses the defaults above and
// math/rand/v2; it is safe for concurrent use when Rand is.
type GeoBackoff struct {
	Base       time.Duration  // constant part; 0 = DefaultBackoffBase
	Cap        time.Duration  // 0 = DefaultBackoffCap
	MissingCap time.Duration  // 0 = DefaultBackoffMissingCap
	Jitter     float64        // fraction of the delay added at most; 0 = DefaultBackoffJitter, <0 = none
	Rand       func() float64 // uniform in [0,1); nil = math/rand/v2.Float64
}

var _ RetryPolicy = GeoBackoff{}

// Backoff implements RetryPolicy. The result is never above the cap and
// never below Base (for attempt >= 0).
func (g GeoBackoff) Backoff(attempt int, missingOnPrimary bool) time.Duration {
	base := orDuration(g.Base, DefaultBackoffBase)
	limit := orDuration(g.Cap, DefaultBackoffCap)
	if missingOnPrimary {
		limit = orDuration(g.MissingCap, DefaultBackoffMissingCap)
	}
	jitter := g.Jitter
	switch {
	case jitter == 0:
		jitter = DefaultBackoffJitter
	case jitter < 0:
		jitter = 0
	}
	rnd := g.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	n := float64(max(attempt, 0))
	secs := math.Pow(n, 4) + base.Seconds()
	secs += secs * jitter * rnd()
	if secs >= limit.Seconds() || math.IsNaN(secs) {
		return limit
	}
	return time.Duration(secs * float64(time.Second))
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
