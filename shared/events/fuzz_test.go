package events_test

import (
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/geoblob/geoblob/shared/events"
)

// normalizedSequencer is the form of every sequencer in Message.Events.
var normalizedSequencer = regexp.MustCompile(`^([0-9A-F]{32})?$`)

// checkParseInvariants checks what Parse promises about a decoded batch:
// every object event is created or removed, names a bucket, has a valid
// UTF-8 key without NUL of 1 to MaxKeyBytes bytes, a size that is not
// negative and a normalized sequencer; every invalid record says why with
// an error wrapping ErrInvalid; unsupported records are KindUnknown.
func checkParseInvariants(t *testing.T, b events.Batch) {
	t.Helper()
	for _, m := range b.Messages {
		if m.Err != nil && !errors.Is(m.Err, events.ErrMalformed) {
			t.Fatalf("message error does not wrap ErrMalformed: %v", m.Err)
		}
		for _, ev := range m.Events {
			switch {
			case ev.Kind != events.KindCreated && ev.Kind != events.KindRemoved:
				t.Fatalf("event of kind %v in Events", ev.Kind)
			case ev.Bucket == "":
				t.Fatalf("event without bucket: %+v", ev)
			case ev.Key == "" || len(ev.Key) > events.MaxKeyBytes:
				t.Fatalf("key of %d bytes", len(ev.Key))
			case !utf8.ValidString(ev.Key) || strings.IndexByte(ev.Key, 0) >= 0:
				t.Fatalf("key %q is not valid UTF-8 without NUL", ev.Key)
			case ev.Size < 0:
				t.Fatalf("negative size %d", ev.Size)
			case !normalizedSequencer.MatchString(ev.Sequencer):
				t.Fatalf("sequencer %q is not normalized", ev.Sequencer)
			}
		}
		for _, r := range m.Invalid {
			if !errors.Is(r.Err, events.ErrInvalid) {
				t.Fatalf("invalid record without ErrInvalid: %v", r.Err)
			}
		}
		for _, u := range m.Unsupported {
			if u.Kind != events.KindUnknown {
				t.Fatalf("unsupported record of kind %v", u.Kind)
			}
		}
	}
}

// validSequencer is the rule NormalizeSequencer enforces.
var validSequencer = regexp.MustCompile(`^[0-9A-Fa-f]{1,32}$`)

// FuzzSequencerOrder: a sequencer is accepted exactly when it matches
// ^[0-9A-Fa-f]{1,32}$; its normalized form is 32 upper-case hex digits of
// the same value; and for two accepted sequencers the string order of the
// normalized forms (what the registry compares) is their numeric order.
func FuzzSequencerOrder(f *testing.F) {
	for _, p := range [][2]string{
		{"0055AED6DCD90281E5", "0055AED6DCD90281F0"},
		{"F", "0F"},
		{"E", strings.Repeat("0", 32) + "F"},
		{"617f08299329d189", "617F0837B476E463"},
		{"", "1"},
		{strings.Repeat("f", 32), strings.Repeat("F", 31)},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		na, errA := events.NormalizeSequencer(a)
		nb, errB := events.NormalizeSequencer(b)
		for _, c := range []struct {
			in, norm string
			err      error
		}{{a, na, errA}, {b, nb, errB}} {
			valid := c.in == "" || validSequencer.MatchString(c.in)
			if valid != (c.err == nil) {
				t.Fatalf("NormalizeSequencer(%q) error %v, want valid=%v", c.in, c.err, valid)
			}
			if c.err != nil {
				if !errors.Is(c.err, events.ErrInvalid) {
					t.Fatalf("error does not wrap ErrInvalid: %v", c.err)
				}
				continue
			}
			if c.in == "" {
				if c.norm != "" {
					t.Fatalf("empty sequencer normalized to %q", c.norm)
				}
				continue
			}
			if !normalizedSequencer.MatchString(c.norm) || c.norm == "" {
				t.Fatalf("NormalizeSequencer(%q) = %q, not 32 upper-case hex digits", c.in, c.norm)
			}
			if hexValue(c.in).Cmp(hexValue(c.norm)) != 0 {
				t.Fatalf("NormalizeSequencer(%q) = %q changed the value", c.in, c.norm)
			}
		}
		if errA != nil || errB != nil || a == "" || b == "" {
			return
		}
		want := hexValue(a).Cmp(hexValue(b))
		if got := strings.Compare(na, nb); got != want {
			t.Fatalf("string order of %q, %q is %d, numeric order %d", na, nb, got, want)
		}
		if got, err := events.CompareSequencers(a, b); err != nil || got != want {
			t.Fatalf("CompareSequencers(%q, %q) = %d, %v; want %d", a, b, got, err, want)
		}
	})
}

// hexValue is the numeric value of a hex string.
func hexValue(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("not hex: " + s)
	}
	return v
}
