package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/shared/blobstore"
)

// Side names one region of the stack.
type Side string

// The two regions.
const (
	Primary   Side = "primary"
	Secondary Side = "secondary"
)

// Bucket is one region's bucket with a client for it.
type Bucket struct {
	Side   Side
	Name   string
	Client *s3.Client
}

// Bucket returns a client for one region of the stack.
func (s Settings) Bucket(side Side) Bucket {
	endpoint, region, name := s.PrimaryEndpoint(), s.PrimaryRegion, s.PrimaryBucket
	if side == Secondary {
		endpoint, region, name = s.SecondaryEndpoint(), s.SecondaryRegion, s.SecondaryBucket
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:  &http.Client{Timeout: 5 * time.Minute},
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.RetryMaxAttempts = 5
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return Bucket{Side: side, Name: name, Client: client}
}

// ensure creates the bucket if it does not exist yet.
func (b Bucket) ensure(ctx context.Context) error {
	_, err := b.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.Name)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("devstack: create bucket %s (%s): %w", b.Name, b.Side, err)
	}
	return nil
}

// setNotifications turns the bucket's event notifications to the stack's
// webhook target on, or off (an empty configuration).
func (b Bucket) setNotifications(ctx context.Context, on bool) error {
	if on {
		if err := minioproc.ConfigureWebhook(ctx, b.Client, b.Name, WebhookID); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
		return nil
	}
	_, err := b.Client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    aws.String(b.Name),
		NotificationConfiguration: &types.NotificationConfiguration{},
	})
	if err != nil {
		return fmt.Errorf("devstack: turn notifications of %s off: %w", b.Name, err)
	}
	return nil
}

// Put uploads body under key (multipart above 16 MiB, like the aws CLI).
func (b Bucket) Put(ctx context.Context, key string, body []byte, contentType string) error {
	up := manager.NewUploader(b.Client, func(u *manager.Uploader) { u.PartSize = 8 << 20 })
	in := &s3.PutObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key), Body: bytes.NewReader(body)}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if len(body) <= 16<<20 {
		if _, err := b.Client.PutObject(ctx, in); err != nil {
			return fmt.Errorf("devstack: put %s/%s: %w", b.Name, key, err)
		}
		return nil
	}
	if _, err := up.Upload(ctx, in); err != nil {
		return fmt.Errorf("devstack: upload %s/%s: %w", b.Name, key, err)
	}
	return nil
}

// PutFile uploads a local file under key.
func (b Bucket) PutFile(ctx context.Context, key, file string) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("devstack: open %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("devstack: stat %s: %w", file, err)
	}
	up := manager.NewUploader(b.Client, func(u *manager.Uploader) { u.PartSize = 8 << 20 })
	if _, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key), Body: f}); err != nil {
		return 0, fmt.Errorf("devstack: upload %s to %s/%s: %w", file, b.Name, key, err)
	}
	return st.Size(), nil
}

// Store is the bucket's blob store (blobstore, the one S3 adapter): reads,
// hashes, listings and deletes go through it. Uploads (Put, PutFile) stay
// plain PutObject/multipart calls without geoblob's checksum tag, as a
// package registry's would be.
func (b Bucket) Store() *blobstore.Store {
	return blobstore.New(b.Client, b.Name, blobstore.Options{Logger: slog.New(slog.DiscardHandler)})
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
	out := map[string]int64{}
	err := b.Store().List(ctx, blobstore.ListOptions{}, func(page []blobstore.Object) error {
		for _, o := range page {
			out[o.Key] = o.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("devstack: list %s (%s): %w", b.Name, b.Side, err)
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
