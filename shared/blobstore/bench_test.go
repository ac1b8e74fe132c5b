package blobstore_test

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/blobstore/blobstoretest"
)

// benchSize is one benchmark object: bench/<name> of size bytes.
type benchSize struct {
	name string
	size int64
}

// Benchmark objects are generated (blobstoretest.Random), never stored in git.
var benchSizes = []benchSize{
	{"4KiB", 4 << 10},
	{"1MiB", 1 << 20},
	{"256MiB", 256 << 20},
}

// benchPair is a primary and a secondary endpoint standing for two regions.
type benchPair struct {
	name     string
	src, dst *s3.Client
}

// benchPairs starts two MinIO processes (out of process, realistic) and two
// in-process gofakes3 servers, each pair seeded with the benchmark objects.
func benchPairs(b *testing.B) []benchPair {
	b.Helper()
	pairs := []benchPair{
		{"minio", s3test.Client(b.Context(), s3test.NewMinio(b).Endpoint()), s3test.Client(b.Context(), s3test.NewMinio(b).Endpoint())},
		{"gofakes3", s3test.Client(b.Context(), s3test.NewGofakes3(b)), s3test.Client(b.Context(), s3test.NewGofakes3(b))},
	}
	for _, p := range pairs {
		s3test.CreateBucket(b, p.src, "primary")
		s3test.CreateBucket(b, p.dst, "secondary")
		seed := blobstore.New(p.src, "primary", blobstore.Options{})
		for i, sz := range benchSizes {
			_, err := seed.Put(b.Context(), "bench/"+sz.name, blobstoretest.Random(uint64(i), sz.size), sz.size,
				blobstore.PutAttrs{ContentType: "application/octet-stream"})
			require.NoError(b, err)
		}
	}
	return pairs
}

// BenchmarkCopy measures blobstore.Copy (GET, SHA-256 in the same pass,
// PutObject or multipart with checksum tag, HEAD verification).
func BenchmarkCopy(b *testing.B) {
	eachCase(b, func(b *testing.B, _ benchPair, src, dst *blobstore.Store, sz benchSize) {
		b.SetBytes(sz.size)
		for b.Loop() {
			if _, err := blobstore.Copy(b.Context(), src, dst, "bench/"+sz.name); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/copy")
	})
}

// eachCase runs fn as the sub-benchmark <pair>/<size> for every server
// pair and benchmark object, with stores on the pair's primary and
// secondary buckets.
func eachCase(b *testing.B, fn func(b *testing.B, p benchPair, src, dst *blobstore.Store, sz benchSize)) {
	for _, p := range benchPairs(b) {
		src := blobstore.New(p.src, "primary", blobstore.Options{})
		dst := blobstore.New(p.dst, "secondary", blobstore.Options{})
		for _, sz := range benchSizes {
			b.Run(p.name+"/"+sz.name, func(b *testing.B) { fn(b, p, src, dst, sz) })
		}
	}
}

// BenchmarkRawGetPut is the baseline: plain GetObject into memory, then one
// plain PutObject of the same bytes, no hashing, no tag, no verification.
func BenchmarkRawGetPut(b *testing.B) {
	eachCase(b, func(b *testing.B, p benchPair, _, _ *blobstore.Store, sz benchSize) {
		b.SetBytes(sz.size)
		buf := bytes.NewBuffer(make([]byte, 0, sz.size+bytes.MinRead))
		for b.Loop() {
			rawGetPut(b, p, "bench/"+sz.name, buf)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/copy")
	})
}

// BenchmarkCopyPeakHeap copies 256 MiB and 1 GiB objects between two MinIO
// processes while sampling the heap; peak-heap-MiB must not grow with size.
func BenchmarkCopyPeakHeap(b *testing.B) {
	srcC := s3test.Client(b.Context(), s3test.NewMinio(b).Endpoint())
	dstC := s3test.Client(b.Context(), s3test.NewMinio(b).Endpoint())
	s3test.CreateBucket(b, srcC, "primary")
	s3test.CreateBucket(b, dstC, "secondary")
	src := blobstore.New(srcC, "primary", blobstore.Options{})
	dst := blobstore.New(dstC, "secondary", blobstore.Options{})
	for _, sz := range []struct {
		name string
		size int64
	}{{"256MiB", 256 << 20}, {"1GiB", 1 << 30}} {
		_, err := src.Put(b.Context(), "heap/"+sz.name, blobstoretest.Random(9, sz.size), sz.size, blobstore.PutAttrs{})
		require.NoError(b, err)
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(sz.size)
			var peakInuse, peakAlloc, base uint64
			for b.Loop() {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base = ms.HeapInuse
				inuse, alloc, stop := sampleHeap(5 * time.Millisecond)
				_, err := blobstore.Copy(b.Context(), src, dst, "heap/"+sz.name)
				stop()
				if err != nil {
					b.Fatal(err)
				}
				peakInuse, peakAlloc = max(peakInuse, inuse()), max(peakAlloc, alloc())
			}
			const mib = 1 << 20
			b.ReportMetric(float64(peakInuse)/mib, "peak-heap-MiB")
			b.ReportMetric(float64(peakAlloc)/mib, "peak-alloc-MiB")
			b.ReportMetric(float64(base)/mib, "base-heap-MiB")
		})
	}
}

