package dispatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/dispatch"
)

// TestWindowRecountNeverExceedsSize: with Recount, rounds go by without
// counting, yet the work in flight (what the loop claimed minus what
// finished) never exceeds Size; the window counts again when its estimate
// is full, and every due item is claimed.
func TestWindowRecountNeverExceedsSize(t *testing.T) {
	const (
		size  = 10
		items = 100
	)
	var (
		inFlight, maxInFlight, claimed, counts, rounds int
	)
	w := dispatch.Window[int]{
		Size: size, Batch: 3, Recount: time.Hour,
		InFlight: func(context.Context) (int64, error) {
			counts++
			return int64(inFlight), nil
		},
		Claim: func(_ context.Context, n int) ([]int, bool, error) {
			n = min(n, items-claimed)
			claimed += n
			inFlight += n
			maxInFlight = max(maxInFlight, inFlight)
			return make([]int, n), false, nil
		},
		Send: func(context.Context, []int) error { rounds++; return nil },
		Wait: func(context.Context) bool {
			inFlight = max(inFlight-4, 0) // workers finish some
			return true
		},
		Expired: func() bool { return false },
	}
	stats, err := w.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, items, claimed)
	assert.EqualValues(t, items, stats.Claimed)
	assert.LessOrEqual(t, maxInFlight, size, "never more in flight than the window")
	assert.Equal(t, size, maxInFlight, "the window is filled")
	assert.Positive(t, stats.Waits)
	assert.Less(t, counts, rounds, "rounds go by without counting")
}
