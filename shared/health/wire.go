package health

import (
	"errors"
	"strings"

	"github.com/geoblob/geoblob/shared/config"
)

// ErrInvalid is returned (wrapped, naming the variable) for an unusable
// GEOBLOB_HEALTH_* or GEOBLOB_DEAD_LETTER_QUEUES value.
var ErrInvalid = errors.New("health: invalid")

// OptionsFromEnv reads the thresholds of Reference into Options (no
// dependencies set) and returns the dead-letter queue URLs.
func OptionsFromEnv(getenv func(string) string) (Options, []string, error) {
	e := config.NewEnv(getenv, ErrInvalid)
	o := Options{
		BackfillMaxAge: e.Duration("GEOBLOB_HEALTH_BACKFILL_MAX_AGE", DefaultBackfillMaxAge),
		VerifyMaxAge:   e.Duration("GEOBLOB_HEALTH_VERIFY_MAX_AGE", DefaultVerifyMaxAge),
	}
	var queues []string
	for _, u := range strings.Split(e.Str("GEOBLOB_DEAD_LETTER_QUEUES"), ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			e.Fail("GEOBLOB_DEAD_LETTER_QUEUES", "must hold queue URLs, got %q", u)
		}
		queues = append(queues, u)
	}
	return o, queues, e.Err()
}
