package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Env reads environment variables and collects one error per bad variable,
// each naming it and wrapping the sentinel given to NewEnv, so a function
// reports every configuration problem at start, not just the first.
type Env struct {
	getenv   func(string) string
	sentinel error
	errs     []error
}

// NewEnv reads through getenv (os.Getenv in production); errors wrap sentinel.
func NewEnv(getenv func(string) string, sentinel error) *Env {
	return &Env{getenv: getenv, sentinel: sentinel}
}

// Fail records a problem with variable name.
func (e *Env) Fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%w: %s %s", e.sentinel, name, fmt.Sprintf(format, args...)))
}

// Err returns every recorded problem joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Str returns the variable with surrounding space removed ("" when unset).
func (e *Env) Str(name string) string { return strings.TrimSpace(e.getenv(name)) }

// Bool returns the variable as a boolean, def when unset.
func (e *Env) Bool(name string, def bool) bool {
	v := e.Str(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Fail(name, "must be true or false, got %q", v)
		return def
	}
	return b
}

// Int returns the variable as an integer in [lo, hi], def when unset.
func (e *Env) Int(name string, def, lo, hi int64) int64 {
	v := e.Str(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		e.Fail(name, "must be an integer from %d to %d, got %q", lo, hi, v)
		return def
	}
	return n
}

// Duration returns the variable as a positive Go duration, def when unset.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := e.Str(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.Fail(name, "must be a positive Go duration such as 90s, 15m or 2160h, got %q", v)
		return def
	}
	return d
}

// Default sets *v to def when *v is zero or negative: how options structs
// apply their defaults to fields the caller left unset.
func Default[T ~int | ~int32 | ~int64 | ~float64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
