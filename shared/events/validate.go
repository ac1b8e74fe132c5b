package events

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyBytes is S3's limit on the length of an object key in bytes.
const MaxKeyBytes = 1024

// SequencerWidth is the width NormalizeSequencer pads to: the longest
// sequencer accepted, twice what S3 sends today (16-18 hex digits).
const SequencerWidth = 32

// ValidKey returns nil when key can be registered and replicated, else an
// error wrapping ErrInvalid saying why: empty, longer than MaxKeyBytes,
// not valid UTF-8, or holding a NUL byte (PostgreSQL text cannot store it).
// Such a key can never succeed, so it must not be retried.
func ValidKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: key of %d bytes (S3 allows at most %d)", ErrInvalid, len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalid)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: key holds a NUL byte", ErrInvalid)
	}
	return nil
}

// ValidSize returns nil for a size an object can have (not negative), else
// an error wrapping ErrInvalid.
func ValidSize(size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrInvalid, size)
	}
	return nil
}

// NormalizeSequencer validates an S3 sequencer and makes sequencers of one
// key comparable as strings: a sequencer must match ^[0-9A-Fa-f]{1,32}$; it
// is upper-cased and left-padded with '0' to SequencerWidth, so that string
// order equals the numeric order of the hex values. The empty sequencer
// (order unknown) stays empty. Anything else is an error wrapping
// ErrInvalid: a longer one would compare wrongly once padded ("0…0F" < "E").
func NormalizeSequencer(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > SequencerWidth {
		return "", fmt.Errorf("%w: sequencer of %d hex digits (at most %d)", ErrInvalid, len(s), SequencerWidth)
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return "", fmt.Errorf("%w: sequencer %q is not hexadecimal", ErrInvalid, s)
		}
	}
	return strings.Repeat("0", SequencerWidth-len(s)) + strings.ToUpper(s), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// CompareSequencers compares two valid sequencers by their numeric value
// (-1, 0 or +1), the order in which S3 made the events of one key. The
// registry compares normalized sequencers as strings (COLLATE "C"), which
// gives the same order. It returns an error when either is invalid or empty.
func CompareSequencers(a, b string) (int, error) {
	na, err := NormalizeSequencer(a)
	if err != nil {
		return 0, err
	}
	nb, err := NormalizeSequencer(b)
	if err != nil {
		return 0, err
	}
	if na == "" || nb == "" {
		return 0, fmt.Errorf("%w: an empty sequencer has no order", ErrInvalid)
	}
	return strings.Compare(na, nb), nil
}

// validate checks an event geoblob acts on and normalizes its sequencer.
func validate(ev *ObjectEvent) error {
	if err := ValidKey(ev.Key); err != nil {
		return err
	}
	if err := ValidSize(ev.Size); err != nil {
		return err
	}
	seq, err := NormalizeSequencer(ev.Sequencer)
	if err != nil {
		return err
	}
	ev.Sequencer = seq
	return nil
}
