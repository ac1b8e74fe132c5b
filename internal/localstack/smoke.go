package localstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/samples"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
)

// ErrSmoke is returned (wrapped, saying which step) when the deployed chain
// does not replicate the smoke file in time.
var ErrSmoke = errors.New("localstack: smoke test failed")

// SmokeOptions configure Smoke.
type SmokeOptions struct {
	// Primary and Secondary are the deployed buckets, with clients for their endpoints.
	Primary, Secondary devstack.Bucket
	// Registry is the deployed registry; Catalog classifies the smoke key.
	Registry *registry.Store
	Catalog  *datatype.Catalog
	// Key is the object key to upload; empty picks a new npm package file.
	Key string
	// Timeout bounds each wait (default 2 minutes); Poll is the polling interval (default 500 ms).
	Timeout, Poll time.Duration
	// Out receives one line per step.
	Out io.Writer
}

// Smoke uploads a package file to the primary bucket, waits until the
// secondary holds the same bytes and the registry row is synced with their
// checksum, deletes it, and waits until the secondary copy is gone and the
// row is tombstoned. Nothing but the deployed chain (S3 → EventBridge →
// queue → function) moves the file.
func Smoke(ctx context.Context, o SmokeOptions) error {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	key := o.Key
	if key == "" {
		key = fmt.Sprintf("npm/geoblob-smoke/-/geoblob-smoke-1.0.%d.tgz", time.Now().UnixNano())
	}
	typ, ok := o.Catalog.Match(key)
	if !ok {
		return fmt.Errorf("%w: key %q matches no enabled data type", ErrInvalid, key)
	}
	body, err := samples.Content(key, 64<<10)
	if err != nil {
		return fmt.Errorf("localstack: smoke: %w", err)
	}
	sum := sha256.Sum256(body)
	want := hex.EncodeToString(sum[:])
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(o.Out, "%6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	wait := func(what string, cond func() (bool, string, error)) error {
		deadline := time.Now().Add(o.Timeout)
		var last string
		for {
			done, state, err := cond()
			if err != nil {
				return fmt.Errorf("localstack: smoke: %s: %w", what, err)
			}
			if done {
				step("%s", what)
				return nil
			}
			last = state
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %s: not within %s (last seen: %s)", ErrSmoke, what, o.Timeout, last)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("localstack: smoke: %s: %w", what, ctx.Err())
			case <-time.After(o.Poll):
			}
		}
	}
	row := func() (registry.Row, bool, error) {
		r, err := o.Registry.Get(ctx, typ.Name, key)
		if errors.Is(err, registry.ErrNotFound) {
			return r, false, nil
		}
		return r, err == nil, err
	}

	if err := o.Primary.Put(ctx, key, body, samples.ContentType(key)); err != nil {
		return fmt.Errorf("localstack: smoke: upload: %w", err)
	}
	step("uploaded s3://%s/%s (%s, %d bytes, sha256 %.12s)", o.Primary.Name(), key, typ.Name, len(body), want)
	if err := wait("the secondary holds the same bytes", func() (bool, string, error) {
		got, err := objectSHA256(ctx, o.Secondary, key)
		if err != nil || got == "" {
			return false, "not in the secondary bucket", err
		}
		return got == want, "secondary sha256 " + got, nil
	}); err != nil {
		return err
	}
	if err := wait("the registry row is synced", func() (bool, string, error) {
		r, found, err := row()
		if !found {
			return false, "no registry row", err
		}
		return r.State == registry.StateSynced && !r.Tombstoned() && r.PrimarySHA256 == want,
			fmt.Sprintf("state %s, sha256 %.12s, failure %q", r.State, r.PrimarySHA256, r.LastSyncFailure), nil
	}); err != nil {
		return err
	}
	if err := o.Primary.Delete(ctx, key); err != nil {
		return fmt.Errorf("localstack: smoke: delete: %w", err)
	}
	step("deleted s3://%s/%s", o.Primary.Name(), key)
	if err := wait("the secondary copy is gone", func() (bool, string, error) {
		exists, err := o.Secondary.Exists(ctx, key)
		return !exists, "still in the secondary bucket", err
	}); err != nil {
		return err
	}
	return wait("the registry row is tombstoned", func() (bool, string, error) {
		r, found, err := row()
		if !found {
			return false, "no registry row", err
		}
		return r.Tombstoned(), fmt.Sprintf("state %s, not tombstoned", r.State), nil
	})
}

// objectSHA256 reads key back and returns its SHA-256, or "" when it does not exist.
func objectSHA256(ctx context.Context, b devstack.Bucket, key string) (string, error) {
	exists, err := b.Exists(ctx, key)
	if err != nil || !exists {
		return "", err
	}
	d, err := b.Store().Hash(ctx, key)
	if err != nil {
		return "", err
	}
	return d.SHA256, nil
}
