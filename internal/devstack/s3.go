package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/shared/blobstore"
)

// Side names one region of the stack.
type Side string

// The two regions.
const (
	Primary   Side = "primary"
	Secondary Side = "secondary"
)

// Bucket is one region's bucket (s3admin: the local-only calls, and its
// blob store for everything else).
type Bucket struct {
	Side Side
	*s3admin.Bucket
}

// Bucket returns a client for one region of the stack.
func (s Settings) Bucket(side Side) Bucket {
	endpoint, region, name := s.PrimaryEndpoint(), s.PrimaryRegion, s.PrimaryBucket
	if side == Secondary {
		endpoint, region, name = s.SecondaryEndpoint(), s.SecondaryRegion, s.SecondaryBucket
	}
	client := blobstore.ClientFromConfig(aws.Config{HTTPClient: &http.Client{Timeout: 5 * time.Minute}}, blobstore.Location{
		Bucket:      name,
		Region:      region,
		Endpoint:    endpoint,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	}, s3admin.MaxAttempts(5))
	return Bucket{Side: side, Bucket: s3admin.New(client, name)}
}

// ensure creates the bucket if it does not exist yet.
func (b Bucket) ensure(ctx context.Context) error {
	if err := b.Create(ctx); err != nil {
		return fmt.Errorf("devstack: %s: %w", b.Side, err)
	}
	return nil
}

// setNotifications turns the bucket's event notifications to the stack's
// webhook target on, or off (an empty configuration).
func (b Bucket) setNotifications(ctx context.Context, on bool) error {
	var err error
	if on {
		err = minioproc.ConfigureWebhook(ctx, b.Bucket, WebhookID)
	} else {
		err = b.ClearNotifications(ctx)
	}
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// Put uploads body under key as a package registry would (multipart above
// 16 MiB, like the aws CLI).
func (b Bucket) Put(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := b.Bucket.Put(ctx, key, body, contentType)
	return err
}

// Delete removes key (deleting a missing key is not an error, as in S3).
func (b Bucket) Delete(ctx context.Context, key string) error {
	if err := b.Store().Delete(ctx, key); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// Exists reports whether key exists (not in a bucket that does not exist
// either).
func (b Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.Store().Head(ctx, key)
	if errors.Is(err, blobstore.ErrNotFound) || errors.Is(err, blobstore.ErrNoSuchBucket) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("devstack: %w", err)
	}
	return true, nil
}

// ObjectSum is an object's size and SHA-256 as read back.
type ObjectSum struct {
	Key    string
	Size   int64
	SHA256 string
}

// Keys lists every key of the bucket with its size.
func (b Bucket) Keys(ctx context.Context) (map[string]int64, error) {
	out, err := b.Sizes(ctx)
	if err != nil {
		return nil, fmt.Errorf("devstack: list %s (%s): %w", b.Name(), b.Side, err)
	}
	return out, nil
}

// Sums lists the bucket and reads every object back, hashing it with SHA-256
// (concurrently), sorted by key.
func (b Bucket) Sums(ctx context.Context) ([]ObjectSum, error) {
	keys, err := b.Keys(ctx)
	if err != nil {
		return nil, err
	}
	sums := make([]ObjectSum, 0, len(keys))
	for k, size := range keys {
		sums = append(sums, ObjectSum{Key: k, Size: size})
	}
	sort.Slice(sums, func(i, j int) bool { return sums[i].Key < sums[j].Key })
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for i := range sums {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sum, n, err := b.hash(ctx, sums[i].Key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			sums[i].SHA256, sums[i].Size = sum, n
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return sums, nil
}

func (b Bucket) hash(ctx context.Context, key string) (string, int64, error) {
	d, err := b.Store().Hash(ctx, key)
	if err != nil {
		return "", 0, fmt.Errorf("devstack: %w", err)
	}
	return d.SHA256, d.Size, nil
}
