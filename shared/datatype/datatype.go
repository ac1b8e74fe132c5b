// Package datatype is geoblob's self-service framework for replicable blob types.
//
// A data type (Geo calls it a replicable type) is a kind of package file that a
// registry stores in the primary bucket: Maven package files, npm tarballs, NuGet
// packages and symbols, and so on. Every type gets all of its behaviour (registry
// rows, copy, delete, verification, tests) from the shared blob strategy; a type
// only says which object keys belong to it. Adding one is a single file with an
// init function that calls register, or one entry in GEOBLOB_EXTRA_TYPES.
package datatype

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Type describes one replicable kind of blob.
type Type struct {
	// Name is the registry name: lower snake_case, unique, stable forever
	// (it is stored in every registry row of the type).
	Name string `json:"name"`
	// Description is one human sentence shown in docs and the demo.
	Description string `json:"description,omitempty"`
	// Patterns are RE2 regular expressions matched against the URL-decoded
	// object key; a key belongs to the type when any pattern matches.
	Patterns []string `json:"patterns"`
	// Examples are object keys that must be recognised as this type. The
	// conformance suite replicates each of them and the demo uploads them.
	Examples []string `json:"examples,omitempty"`
}

// KeepMatchingExamples returns the type with only the examples its current
// patterns match (used after a pattern override).
func (t Type) KeepMatchingExamples() Type {
	res, err := compile(t)
	if err != nil {
		return t
	}
	var keep []string
	for _, ex := range t.Examples {
		if matchAny(res, ex) {
			keep = append(keep, ex)
		}
	}
	t.Examples = keep
	return t
}

// ErrInvalid is returned (wrapped) when a type or catalog definition is unusable.
var ErrInvalid = errors.New("datatype: invalid definition")

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate reports whether the type is usable: a valid name, at least one
// compiling pattern, and examples (optional here; built-in types must have
// them, the conformance suite checks) that the patterns match.
func (t Type) Validate() error {
	if !validName.MatchString(t.Name) {
		return fmt.Errorf("%w: name %q must be lower snake_case (a-z, 0-9, _), 1-63 chars", ErrInvalid, t.Name)
	}
	if len(t.Patterns) == 0 {
		return fmt.Errorf("%w: type %s has no key patterns", ErrInvalid, t.Name)
	}
	res, err := compile(t)
	if err != nil {
		return err
	}
	for _, ex := range t.Examples {
		if !matchAny(res, ex) {
			return fmt.Errorf("%w: example key %q of type %s matches none of its patterns", ErrInvalid, ex, t.Name)
		}
	}
	return nil
}

func compile(t Type) ([]*regexp.Regexp, error) {
	res := make([]*regexp.Regexp, 0, len(t.Patterns))
	for _, p := range t.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: type %s pattern %q: %v", ErrInvalid, t.Name, p, err)
		}
		res = append(res, re)
	}
	return res, nil
}

func matchAny(res []*regexp.Regexp, key string) bool {
	for _, re := range res {
		if re.MatchString(key) {
			return true
		}
	}
	return false
}

type compiled struct {
	Type
	res []*regexp.Regexp
}

// Catalog is an immutable, ordered set of data types. Match returns the first
// type whose patterns match a key; NewCatalog rejects catalogs in which an
// example key of one type would be claimed by another, so order never hides a type.
type Catalog struct {
	types    []compiled
	prefixes []string
}

// NewCatalog validates the types and builds a catalog in the given order.
func NewCatalog(types ...Type) (*Catalog, error) {
	c := &Catalog{}
	seen := map[string]bool{}
	for _, t := range types {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: type %s defined twice", ErrInvalid, t.Name)
		}
		seen[t.Name] = true
		res, _ := compile(t) // Validate compiled them already
		t.Patterns = slices.Clone(t.Patterns)
		t.Examples = slices.Clone(t.Examples)
		c.types = append(c.types, compiled{Type: t, res: res})
	}
	for _, t := range c.types {
		for _, ex := range t.Examples {
			if got, _ := c.Match(ex); got.Name != t.Name {
				return nil, fmt.Errorf("%w: example key %q of type %s is claimed by type %s; make the patterns disjoint", ErrInvalid, ex, t.Name, got.Name)
			}
		}
	}
	return c, nil
}

// WithPrefixes returns a copy of the catalog that also requires a key to
// start with one of the prefixes (selective sync: a secondary that replicates
// only part of the bucket). No prefixes selects every key.
func (c *Catalog) WithPrefixes(prefixes ...string) *Catalog {
	out := *c
	out.prefixes = nil
	for _, p := range prefixes {
		if p = strings.TrimSpace(p); p != "" {
			out.prefixes = append(out.prefixes, p)
		}
	}
	return &out
}

// Prefixes returns the key prefixes the catalog is limited to (nil: all keys).
func (c *Catalog) Prefixes() []string { return slices.Clone(c.prefixes) }

// Selected reports whether the key falls under the catalog's prefixes.
func (c *Catalog) Selected(key string) bool {
	if len(c.prefixes) == 0 {
		return true
	}
	for _, p := range c.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Match returns the data type of an object key (URL-decoded), or false when
// the key belongs to no type, or lies outside the selected prefixes, and must
// be ignored.
func (c *Catalog) Match(key string) (Type, bool) {
	if !c.Selected(key) {
		return Type{}, false
	}
	for _, t := range c.types {
		if matchAny(t.res, key) {
			return t.Type, true
		}
	}
	return Type{}, false
}

// Lookup returns the type with the given name.
func (c *Catalog) Lookup(name string) (Type, bool) {
	for _, t := range c.types {
		if t.Name == name {
			return t.Type, true
		}
	}
	return Type{}, false
}

// Types returns the catalog's types in match order.
func (c *Catalog) Types() []Type {
	out := make([]Type, len(c.types))
	for i, t := range c.types {
		out[i] = t.Type
	}
	return out
}

// Names returns the catalog's type names in match order.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.types))
	for i, t := range c.types {
		out[i] = t.Name
	}
	return out
}

// builtins is filled only by the init functions of this package's type files
// and never changed afterwards; Builtin hands out copies.
var builtins []Type

// register adds a built-in type. Call it only from an init function of a type
// file in this package.
func register(t Type) {
	builtins = append(builtins, t)
}

// Builtin returns every built-in type, sorted by name, as fresh copies.
func Builtin() []Type {
	out := make([]Type, len(builtins))
	for i, t := range builtins {
		t.Patterns = slices.Clone(t.Patterns)
		t.Examples = slices.Clone(t.Examples)
		out[i] = t
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// BuiltinCatalog returns a catalog of every built-in type with default patterns.
func BuiltinCatalog() (*Catalog, error) {
	return NewCatalog(Builtin()...)
}

// Select keeps the types whose names are listed, in the order of types.
// An unknown name is an error naming it, so a typo never disables replication silently.
func Select(types []Type, names []string) ([]Type, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[strings.TrimSpace(n)] = true
	}
	var out []Type
	for _, t := range types {
		if want[t.Name] {
			out = append(out, t)
			delete(want, t.Name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("%w: unknown data type(s) %s", ErrInvalid, strings.Join(unknown, ", "))
	}
	return out, nil
}