// sampleHeap samples HeapInuse and HeapAlloc every interval until stop is
// called; the returned funcs give the peaks seen (valid after stop).
func sampleHeap(interval time.Duration) (inuse, alloc func() uint64, stop func()) {
	var (
		wg           sync.WaitGroup
		peakI, peakA uint64
		ctx, cancel  = context.WithCancel(context.Background())
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakI, peakA = max(peakI, ms.HeapInuse), max(peakA, ms.HeapAlloc)
	}
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-ctx.Done():
				sample()
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { return peakI }, func() uint64 { return peakA }, func() { cancel(); wg.Wait() }
}

// BenchmarkCopyVsRaw pairs the two measurements: every iteration runs one
// Copy and one raw GET+PUT of the same object (alternating which goes
// first), so load from other processes hits both alike. copy/raw is the
// throughput ratio (raw time / copy time); >= 1 means Copy is as fast.
func BenchmarkCopyVsRaw(b *testing.B) {
	eachCase(b, func(b *testing.B, p benchPair, src, dst *blobstore.Store, sz benchSize) {
		b.SetBytes(2 * sz.size)
		key := "bench/" + sz.name
		buf := bytes.NewBuffer(make([]byte, 0, sz.size+bytes.MinRead))
		var tCopy, tRaw time.Duration
		copyOnce := func() {
			start := time.Now()
			if _, err := blobstore.Copy(b.Context(), src, dst, key); err != nil {
				b.Fatal(err)
			}
			tCopy += time.Since(start)
		}
		rawOnce := func() {
			start := time.Now()
			rawGetPut(b, p, key, buf)
			tRaw += time.Since(start)
		}
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				copyOnce()
				rawOnce()
			} else {
				rawOnce()
				copyOnce()
			}
			i++
		}
		b.ReportMetric(float64(tCopy.Microseconds())/1e3/float64(i), "ms/copy")
		b.ReportMetric(float64(tRaw.Microseconds())/1e3/float64(i), "ms/raw")
		b.ReportMetric(tRaw.Seconds()/tCopy.Seconds(), "copy/raw")
	})
}

func rawGetPut(b *testing.B, p benchPair, key string, buf *bytes.Buffer) {
	buf.Reset()
	out, err := p.src.GetObject(b.Context(), &s3.GetObjectInput{Bucket: aws.String("primary"), Key: aws.String(key)})
	if err != nil {
		b.Fatal(err)
	}
	_, err = buf.ReadFrom(out.Body)
	_ = out.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	_, err = p.dst.PutObject(b.Context(), &s3.PutObjectInput{
		Bucket: aws.String("secondary"), Key: aws.String(key),
		Body: bytes.NewReader(buf.Bytes()), ContentLength: aws.Int64(int64(buf.Len())),
		ContentType: out.ContentType,
	})
	if err != nil {
		b.Fatal(err)
	}
}
