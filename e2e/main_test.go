package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/lambdarie"
	"github.com/geoblob/geoblob/internal/minioproc"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
)

// fixture is the stack shared by every test and benchmark of the package,
// started once in TestMain (MinIO and PostgreSQL start in a few seconds; once
// per package keeps the suite fast). Tests run one after another (no
// t.Parallel): each leaves the buckets converged for the next.
type fixture struct {
	settings devstack.Settings
	stack    *devstack.Stack
	runner   *devstack.InProcess
	catalog  *datatype.Catalog
	reg      *registry.Store
	rec      *recorder
}

var fx *fixture

// functions are the function binaries the stack runs under the emulator.
var functions devstack.FunctionsOptions

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := minioproc.FindBinary(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\ne2e: these tests run real MinIO processes: run `make tools` (installs the pinned MinIO into .local/bin) or set %s\n", err, minioproc.BinEnv)
		return 1
	}
	if _, err := lambdarie.FindBinary(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\ne2e: the functions run under the Lambda Runtime Interface Emulator: run `make tools`\n", err)
		return 1
	}
	// The real function binaries, built as `make lambdas` builds them (for
	// this machine's architecture); each runs under its own emulator.
	// GEOBLOB_E2E_INPROCESS=1 runs the handler code in-process instead (the
	// baseline of BenchmarkEndToEndLatency).
	fnDir, err := os.MkdirTemp("", "geoblob-e2e-functions-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(fnDir)
	if os.Getenv("GEOBLOB_E2E_INPROCESS") != "1" {
		buildCtx, cancelBuild := context.WithTimeout(context.Background(), 15*time.Minute)
		err = devstack.BuildFunctions(buildCtx, "..", fnDir)
		cancelBuild()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		functions = devstack.FunctionsOptions{Dir: fnDir}
	}
	// The stack's credentials reach every AWS client through the
	// configuration (config.Config.Credentials, read through the stack's
	// getenv), as in the functions: nothing is put into this process's
	// environment.

	// Handler logs go to stderr at warn level: failed deliveries (PostgreSQL
	// down in the fault test) show up, per-event info lines do not.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec := &recorder{}
	var (
		s      devstack.Settings
		stack  *devstack.Stack
		runner *devstack.InProcess
	)
	// Free ports are picked, released and then bound by PostgreSQL and
	// MinIO; another process can grab one in between, so try a few times.
	for attempt := 1; attempt <= 3; attempt++ {
		s, stack, runner, err = startStack(rec, logger)
		if err == nil {
			break
		}
		fmt.Fprintf(os.Stderr, "e2e: start stack (attempt %d): %v\n", attempt, err)
	}
	if err != nil {
		return 1
	}
	defer os.RemoveAll(s.Dir)
	defer func() {
		_ = runner.Close(context.Background())
		_ = stack.Close(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cat, err := s.Catalog()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	reg, closeReg, err := s.OpenRegistry(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer closeReg()
	fx = &fixture{settings: s, stack: stack, runner: runner, catalog: cat, reg: reg, rec: rec}
	return m.Run()
}

// queueOptions make retries quick: a failed message is received again
// after 0.3, 0.6, 1.2, 2.4 s and dead-lettered on its 5th failure (~8.5 s).
var queueOptions = sqsspool.QueueOptions{MaxReceives: 5, Visibility: 300 * time.Millisecond, MaxVisibility: 4 * time.Second}

// startStack starts a stack in a new temporary directory on free ports,
// cleaning up after itself when it fails.
func startStack(rec *recorder, logger *slog.Logger) (devstack.Settings, *devstack.Stack, *devstack.InProcess, error) {
	dir, err := os.MkdirTemp("", "geoblob-e2e-")
	if err != nil {
		return devstack.Settings{}, nil, nil, err
	}
	// PostgreSQL runs as user postgres and must enter the state directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return devstack.Settings{}, nil, nil, err
	}
	s, err := devstack.FreeSettings(dir)
	if err != nil {
		return devstack.Settings{}, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runner := &devstack.InProcess{Observe: rec.observe, Logger: logger, Queue: queueOptions, Functions: functions}
	stack, err := devstack.Up(ctx, devstack.UpOptions{Settings: s, Events: runner, Logger: logger})
	if err != nil {
		_ = runner.Close(context.Background())
		_ = devstack.Down(context.Background(), dir, io.Discard)
		_ = os.RemoveAll(dir)
		return devstack.Settings{}, nil, nil, err
	}
	// The stack's settings carry what Up added (the events token).
	return stack.Settings, stack, runner, nil
}

// recorder keeps every delivery of a spooled message to the handler.
type recorder struct {
	mu         sync.Mutex
	deliveries []sqsspool.Delivery
}

func (r *recorder) observe(d sqsspool.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, d)
}

// since returns the deliveries recorded from index i on.
func (r *recorder) since(i int) []sqsspool.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sqsspool.Delivery(nil), r.deliveries[i:]...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deliveries)
}

