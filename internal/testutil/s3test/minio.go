package s3test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/geoblob/geoblob/internal/minioproc"
)

// NewMinio starts a MinIO server for the test in a temporary directory,
// with the test credentials and region, and stops it when the test ends.
// options adjust the minioproc.Options (e.g. Webhooks). When the binary is
// missing the test fails (it is not skipped) with a message naming
// `make tools`.
func NewMinio(t testing.TB, options ...func(*minioproc.Options)) *minioproc.Server {
	t.Helper()
	opts := minioproc.Options{
		Dir:       t.TempDir(),
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		Region:    Region,
		Logger:    slog.New(slog.DiscardHandler),
	}
	for _, o := range options {
		o(&opts)
	}
	srv, err := minioproc.Start(t.Context(), opts)
	if errors.Is(err, minioproc.ErrBinaryNotFound) {
		t.Fatalf("s3test: MinIO is required for this test: %v. Run `make tools` (installs it into .local/bin/minio) or set %s.",
			err, minioproc.BinEnv)
	}
	if err != nil {
		t.Fatalf("s3test: start MinIO: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("s3test: stop MinIO: %v", err)
		}
	})
	return srv
}
