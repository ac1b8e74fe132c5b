package devstack

import (
	"context"
	"fmt"
	"github.com/dustin/go-humanize"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/geoblob/geoblob/shared/registry"
)

// Compared is one key of a byte-for-byte comparison.
type Compared struct {
	Key       string
	Primary   *ObjectSum // nil: not on the primary
	Secondary *ObjectSum // nil: not on the secondary
}

// Problem describes how the copies differ; empty when they are identical.
func (c Compared) Problem() string {
	switch {
	case c.Primary == nil:
		return "only on secondary (deleted on primary, not removed)"
	case c.Secondary == nil:
		return "missing on secondary"
	case c.Primary.Size != c.Secondary.Size:
		return fmt.Sprintf("size differs: primary %d, secondary %d", c.Primary.Size, c.Secondary.Size)
	case c.Primary.SHA256 != c.Secondary.SHA256:
		return "SHA-256 differs"
	}
	return ""
}

// Comparison is the result of Compare.
type Comparison struct {
	Objects []Compared // sorted by key
}

// Mismatches returns the keys whose copies differ.
func (c Comparison) Mismatches() []Compared {
	var out []Compared
	for _, o := range c.Objects {
		if o.Problem() != "" {
			out = append(out, o)
		}
	}
	return out
}

// Bytes is the total size of the primary's objects.
func (c Comparison) Bytes() int64 {
	var n int64
	for _, o := range c.Objects {
		if o.Primary != nil {
			n += o.Primary.Size
		}
	}
	return n
}

// Compare lists both buckets, reads every object of each and compares sizes
// and SHA-256 digests key by key.
func Compare(ctx context.Context, primary, secondary Bucket) (Comparison, error) {
	ps, err := primary.Sums(ctx)
	if err != nil {
		return Comparison{}, err
	}
	ss, err := secondary.Sums(ctx)
	if err != nil {
		return Comparison{}, err
	}
	byKey := map[string]*Compared{}
	get := func(k string) *Compared {
		if c, ok := byKey[k]; ok {
			return c
		}
		c := &Compared{Key: k}
		byKey[k] = c
		return c
	}
	for i := range ps {
		get(ps[i].Key).Primary = &ps[i]
	}
	for i := range ss {
		get(ss[i].Key).Secondary = &ss[i]
	}
	out := Comparison{Objects: make([]Compared, 0, len(byKey))}
	for _, c := range byKey {
		out.Objects = append(out.Objects, *c)
	}
	sort.Slice(out.Objects, func(i, j int) bool { return out.Objects[i].Key < out.Objects[j].Key })
	return out, nil
}

// Write prints the comparison: one line per object when verbose, then every
// mismatch and a summary line.
func (c Comparison) Write(w io.Writer, verbose bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if verbose {
		fmt.Fprintln(tw, "RESULT\tSIZE\tSHA-256 (primary)\tSHA-256 (secondary)\tKEY")
		for _, o := range c.Objects {
			res, size, psum, ssum := "ok", "-", "-", "-"
			if p := o.Problem(); p != "" {
				res = "DIFF"
			}
			if o.Primary != nil {
				size, psum = HumanBytes(o.Primary.Size), o.Primary.SHA256[:16]+"…"
			}
			if o.Secondary != nil {
				ssum = o.Secondary.SHA256[:16] + "…"
				if size == "-" {
					size = HumanBytes(o.Secondary.Size)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%q\n", res, size, psum, ssum, o.Key)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("devstack: write comparison: %w", err)
		}
	}
	bad := c.Mismatches()
	for _, o := range bad {
		fmt.Fprintf(w, "MISMATCH %q: %s\n", o.Key, o.Problem())
	}
	if len(bad) == 0 {
		_, err := fmt.Fprintf(w, "byte-for-byte: %d objects, %s: primary and secondary are identical\n", len(c.Objects), HumanBytes(c.Bytes()))
		return err
	}
	_, err := fmt.Fprintf(w, "byte-for-byte: %d of %d objects differ\n", len(bad), len(c.Objects))
	return err
}

// HumanBytes formats n with a binary unit (KiB, MiB, ...).
func HumanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// WriteStatus prints the per-type table of the registry's counters
// (registry.Store.TypeStatus, never a count of the table): one row per type
// of names (in that order, zeros when the registry has no rows for it),
// then any other type the registry knows, then the total.
func WriteStatus(w io.Writer, names []string, stats []registry.TypeStatus) error {
	byType := map[string]registry.TypeStatus{}
	for _, s := range stats {
		byType[s.DataType] = s
	}
	rows := make([]registry.TypeStatus, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		s := byType[n]
		s.DataType = n
		rows = append(rows, s)
		seen[n] = true
	}
	for _, s := range stats {
		if !seen[s.DataType] {
			rows = append(rows, s)
		}
	}
	var total registry.TypeStatus
	total.DataType = "TOTAL"
	width := len("DATA TYPE")
	for _, s := range rows {
		width = max(width, len(s.DataType))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tFILES\tSYNCED\tFAILED\tPENDING\tVERIFIED\tDELETED\tBYTES\t\n", width, "DATA TYPE")
	line := func(s registry.TypeStatus) {
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", width, s.DataType, s.Rows, s.Synced, s.Failed, s.Pending+s.Started, s.Verified, s.Tombstones, HumanBytes(s.BytesTotal))
	}
	for _, s := range rows {
		line(s)
		total.Rows += s.Rows
		total.Synced += s.Synced
		total.Failed += s.Failed
		total.Pending += s.Pending + s.Started
		total.Verified += s.Verified
		total.Tombstones += s.Tombstones
		total.BytesTotal += s.BytesTotal
	}
	fmt.Fprintln(tw, strings.Repeat("-", width)+"\t\t\t\t\t\t\t\t")
	line(total)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("devstack: write status: %w", err)
	}
	return nil
}
