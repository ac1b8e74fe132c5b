package registry

import (
	"strings"
	"unicode/utf8"

	"github.com/geoblob/geoblob/shared/events"
)

// SequencerWidth is the width NormalizeSequencer pads to.
const SequencerWidth = events.SequencerWidth

// NormalizeSequencer makes S3 sequencers of one key comparable as strings
// (events.NormalizeSequencer: upper-case, left-padded with '0' to
// SequencerWidth). Empty stays empty (unknown order). The event parser
// rejects invalid sequencers before they reach the registry; one that gets
// here anyway is only upper-cased.
func NormalizeSequencer(s string) string {
	s = strings.TrimSpace(s)
	if n, err := events.NormalizeSequencer(s); err == nil {
		return n
	}
	return strings.ToUpper(s)
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