// model is what a test expects the primary to hold: key -> content SHA-256
// (live) and the keys it deleted.
type model struct {
	live    map[string]object
	deleted map[string]bool
}

type object struct {
	sha  string
	size int64
}

func newModel() *model { return &model{live: map[string]object{}, deleted: map[string]bool{}} }

func (m *model) put(key string, body []byte) {
	sum := sha256.Sum256(body)
	m.live[key] = object{sha: hex.EncodeToString(sum[:]), size: int64(len(body))}
	delete(m.deleted, key)
}

func (m *model) del(key string) {
	delete(m.live, key)
	m.deleted[key] = true
}

// converged reports nil when the registry shows every live key of m synced
// with the expected checksum and every deleted key tombstoned and
// propagated, or an error saying what is still missing.
func converged(ctx context.Context, m *model) error {
	var problems []string
	for key, want := range m.live {
		row, err := fx.row(ctx, key)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			problems = append(problems, key+": no row")
		case err != nil:
			return err
		case row.Tombstoned() || row.State != registry.StateSynced || row.PrimarySHA256 != want.sha:
			problems = append(problems, fmt.Sprintf("%s: state %s tombstoned %v sha %.8s want %.8s failure %q", key, row.State, row.Tombstoned(), row.PrimarySHA256, want.sha, row.LastSyncFailure))
		}
	}
	for key := range m.deleted {
		row, err := fx.row(ctx, key)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s (deleted): %v", key, err))
			continue
		}
		if !row.Tombstoned() || row.State != registry.StateSynced {
			problems = append(problems, fmt.Sprintf("%s (deleted): state %s tombstoned %v", key, row.State, row.Tombstoned()))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("... and %d more", len(problems)-10))
		}
		return fmt.Errorf("%d not converged:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

func (f *fixture) row(ctx context.Context, key string) (registry.Row, error) {
	t, ok := f.catalog.Match(key)
	if !ok {
		return registry.Row{}, fmt.Errorf("key %q matches no data type", key)
	}
	return f.reg.Get(ctx, t.Name, key)
}

// waitConverged polls until converged(m) holds, failing the test with the
// last reason after timeout.
func waitConverged(t testing.TB, m *model, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := converged(t.Context(), m)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.NoError(t, err, "registry did not converge within %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// assertBuckets checks byte for byte that the secondary holds exactly the
// primary's objects and that those are exactly the model's live objects.
func assertBuckets(t testing.TB, m *model) {
	t.Helper()
	ctx := t.Context()
	cmp, err := devstack.Compare(ctx, fx.settings.Bucket(devstack.Primary), fx.settings.Bucket(devstack.Secondary))
	require.NoError(t, err)
	for _, o := range cmp.Mismatches() {
		assert.Failf(t, "secondary differs from primary", "%q: %s", o.Key, o.Problem())
	}
	byKey := map[string]devstack.Compared{}
	for _, o := range cmp.Objects {
		byKey[o.Key] = o
	}
	for key, want := range m.live {
		o, ok := byKey[key]
		if assert.True(t, ok, "live key %q missing from both buckets", key) && assert.NotNil(t, o.Secondary, key) {
			assert.Equal(t, want.sha, o.Secondary.SHA256, "secondary content of %q", key)
			assert.Equal(t, want.size, o.Secondary.Size, "secondary size of %q", key)
		}
	}
	for key := range m.deleted {
		_, ok := byKey[key]
		assert.False(t, ok, "deleted key %q still stored", key)
	}
}
