package events_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/events"
)

// TestParseRejectsRecordsThatCanNeverSucceed: records with a NUL key, a key
// that is not UTF-8 or longer than 1,024 bytes, a negative size or a
// sequencer that is not 1-32 hex digits are Invalid (never Events, never a
// malformed message to retry); valid records of the same message are kept.
func TestParseRejectsRecordsThatCanNeverSucceed(t *testing.T) {
	t.Parallel()
	b := parseFixture(t, "s3-invalid-records.json")
	require.Len(t, b.Messages, 1)
	m := b.Messages[0]
	assert.NoError(t, m.Err, "invalid records are not a malformed message")

	var rejected []string
	for _, r := range m.Invalid {
		assert.ErrorIs(t, r.Err, events.ErrInvalid)
		rejected = append(rejected, r.Event.Key)
	}
	assert.Equal(t, []string{
		"generic/bad/nul\x00byte.bin",
		"generic/bad/latin1-\xff.bin",
		"generic/bad/" + strings.Repeat("k", 1009) + ".bin",
		"generic/bad/negative.bin",
		"generic/bad/long-sequencer.bin",
		"generic/bad/hex.bin",
		"generic/bad/nul-delete\x00.bin",
	}, rejected)
	assert.Equal(t, "0"+strings.Repeat("0", 31)+"F", m.Invalid[4].Event.Sequencer, "rejected events keep the sequencer as delivered")

	require.Len(t, m.Events, 2)
	assert.Equal(t, "generic/good/ok.bin", m.Events[0].Key)
	assert.Equal(t, "00000000000000"+"0055AED6DCD9028301", m.Events[0].Sequencer, "normalized: padded, upper-case")
	assert.Len(t, m.Events[1].Key, events.MaxKeyBytes, "a key of exactly 1,024 bytes is valid")
}

func TestParseRejectsNULInEventBridgeKey(t *testing.T) {
	t.Parallel()
	b := parseFixture(t, "eventbridge-invalid-key.json")
	m := b.Messages[0]
	assert.Empty(t, m.Events)
	require.Len(t, m.Invalid, 1)
	assert.ErrorIs(t, m.Invalid[0].Err, events.ErrInvalid)
}

func TestParseSQSInvalidRecordsArePerMessage(t *testing.T) {
	t.Parallel()
	b := parseFixture(t, "sqs-invalid.json")
	require.True(t, b.FromSQS)
	require.Len(t, b.Messages, 3)
	for i, want := range []struct{ events, invalid int }{{0, 1}, {1, 0}, {1, 1}} {
		m := b.Messages[i]
		assert.NoError(t, m.Err, "message %d", i)
		assert.Len(t, m.Events, want.events, "message %d events", i)
		assert.Len(t, m.Invalid, want.invalid, "message %d invalid", i)
	}
}

func TestNormalizeSequencer(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                      "",
		"0":                     strings.Repeat("0", 32),
		"e":                     strings.Repeat("0", 31) + "E",
		"0055AED6DCD90281E5":    "00000000000000" + "0055AED6DCD90281E5",
		strings.Repeat("f", 32): strings.Repeat("F", 32),
		"617f08299329d189":      strings.Repeat("0", 16) + "617F08299329D189",
	} {
		got, err := events.NormalizeSequencer(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{strings.Repeat("0", 32) + "F", "0x1F", " 1F", "1F ", "G", "-1", "１"} {
		_, err := events.NormalizeSequencer(bad)
		assert.ErrorIs(t, err, events.ErrInvalid, "%q", bad)
	}
}

// TestCompareSequencersIsNumericOrder: the 33-digit case that compared
// wrongly before ("0…0F" sorted below "E") is now refused, and for valid
// sequencers the string order of the normalized forms is the numeric order.
func TestCompareSequencersIsNumericOrder(t *testing.T) {
	t.Parallel()
	_, err := events.CompareSequencers(strings.Repeat("0", 32)+"F", "E")
	assert.ErrorIs(t, err, events.ErrInvalid)
	for _, p := range [][2]string{{"F", "e"}, {"0F", "E"}, {"100", "FF"}, {"0055AED6DCD90281E5", "55aed6dcd90281e5"}, {"1", "0000000000000000000000000000001"}} {
		got, err := events.CompareSequencers(p[0], p[1])
		require.NoError(t, err)
		assert.Equal(t, hexValue(p[0]).Cmp(hexValue(p[1])), got, "%s vs %s", p[0], p[1])
	}
}

func TestValidKeyAndSize(t *testing.T) {
	t.Parallel()
	assert.NoError(t, events.ValidKey("a"))
	assert.NoError(t, events.ValidKey(strings.Repeat("ü", 512)))
	for _, bad := range []string{"", "a\x00b", "\xc3", strings.Repeat("a", 1025), strings.Repeat("ü", 512) + "a"} {
		assert.ErrorIs(t, events.ValidKey(bad), events.ErrInvalid, "%q", bad)
	}
	assert.NoError(t, events.ValidSize(0))
	assert.ErrorIs(t, events.ValidSize(-1), events.ErrInvalid)
}
