package verify_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// corruptions damage a secondary object behind geoblob's back.
var corruptions = []struct {
	name     string
	damage   func(t *testing.T, e *env, key string, data []byte)
	mismatch bool // detected as a checksum mismatch (else: missing)
}{
	{"one byte flipped", func(t *testing.T, e *env, key string, data []byte) {
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 0x01
		putBehindBack(t, e.sc, key, bad)
	}, true},
	{"truncated", func(t *testing.T, e *env, key string, data []byte) {
		putBehindBack(t, e.sc, key, data[:len(data)-1])
	}, true},
	{"deleted", func(t *testing.T, e *env, key string, _ []byte) {
		deleteBehindBack(t, e.sc, key)
	}, false},
}

func TestVerifyFlagsResyncsAndVerifiesDamagedSecondary(t *testing.T) {
	t.Parallel()
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, v := newVerifierEnv(t)
			data := content(7, 100_000)
			key := e.upload(data)
			other := e.upload(content(8, 5_000)) // an untouched neighbour
			require.Equal(t, 2, e.syncDue())

			rep := e.run(v, verify.RunOptions{})
			assert.Equal(t, int64(2), rep.Secondary.Matched)
			assert.Equal(t, registry.VerificationSucceeded, e.row(key).VerificationState)

			tc.damage(t, e, key, data)
			e.clock.Advance(verify.DefaultReverifyInterval + time.Second)

			// Pass 1 flags it.
			rep = e.run(v, verify.RunOptions{})
			flaggedAt := e.clock.Now()
			assert.Equal(t, int64(1), rep.Secondary.Resynced)
			assert.Equal(t, int64(1), rep.Secondary.Matched, "the neighbour verifies")
			it := e.row(key)
			assert.Equal(t, registry.VerificationFailed, it.VerificationState)
			assert.Equal(t, registry.StateFailed, it.State, "sent back to sync")
			assert.Equal(t, 1, it.VerificationRetryCount)
			require.NotNil(t, it.RetryAt)
			wantDelay := registry.GeoBackoff{Rand: noJitter}.Backoff(1, false)
			assert.Equal(t, flaggedAt.Add(wantDelay), it.RetryAt.UTC())
			assert.Equal(t, tc.mismatch, it.ChecksumMismatch)
			if tc.mismatch {
				assert.Equal(t, sha(e.secondaryBytes(key)), it.SecondarySHA256, "the mismatched checksum is kept")
				assert.Equal(t, int64(1), rep.Secondary.Mismatched)
			} else {
				assert.Empty(t, it.SecondarySHA256)
				assert.Equal(t, int64(1), rep.Secondary.Missing)
			}
			assert.Equal(t, registry.VerificationSucceeded, e.row(other).VerificationState)

			// Sync honours the backoff, then repairs.
			assert.Zero(t, e.syncDue(), "not due before retry_at")
			e.clock.Advance(wantDelay)
			require.Equal(t, 1, e.syncDue())
			assert.Equal(t, data, e.secondaryBytes(key), "repaired byte for byte")
			it = e.row(key)
			assert.Equal(t, registry.StateSynced, it.State)
			assert.Equal(t, registry.VerificationPending, it.VerificationState)

			// Pass 2 verifies it.
			rep = e.run(v, verify.RunOptions{})
			assert.Equal(t, int64(1), rep.Secondary.Matched)
			assert.Equal(t, int64(0), rep.Secondary.Resynced)
			it = e.row(key)
			assert.Equal(t, registry.VerificationSucceeded, it.VerificationState)
			assert.False(t, it.ChecksumMismatch)
			assert.Equal(t, sha(data), it.SecondarySHA256)
			assert.Zero(t, it.VerificationRetryCount)
			require.NotNil(t, it.VerifiedAt)
			assert.Equal(t, e.clock.Now(), it.VerifiedAt.UTC())
		})
	}
}

// Geo bug #607991: the retry counter must survive the resync between two
// mismatches so that the backoff keeps growing.
func TestRepeatedMismatchesBackOffLonger(t *testing.T) {
	t.Parallel()
	e, v := newVerifierEnv(t)
	data := content(1, 4096)
	key := e.uploadSynced(data)

	var delays []time.Duration
	for i := 1; i <= 5; i++ {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0xff
		putBehindBack(t, e.sc, key, bad)
		rep := e.run(v, verify.RunOptions{})
		require.Equal(t, int64(1), rep.Secondary.Mismatched, "mismatch %d", i)
		it := e.row(key)
		require.Equal(t, i, it.VerificationRetryCount)
		require.Equal(t, registry.StateFailed, it.State)
		delay := it.RetryAt.Sub(e.clock.Now())
		delays = append(delays, delay)
		e.clock.Advance(delay)
		require.Equal(t, 1, e.syncDue(), "resync %d", i)
		require.Equal(t, i, e.row(key).VerificationRetryCount, "the sync must not reset the count")
	}
	for i := 1; i < len(delays); i++ {
		assert.Greater(t, delays[i], delays[i-1], "delays %v must keep growing", delays)
	}
	b := registry.GeoBackoff{Rand: noJitter}
	assert.Equal(t, []time.Duration{b.Backoff(1, false), b.Backoff(2, false), b.Backoff(3, false), b.Backoff(4, false), b.Backoff(5, false)}, delays)

	// A good verification resets the count.
	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Secondary.Matched)
	assert.Zero(t, e.row(key).VerificationRetryCount)
}
