package backfill_test

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/internal/toolbin"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
	"github.com/geoblob/geoblob/shared/replication"
)

// BenchmarkSyncVsRclone copies 10,000 small objects (4–64 KiB) between two
// local MinIO servers, once with `rclone copy` and once with one backfill
// pass (reconcile + sync: registry rows, SHA-256 of every object, the
// checksum tag), at the same parallelism (10 copies in flight,
// GEOBLOB_COPY_CONCURRENCY's default), and with rclone's defaults (4
// transfers). rclone is looked up in <repo>/.local/bin (install:
// GOBIN=$PWD/.local/bin go install github.com/rclone/rclone@v1.76.0).
func BenchmarkSyncVsRclone(b *testing.B) {
	n := 10_000
	if os.Getenv("BENCH_N") == "100k" {
		n = 1000
	}
	rclone := filepath.Join(repoRoot(b), ".local", "bin", "rclone")
	if _, err := os.Stat(rclone); err != nil {
		b.Fatalf("rclone not installed at %s: GOBIN=%s go install github.com/rclone/rclone@v1.76.0", rclone, filepath.Dir(rclone))
	}
	src, dst := s3test.NewMinio(b), s3test.NewMinio(b)
	srcS3 := s3test.Bucket(b, src.Endpoint(), primaryBucket)
	// 4–64 KiB of every data type
	total := putN(b, srcS3, n, func(i int) int { return 4096 + (i*7919)%(60*1024) })

	env := append(os.Environ(), "RCLONE_CONFIG_DIR="+b.TempDir())
	for _, r := range []struct{ name, endpoint string }{{"SRC", src.Endpoint()}, {"DST", dst.Endpoint()}} {
		env = append(env,
			"RCLONE_CONFIG_"+r.name+"_TYPE=s3", "RCLONE_CONFIG_"+r.name+"_PROVIDER=Minio",
			"RCLONE_CONFIG_"+r.name+"_ACCESS_KEY_ID="+s3test.AccessKey,
			"RCLONE_CONFIG_"+r.name+"_SECRET_ACCESS_KEY="+s3test.SecretKey,
			"RCLONE_CONFIG_"+r.name+"_ENDPOINT="+r.endpoint, "RCLONE_CONFIG_"+r.name+"_REGION="+s3test.Region)
	}
	runRclone := func(bucket string, args ...string) time.Duration {
		s3test.Bucket(b, dst.Endpoint(), bucket)
		cmd := exec.CommandContext(b.Context(), rclone, append([]string{"copy", "src:" + primaryBucket, "dst:" + bucket,
			"--s3-no-check-bucket", "--config", "/dev/null"}, args...)...)
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		require.NoError(b, err, "rclone: %s", out)
		return d
	}

	for b.Loop() {
		b.StopTimer()
		rcloneMatched := runRclone(fmt.Sprintf("rclone-t10-%d", time.Now().UnixNano()), "--transfers", "10", "--checkers", "16")
		rcloneDefault := runRclone(fmt.Sprintf("rclone-def-%d", time.Now().UnixNano()))

		bucket := fmt.Sprintf("geoblob-%d", time.Now().UnixNano())
		secondary := s3test.Bucket(b, dst.Endpoint(), bucket).Store()
		quiet := slog.New(slog.DiscardHandler)
		pool := registrytest.NewPool(b)
		reg := registry.New(pool, registry.Options{})
		cat, err := datatype.BuiltinCatalog()
		require.NoError(b, err)
		primary := srcS3.Store()
		engine, err := replication.New(replication.Options{Registry: reg, Primary: primary, Secondary: secondary,
			Catalog: cat, Concurrency: 10, Logger: quiet})
		require.NoError(b, err)
		r, err := backfill.New(backfill.Options{Config: backfill.Config{Budget: time.Hour, ClaimSize: 100},
			Pool: pool, Registry: reg, Engine: engine, Catalog: cat, Primary: primary, Logger: quiet})
		require.NoError(b, err)
		b.StartTimer()
		start := time.Now()
		rep, err := r.Run(b.Context(), backfill.Request{Phases: []backfill.Phase{backfill.PhaseReconcile, backfill.PhaseSync}})
		geoblob := time.Since(start)
		b.StopTimer()
		require.NoError(b, err)
		require.EqualValues(b, n, rep.Sync.Synced)

		mib := float64(total) / (1 << 20)
		b.ReportMetric(float64(n)/geoblob.Seconds(), "geoblob-files/s")
		b.ReportMetric(float64(n)/rcloneMatched.Seconds(), "rclone-t10-files/s")
		b.ReportMetric(float64(n)/rcloneDefault.Seconds(), "rclone-t4-files/s")
		b.ReportMetric(mib/geoblob.Seconds(), "geoblob-MiB/s")
		b.Logf("%d files, %.1f MiB: geoblob backfill %s, rclone --transfers 10 %s, rclone defaults %s",
			n, mib, geoblob.Round(time.Millisecond), rcloneMatched.Round(time.Millisecond), rcloneDefault.Round(time.Millisecond))
		b.StartTimer()
	}
}

// repoRoot is the directory holding go.mod.
func repoRoot(b *testing.B) string {
	root, ok := toolbin.ModuleRoot()
	require.True(b, ok, "no go.mod above the working directory")
	return root
}
