package verify_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// fixture is one secondary object and the content the registry expects.
type fixture struct {
	name     string
	key      string
	want     []byte
	outcome  verify.Outcome
	fastable bool // a correct object whose server stores a full-object SHA-256
}

// damageSet syncs good objects (single-part with x-amz-checksum-sha256,
// and one multipart whose checksum is composite) and damages others behind
// geoblob's back in ways that do and do not leave a stored SHA-256.
func damageSet(t *testing.T, e *env, serverChecksums bool) []fixture {
	t.Helper()
	mk := func(name string, seed, size int) fixture {
		data := content(seed, size)
		return fixture{name: name, key: e.upload(data), want: data, outcome: verify.OutcomeMatch}
	}
	fx := []fixture{
		mk("good single-part", 1, 300_000),
		mk("good single-part small", 2, 1),
		mk("good multipart (composite checksum)", 3, 6<<20+123),
		mk("flipped, new sha256 stored", 4, 200_000),
		mk("flipped, crc32 stored", 5, 200_000),
		mk("truncated, no checksum", 6, 200_000),
		mk("deleted", 7, 1000),
		mk("sha256 of the right bytes, wrong bytes", 8, 1000),
	}
	require.Equal(t, len(fx), e.syncDue())
	bad := func(d []byte) []byte { c := append([]byte(nil), d...); c[len(c)/3] ^= 0x40; return c }

	fx[0].fastable = serverChecksums
	fx[1].fastable = serverChecksums
	f := bad(fx[3].want)
	_, err := e.sc.PutChecksummed(t.Context(), fx[3].key, f, "SHA256")
	require.NoError(t, err)
	fx[3].outcome = verify.OutcomeMismatch
	_, err = e.sc.PutChecksummed(t.Context(), fx[4].key, bad(fx[4].want), "CRC32")
	require.NoError(t, err)
	fx[4].outcome = verify.OutcomeMismatch
	putBehindBack(t, e.sc, fx[5].key, fx[5].want[:len(fx[5].want)-10])
	fx[5].outcome = verify.OutcomeMismatch
	deleteBehindBack(t, e.sc, fx[6].key)
	fx[6].outcome = verify.OutcomeMissing
	// Overwritten without a checksum: a server that keeps the old
	// x-amz-checksum-sha256 across the overwrite (gofakes3 does) must not
	// make fast mode trust it.
	fx[7].outcome = verify.OutcomeMismatch
	putBehindBack(t, e.sc, fx[7].key, bad(fx[7].want))
	return fx
}

func checkModesAgree(t *testing.T, e *env, fx []fixture, serverChecksums bool) {
	t.Helper()
	side := e.secondary
	for _, f := range fx {
		want := sha(f.want)
		deep := verify.CheckObject(t.Context(), side, f.key, want, int64(len(f.want)), verify.ModeDeep)
		fast := verify.CheckObject(t.Context(), side, f.key, want, int64(len(f.want)), verify.ModeFast)
		require.NoError(t, deep.Err, f.name)
		require.NoError(t, fast.Err, f.name)
		assert.Equal(t, f.outcome, deep.Outcome, "deep: %s", f.name)
		assert.Equal(t, deep.Outcome, fast.Outcome, "fast agrees with deep: %s", f.name)
		assert.False(t, deep.Fast, f.name)
		assert.Equal(t, f.fastable, fast.Fast, "decided without reading: %s", f.name)
		if fast.Fast {
			assert.Zero(t, fast.BytesRead, f.name)
		} else if f.outcome != verify.OutcomeMissing {
			assert.Equal(t, deep.BytesRead, fast.BytesRead, "fell back to one deep read: %s", f.name)
		}
	}
	// A whole pass in fast mode reaches the same verdicts.
	v := e.verifier(verify.Options{Mode: verify.ModeFast, NoPrimary: true})
	rep := e.run(v, verify.RunOptions{})
	nFast := 0
	for _, f := range fx {
		it := e.row(f.key)
		if f.outcome == verify.OutcomeMatch {
			assert.Equal(t, registry.VerificationSucceeded, it.VerificationState, f.name)
		} else {
			assert.Equal(t, registry.VerificationFailed, it.VerificationState, f.name)
			assert.Equal(t, registry.StateFailed, it.State, "sent back to sync: %s", f.name)
		}
		if f.fastable {
			nFast++
		}
	}
	assert.Equal(t, int64(nFast), rep.Secondary.Fast)
	if serverChecksums {
		assert.Positive(t, nFast)
	}
}

// gofakes3 does not validate checksums (it echoes x-amz-checksum-sha256 as
// sent, keeps it across overwrites and returns no x-amz-checksum-type):
// fast mode falls back to deep for every object and reaches deep's verdicts.
func TestFastFallsBackToDeepWithoutStoredChecksums(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{multipartThreshold: 5 << 20})
	checkModesAgree(t, e, damageSet(t, e, false), false)
}

// MinIO stores and returns x-amz-checksum-sha256 with x-amz-checksum-type
// FULL_OBJECT for single-part uploads (COMPOSITE for multipart): fast mode
// confirms good copies without reading them and agrees with deep on every
// damaged one.
func TestFastAndDeepAgreeOnMinio(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MinIO process")
	}
	t.Parallel()
	srv := s3test.NewMinio(t)
	e := newEnv(t, envOptions{primaryEndpoint: srv.Endpoint(), secondaryEndpoint: srv.Endpoint(), multipartThreshold: 5 << 20})
	fx := damageSet(t, e, true)

	// What MinIO returns, so the test documents the headers fast mode uses.
	st, err := e.secondary.Stat(t.Context(), fx[0].key)
	require.NoError(t, err)
	assert.Equal(t, sha(fx[0].want), st.SHA256, "a single-part upload's full-object sha256 (x-amz-checksum-type FULL_OBJECT)")
	st, err = e.secondary.Stat(t.Context(), fx[2].key)
	require.NoError(t, err)
	assert.Empty(t, st.SHA256, "multipart upload: no full-object sha256")

	checkModesAgree(t, e, fx, true)
}
