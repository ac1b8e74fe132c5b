package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
)

// envSigtermChild makes the test binary act as a Lambda function (see
// TestRunLambdaClosesOnSIGTERM; TestMain calls sigtermChild).
const envSigtermChild = "GEOBLOB_TEST_SIGTERM_CHILD"

// sigtermChild runs RunLambda with a cleanup that writes marker.
func sigtermChild(marker string) int {
	return app.RunLambda("sigterm-test", func(context.Context, config.Config, *slog.Logger) (any, func(), error) {
		handler := func(context.Context) error { return nil }
		closeFn := func() { _ = os.WriteFile(marker, []byte("closed"), 0o600) }
		return handler, closeFn, nil
	})
}

// TestRunLambdaClosesOnSIGTERM runs RunLambda in a child process against a
// stand-in of the Lambda Runtime API (and its Extensions API), waits until
// the runtime loop asks for the next invocation, sends SIGTERM the way Lambda
// does before it stops an environment, and expects the function's cleanup
// (closing the database pool) to have run.
func TestRunLambdaClosesOnSIGTERM(t *testing.T) {
	t.Parallel()
	waiting := make(chan struct{}, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/extension/register"):
			w.Header().Set("Lambda-Extension-Identifier", "ext-1")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{}`))
		case strings.HasSuffix(r.URL.Path, "/runtime/invocation/next"):
			select {
			case waiting <- struct{}{}:
			default:
			}
			<-r.Context().Done() // no invocation ever comes
		default: // extension /event/next: block like Lambda does
			<-r.Context().Done()
		}
	}))
	t.Cleanup(api.Close)

	marker := filepath.Join(t.TempDir(), "closed")
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		envSigtermChild + "=" + marker,
		"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(api.URL, "http://"),
		"GEOBLOB_DATABASE_URL=postgres://nobody@127.0.0.1:1/none",
		"GEOBLOB_PRIMARY_BUCKET=primary-bucket",
		"GEOBLOB_SECONDARY_BUCKET=secondary-bucket",
		"AWS_REGION=eu-west-1",
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("the child never asked the runtime API for an invocation")
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.Eventually(t, func() bool {
		b, err := os.ReadFile(marker)
		return err == nil && string(b) == "closed"
	}, 5*time.Second, 20*time.Millisecond, "the cleanup of RunLambda must run on SIGTERM")
}
