package registry

import (
	"strings"
	"unicode/utf8"
)

// SequencerWidth is the width NormalizeSequencer pads to. S3 sequencers are
// 16-18 hex digits today; 32 leaves room.
const SequencerWidth = 32

// NormalizeSequencer makes S3 sequencers of one key comparable as strings:
// upper-case, left-padded with '0' to SequencerWidth. Empty stays empty
// (unknown order); longer inputs are kept as they are.
func NormalizeSequencer(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" || len(s) >= SequencerWidth {
		return s
	}
	return strings.Repeat("0", SequencerWidth-len(s)) + s
}

// TruncateFailure cuts msg to at most MaxFailureLen characters (runes, as
// varchar(255) counts them) without splitting a rune; invalid UTF-8 is
// replaced so the database never rejects it.
func TruncateFailure(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	msg = strings.ReplaceAll(msg, "\x00", "") // PostgreSQL text can not hold NUL
	if utf8.RuneCountInString(msg) <= MaxFailureLen {
		return msg
	}
	n := 0
	for i := range msg {
		if n == MaxFailureLen {
			return msg[:i]
		}
		n++
	}
	return msg
}
