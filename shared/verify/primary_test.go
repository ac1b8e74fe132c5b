package verify_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

// A row synced without a primary checksum gets one from verify, which then
// verifies its secondary in the same pass.
func TestComputesMissingPrimaryChecksum(t *testing.T) {
	t.Parallel()
	e, v := newVerifierEnv(t)
	data := content(3, 70_000)
	key := e.upload(data)
	// A sync that did not hash (e.g. a server-side copy): copy the bytes and
	// mark synced with no checksum.
	claims, err := e.reg.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, 1)
	_, err = e.secondary.Put(e.ctx, key, bytes.NewReader(data), int64(len(data)), blobstore.PutAttrs{})
	require.NoError(t, err)
	won, err := e.reg.MarkSynced(e.ctx, claims[0], registry.SyncResult{Size: int64(len(data)), ETag: claims[0].ETag})
	require.NoError(t, err)
	require.True(t, won)
	it := e.row(key)
	require.Empty(t, it.PrimarySHA256)
	require.Equal(t, registry.VerificationDisabled, it.VerificationState)

	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Primary.Matched)
	assert.Equal(t, int64(len(data)), rep.Primary.BytesRead)
	assert.Equal(t, int64(1), rep.Secondary.Matched, "the secondary is verified in the same pass")
	it = e.row(key)
	assert.Equal(t, sha(data), it.PrimarySHA256)
	assert.Equal(t, registry.VerificationSucceeded, it.Primary.State)
	assert.Equal(t, registry.VerificationSucceeded, it.VerificationState)
	assert.Equal(t, sha(data), it.SecondarySHA256)
}

// A primary overwritten after registration, before its checksum was
// computed, is not hashed into the row: its event will describe it.
func TestDoesNotRecordChecksumOfAnotherPrimaryVersion(t *testing.T) {
	t.Parallel()
	e, v := newVerifierEnv(t)
	key := e.upload(content(4, 1000))
	claims, err := e.reg.ClaimDue(e.ctx, registry.ClaimOptions{Limit: 10})
	require.NoError(t, err)
	require.Len(t, claims, 1)
	won, err := e.reg.MarkSynced(e.ctx, claims[0], registry.SyncResult{Size: 1000, ETag: claims[0].ETag})
	require.NoError(t, err)
	require.True(t, won)
	putBehindBack(t, e.pc, key, content(5, 1000))

	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Primary.Errors)
	it := e.row(key)
	assert.Empty(t, it.PrimarySHA256)
	assert.Equal(t, registry.VerificationFailed, it.Primary.State)
	assert.Contains(t, it.Primary.Failure, "changed since registration")
	assert.Zero(t, e.run(v, verify.RunOptions{}).Primary.Checked, "retried only after its backoff")
}

// Bit rot or tampering on the primary is flagged, not copied over the good
// secondary; an operator's AcceptPrimary then resyncs.
func TestPrimaryChangedWithoutEventIsFlaggedAndSecondaryKept(t *testing.T) {
	t.Parallel()
	e, v := newVerifierEnv(t)
	good := content(6, 50_000)
	key := e.uploadSynced(good)
	e.run(v, verify.RunOptions{})

	tampered := append([]byte(nil), good...)
	tampered[0] ^= 0x80
	putBehindBack(t, e.pc, key, tampered)
	e.clock.Advance(verify.DefaultReverifyInterval + time.Second)

	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Primary.Mismatched)
	assert.Equal(t, int64(1), rep.Secondary.Matched, "the secondary still holds the registered content")
	it := e.row(key)
	assert.True(t, it.Primary.ChecksumMismatch)
	assert.Equal(t, registry.VerificationFailed, it.Primary.State)
	assert.Equal(t, sha(tampered), it.Primary.MismatchSHA256)
	assert.Equal(t, sha(good), it.PrimarySHA256, "the registry keeps the good checksum")
	assert.Contains(t, it.Primary.Failure, "without an event")
	assert.Equal(t, registry.StateSynced, it.State)
	assert.Zero(t, e.syncDue(), "nothing is sent to sync")
	assert.Equal(t, good, e.secondaryBytes(key))

	// Later passes leave the quarantined row alone.
	e.clock.Advance(time.Hour)
	assert.Zero(t, e.run(v, verify.RunOptions{}).Primary.Checked)

	// If the secondary is damaged too, verify records it but does not copy
	// the flagged primary over it.
	putBehindBack(t, e.sc, key, []byte("junk"))
	e.clock.Advance(verify.DefaultReverifyInterval)
	rep = e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Secondary.Mismatched)
	assert.Zero(t, rep.Secondary.Resynced)
	assert.Equal(t, registry.StateSynced, e.row(key).State)
	putBehindBack(t, e.sc, key, good) // restore

	// The operator accepts the new primary content.
	require.NoError(t, e.reg.AcceptPrimary(e.ctx, it.ID))
	require.ErrorIs(t, e.reg.AcceptPrimary(e.ctx, it.ID), verify.ErrNotFound, "only flagged rows")
	require.Equal(t, 1, e.syncDue())
	assert.Equal(t, tampered, e.secondaryBytes(key))
	e.clock.Advance(verify.DefaultBackoffCap)
	e.run(v, verify.RunOptions{})
	it = e.row(key)
	assert.False(t, it.Primary.ChecksumMismatch)
	assert.Equal(t, sha(tampered), it.PrimarySHA256)
	assert.Equal(t, registry.VerificationSucceeded, it.VerificationState)
}

// A flag raised because an overwrite's event was late clears itself once
// the event has been applied and the new content synced.
func TestPrimaryFlagClearsWhenTheEventArrives(t *testing.T) {
	t.Parallel()
	e, v := newVerifierEnv(t)
	key := e.uploadSynced(content(9, 2000))
	e.run(v, verify.RunOptions{})

	newer := content(10, 3000)
	e.putPrimary(key, newer)
	e.clock.Advance(verify.DefaultReverifyInterval + time.Second)
	require.Equal(t, int64(1), e.run(v, verify.RunOptions{}).Primary.Mismatched)
	require.True(t, e.row(key).Primary.ChecksumMismatch)

	e.recordCreated(key) // the late event
	require.Equal(t, 1, e.syncDue())
	rep := e.run(v, verify.RunOptions{})
	assert.Equal(t, int64(1), rep.Primary.Matched)
	it := e.row(key)
	assert.False(t, it.Primary.ChecksumMismatch)
	assert.Equal(t, registry.VerificationSucceeded, it.Primary.State)
	assert.Equal(t, sha(newer), it.PrimarySHA256)
	assert.Equal(t, registry.VerificationSucceeded, it.VerificationState)
	assert.Equal(t, newer, e.secondaryBytes(key))
}
