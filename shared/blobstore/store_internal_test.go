package blobstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPartPlan(t *testing.T) {
	t.Parallel()
	s := New(nil, "b", Options{})
	const mib, gib, tib = int64(1 << 20), int64(1 << 30), int64(1 << 40)
	cases := []struct {
		size     int64
		partSize int64
		conc     int
	}{
		{17 * mib, 8 * mib, 4},
		{gib, 8 * mib, 4},
		{78 * gib, 8 * mib, 4},   // 9,984 parts of 8 MiB
		{100 * gib, 11 * mib, 2}, // grown parts, fewer in flight
		{MaxObjectSize, 525 * mib, 1},
	}
	for _, c := range cases {
		ps, conc := s.PartPlan(c.size)
		assert.Equal(t, c.partSize, ps, "part size for %d", c.size)
		assert.Equal(t, c.conc, conc, "concurrency for %d", c.size)
		parts := (c.size + ps - 1) / ps
		assert.LessOrEqual(t, parts, int64(MaxParts))
		assert.LessOrEqual(t, ps*int64(conc), max(32*mib, ps), "buffers stay within budget")
	}
}
