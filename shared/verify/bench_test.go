package verify_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/verify"
)

// BenchmarkDeepVerify measures deep verification (one GET, every byte
// through SHA-256) of one object from a local S3 server and reports it as a
// ratio of in-memory SHA-256 of the same bytes in the same run (the
// single-core hashing limit). Two stores: MinIO, a separate process, so with
// -cpu 1 the ratio is that of our own work on one core; and gofakes3 inside
// the benchmark process, whose serving shares that core (a lower bound).
// bytes-read/op is counted by the hashing loop: it must equal the object
// size (one read). cpu-ms/MiB is this process's CPU per MiB verified.
func BenchmarkDeepVerify(b *testing.B) {
	b.Run("minio", func(b *testing.B) {
		benchmarkDeepVerify(b, s3test.NewMinio(b).Endpoint())
	})
	b.Run("gofakes3", func(b *testing.B) {
		benchmarkDeepVerify(b, s3test.NewGofakes3(b))
	})
}

func benchmarkDeepVerify(b *testing.B, ep string) {
	bucket := s3test.Bucket(b, ep, "geoblob-bench")
	side := bucket.Store()
	for _, size := range []int{1 << 20, 16 << 20, 64 << 20, 256 << 20} {
		if testing.Short() && size > 16<<20 {
			continue
		}
		data := content(size, size)
		key := fmt.Sprintf("bench/%d", size)
		_, err := bucket.PutChecksummed(b.Context(), key, data, "SHA256")
		require.NoError(b, err)
		want := sha(data)
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			var read int64
			var deepTime, hashTime, cpuTime time.Duration
			n := 0
			for b.Loop() {
				start, cpu0 := time.Now(), processCPU()
				chk := verify.CheckObject(context.Background(), side, key, want, int64(size), verify.ModeDeep)
				deepTime += time.Since(start)
				cpuTime += processCPU() - cpu0
				if chk.Outcome != verify.OutcomeMatch {
					b.Fatalf("outcome %s: %v", chk.Outcome, chk.Err)
				}
				read += chk.BytesRead
				n++
				// The limit, measured right after on the same bytes so
				// that load on the machine affects both alike.
				b.StopTimer()
				start = time.Now()
				sha256.Sum256(data)
				hashTime += time.Since(start)
				b.StartTimer()
			}
			b.ReportMetric(float64(read)/float64(n), "bytes-read/op")
			b.ReportMetric(float64(size)*float64(n)/hashTime.Seconds()/1e6, "sha256-MB/s")
			b.ReportMetric(hashTime.Seconds()/deepTime.Seconds(), "ratio")
			// This process's CPU per MiB verified (the server's is not
			// counted when it is MinIO): the verify worker's cost.
			b.ReportMetric(cpuTime.Seconds()*1000/(float64(size)*float64(n)/(1<<20)), "cpu-ms/MiB")
		})
	}
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFastVsDeep1MiB verifies a set of 1 MiB objects stored with
// x-amz-checksum-sha256 on MinIO, Concurrency at a time like a pass, and
// reports verified objects per second in fast and deep mode and their ratio
// (object checks only, no registry writes), plus plain HeadObject calls per
// second at the same concurrency: the ceiling of fast mode on that server.
func BenchmarkFastVsDeep1MiB(b *testing.B) {
	srv := s3test.NewMinio(b)
	bucket := s3test.Bucket(b, srv.Endpoint(), "geoblob-bench")
	side := bucket.Store()
	const objects, size = 200, 1 << 20
	keys := make([]string, objects)
	wants := make([]string, objects)
	for i := range keys {
		data := content(i, size)
		keys[i] = fmt.Sprintf("bench/%04d", i)
		wants[i] = sha(data)
		_, err := bucket.PutChecksummed(b.Context(), keys[i], data, "SHA256")
		require.NoError(b, err)
	}
	pass := func(mode verify.Mode) (time.Duration, int) {
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, verify.DefaultConcurrency)
		var mu sync.Mutex
		fast := 0
		for i := range keys {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				chk := verify.CheckObject(context.Background(), side, keys[i], wants[i], size, mode)
				if chk.Outcome != verify.OutcomeMatch {
					b.Errorf("%s: outcome %s: %v", keys[i], chk.Outcome, chk.Err)
				}
				if chk.Fast {
					mu.Lock()
					fast++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start), fast
	}
	pass(verify.ModeDeep) // warm up
	var deepTime time.Duration
	for range 3 {
		d, _ := pass(verify.ModeDeep)
		deepTime += d
	}
	deepRate := float64(3*objects) / deepTime.Seconds()
	n := 0
	for b.Loop() {
		_, fast := pass(verify.ModeFast)
		if fast != objects {
			b.Fatalf("fast mode decided %d of %d without reading", fast, objects)
		}
		n++
	}
	fastRate := float64(n*objects) / b.Elapsed().Seconds()
	b.StopTimer()
	// The ceiling of fast mode on this server: plain HeadObject calls at the
	// same concurrency, nothing else.
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, verify.DefaultConcurrency)
	for range 3 {
		for i := range keys {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				_, err := side.Head(context.Background(), keys[i])
				if err != nil {
					b.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	headRate := float64(3*objects) / time.Since(start).Seconds()
	b.ReportMetric(headRate, "raw-head/s")
	b.ReportMetric(fastRate, "fast-objects/s")
	b.ReportMetric(deepRate, "deep-objects/s")
	b.ReportMetric(fastRate/deepRate, "fast/deep")
}
