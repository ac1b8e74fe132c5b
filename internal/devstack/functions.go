package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"

	"github.com/geoblob/geoblob/internal/lambdarie"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/metrics/prom"
	"github.com/geoblob/geoblob/shared/registry"
)

// FunctionsOptions make the stack run the real Lambda function binaries,
// each as its own process under the AWS Lambda Runtime Interface Emulator,
// instead of calling the handler code in-process.
type FunctionsOptions struct {
	// Dir holds <function>/bootstrap for each function, built for this
	// machine by `make lambdas LAMBDA_GOARCH=<host> LAMBDA_OUT=<Dir>`
	// (`make up` builds them into .local/lambdas). Empty: in-process handlers.
	Dir string
	// Emulator is the aws-lambda-rie binary (default lambdarie.FindBinary).
	Emulator string
}

// Enabled reports whether the functions run as separate processes.
func (o FunctionsOptions) Enabled() bool { return o.Dir != "" }

// The functions the local stack runs.
const (
	FnOnCreate = "onCreate"
	FnOnDelete = "onDelete"
	FnBackfill = "backfill"
	FnVerify   = "verify"
	FnMigrate  = "migrate"
	// FnVerifyWorker is the verify binary again, as the verification
	// queue's workers (infra/stacks deploys it as verifyWorker); the local
	// stack runs VerifyQueueConcurrency of them, FnVerifyWorker-1 to -N.
	FnVerifyWorker = "verifyWorker"
	// FnSyncWorker is the onCreate binary again, as the sync-request
	// queue's workers: in AWS onCreate's sync-request event source mapping
	// runs up to its own maximum concurrency of execution environments,
	// apart from the event mapping's; the local stack runs
	// SyncQueueConcurrency processes, FnSyncWorker-1 to -N, while the
	// event queue keeps its own FnOnCreate process.
	FnSyncWorker = FnOnCreate + "-sync"
)

// binaryOf is the functions/ directory of function name (FnVerifyWorker-n
// runs the verify binary, FnSyncWorker-n the onCreate binary).
func binaryOf(name string) string {
	switch {
	case strings.HasPrefix(name, FnVerifyWorker):
		return FnVerify
	case strings.HasPrefix(name, FnSyncWorker):
		return FnOnCreate
	}
	return name
}

// WorkerNames are the function names fn-1 to fn-n: a request queue's worker
// processes (e.g. WorkerNames(FnSyncWorker, SyncQueueConcurrency)).
func WorkerNames(fn string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", fn, i+1)
	}
	return names
}

// functionTimeouts mirror the Lambda timeouts of infra/stacks.KnownFunctions.
var functionTimeouts = map[string]time.Duration{
	FnOnCreate: 10 * time.Minute, FnOnDelete: 2 * time.Minute,
	FnBackfill: 15 * time.Minute, FnVerify: 15 * time.Minute, FnMigrate: 5 * time.Minute,
}

// Functions are running function processes by name.
type Functions struct {
	byName map[string]*lambdarie.Function
	logs   []*os.File
	// pools are the request queues' worker pools by queue name (set by
	// functionsInvoker).
	pools map[string]*WorkerPool
}

// StartFunctions starts the named functions under their own emulators.
// env is each function's whole environment (its configuration, exactly as
// Lambda passes it); each function's output goes to logDir/<name>.log.
func StartFunctions(ctx context.Context, o FunctionsOptions, env []string, logDir string, names ...string) (*Functions, error) {
	emulator := o.Emulator
	if emulator == "" {
		var err error
		if emulator, err = lambdarie.FindBinary(); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: function logs: %w", err)
	}
	fs := &Functions{byName: map[string]*lambdarie.Function{}}
	for _, name := range names {
		log, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fs.Close()
			return nil, fmt.Errorf("devstack: function log: %w", err)
		}
		f, err := lambdarie.Start(ctx, lambdarie.Options{
			Emulator: emulator, Bootstrap: filepath.Join(o.Dir, binaryOf(name), "bootstrap"), Name: name,
			Env: env, Timeout: functionTimeouts[binaryOf(name)], Log: log,
		})
		if err != nil {
			log.Close()
			fs.Close()
			return nil, fmt.Errorf("devstack: %w", err)
		}
		fs.byName[name] = f
		fs.logs = append(fs.logs, log)
	}
	return fs, nil
}

// Get returns the running function name, or nil.
func (fs *Functions) Get(name string) *lambdarie.Function { return fs.byName[name] }

// Pool returns the worker processes that take the local request queue
// named queue (SyncQueueName: FnSyncWorker-1 to -N; VerifyQueueName:
// FnVerifyWorker-1 to -N), or nil.
func (fs *Functions) Pool(queue string) *WorkerPool { return fs.pools[queue] }

// Close stops every function process.
func (fs *Functions) Close() {
	for _, f := range fs.byName {
		_ = f.Close()
	}
	for _, l := range fs.logs {
		_ = l.Close()
	}
}

// FunctionEnv is the environment of the stack's functions: the stack's
// configuration and credentials (Settings.Env) and the GEOBLOB_* tuning
// variables of environ (later ones win), nothing else.
func FunctionEnv(s Settings, environ []string) []string {
	own := map[string]bool{}
	var env []string
	for _, v := range s.Env() {
		own[v.Name] = true
		env = append(env, v.Name+"="+v.Value)
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GEOBLOB_") && !own[name] && name != "GEOBLOB_DATABASE_SECRET_ARN" && name != "GEOBLOB_DATABASE_HOST" {
			env = append(env, kv)
		}
	}
	return env
}

// migrateThroughFunction runs the migrations through the migrate function's
// own entry point (functions/migrate), as the deploy does in AWS.
func migrateThroughFunction(ctx context.Context, o FunctionsOptions, s Settings, environ []string) error {
	fs, err := StartFunctions(ctx, o, FunctionEnv(s, environ), s.FunctionLogDir(), FnMigrate)
	if err != nil {
		return err
	}
	defer fs.Close()
	if _, err := fs.Get(FnMigrate).Invoke(ctx, []byte(`{}`)); err != nil {
		return fmt.Errorf("devstack: migrations: %w (log %s)", err, filepath.Join(s.FunctionLogDir(), FnMigrate+".log"))
	}
	return nil
}

// FunctionLogDir is where the function processes write their output.
func (s Settings) FunctionLogDir() string { return s.path("functions") }

// eventRouter is the event source mapping of the local stack: MinIO posts
// every notification to one spool, and the router hands each SQS message
// to the function its events are for (ObjectRemoved → onDelete, the rest →
// onCreate), as the two queues of the AWS stack do. A function that fails
// (error, crash, timeout) fails the messages it was given; the response
// merges the functions' batchItemFailures.
type eventRouter struct {
	onCreate, onDelete sqsspool.Invoker
	logger             *slog.Logger
}

var _ sqsspool.Invoker = (*eventRouter)(nil)

// routeOf returns the functions a message body is for.
func routeOf(body []byte) (create, remove bool) {
	b, err := events.Parse(body)
	if err != nil {
		return true, false // onCreate reports it as malformed
	}
	for _, m := range b.Messages {
		for _, e := range m.Events {
			if e.Kind == events.KindRemoved {
				remove = true
			} else {
				create = true
			}
		}
		if len(m.Events) == 0 {
			create = true
		}
	}
	return create, remove
}

// Invoke implements sqsspool.Invoker for an SQS event (split by function) and for a
// single notification body (sent to its function).
func (r *eventRouter) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var sqs lambdaevents.SQSEvent
	if json.Unmarshal(payload, &sqs) != nil || len(sqs.Records) == 0 || sqs.Records[0].EventSource != "aws:sqs" {
		create, remove := routeOf(payload)
		if remove && !create {
			return r.onDelete.Invoke(ctx, payload)
		}
		return r.onCreate.Invoke(ctx, payload)
	}
	logger := r.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var creates, removes []lambdaevents.SQSMessage
	for _, m := range sqs.Records {
		create, remove := routeOf([]byte(m.Body))
		if create {
			creates = append(creates, m)
		}
		if remove {
			removes = append(removes, m)
		}
	}
	var (
		mu     sync.Mutex
		failed = map[string]bool{}
		wg     sync.WaitGroup
	)
	for _, part := range []struct {
		fn   sqsspool.Invoker
		name string
		msgs []lambdaevents.SQSMessage
	}{{r.onCreate, FnOnCreate, creates}, {r.onDelete, FnOnDelete, removes}} {
		if len(part.msgs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids, err := invokeBatch(ctx, part.fn, part.msgs)
			if err != nil {
				logger.Warn("devstack: function invocation failed; its messages will be redelivered",
					"function", part.name, "messages", len(part.msgs), "error", err)
			}
			mu.Lock()
			for _, id := range ids {
				failed[id] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	resp := lambdaevents.SQSEventResponse{BatchItemFailures: []lambdaevents.SQSBatchItemFailure{}}
	for _, m := range sqs.Records {
		if failed[m.MessageId] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, lambdaevents.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return json.Marshal(resp)
}

// invokeBatch invokes fn with msgs as one SQS event and returns the ids
// that failed: those it reported, or all of them when the invocation failed.
func invokeBatch(ctx context.Context, fn sqsspool.Invoker, msgs []lambdaevents.SQSMessage) ([]string, error) {
	all := make([]string, len(msgs))
	for i, m := range msgs {
		all[i] = m.MessageId
	}
	payload, err := json.Marshal(lambdaevents.SQSEvent{Records: msgs})
	if err != nil {
		return all, err
	}
	out, err := fn.Invoke(ctx, payload)
	if err != nil {
		return all, err
	}
	var resp lambdaevents.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return all, fmt.Errorf("devstack: response is not an SQS batch response: %w: %.200s", err, out)
	}
	ids := make([]string, 0, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids, nil
}

// ScheduledEvent is the payload an EventBridge scheduled rule sends (the
// LocalStack target's stand-in for Scheduler, and the local schedules'):
// source aws.events, detail-type "Scheduled Event", an empty detail.
func ScheduledEvent(region, rule string, at time.Time) []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	b, _ := json.Marshal(lambdaevents.CloudWatchEvent{
		Version: "0", ID: hex.EncodeToString(id), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: "000000000000", Time: at.UTC().Truncate(time.Second), Region: region,
		Resources: []string{"arn:aws:events:" + region + ":000000000000:rule/" + rule},
		Detail:    json.RawMessage(`{}`),
	})
	return b
}

// runFunctions invokes the backfill and verify functions with a
// scheduled event on their schedules until ctx ends. A failed invocation
// is logged and the schedule goes on.
func (sc Schedules) runFunctions(ctx context.Context, fs *Functions, region string, logger *slog.Logger) error {
	if sc.FirstRun <= 0 {
		sc.FirstRun = 5 * time.Second
	}
	var wg sync.WaitGroup
	for name, interval := range map[string]time.Duration{FnBackfill: sc.Backfill, FnVerify: sc.Verify} {
		f := fs.Get(name)
		if interval <= 0 || f == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, sc.FirstRun, interval, func() {
				out, err := f.Invoke(ctx, ScheduledEvent(region, "geoblob-"+strings.ToLower(name), time.Now()))
				switch {
				case err != nil && !errors.Is(err, context.Canceled):
					logger.Error("devstack: scheduled invocation failed", "function", name, "error", err)
				case err == nil:
					logger.Info("devstack: scheduled invocation", "function", name, "report", json.RawMessage(truncate(out, 2000)))
				}
			})
		}()
	}
	wg.Wait()
	return nil
}

// truncate keeps a function's report short in the daemon's log.
func truncate(b []byte, n int) []byte {
	if json.Valid(b) && len(b) <= n {
		return b
	}
	q, _ := json.Marshal(string(b[:min(len(b), n)]))
	return q
}

// stackEnviron keeps the GEOBLOB_* and AWS_* variables of environ: in the
// event daemon these are the stack's configuration (see daemonEnv).
func stackEnviron(environ []string) []string {
	var env []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GEOBLOB_") || strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// BuildFunctions builds every functions/<name> of the module at root into
// dir/<name>/bootstrap for this machine, with the flags of `make lambdas`
// (CGO_ENABLED=0 GOOS=linux -tags lambda.norpc -trimpath); the end-to-end
// tests use it.
func BuildFunctions(ctx context.Context, root, dir string) error {
	for _, name := range []string{FnOnCreate, FnOnDelete, FnBackfill, FnVerify, FnMigrate} {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath",
			"-o", filepath.Join(dir, name, "bootstrap"), "./functions/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("devstack: build %s: %w: %s", name, err, out)
		}
	}
	return nil
}

// invokers are what the local stack's queues deliver to: the event queue
// (onCreate and onDelete through the event router), the sync-request queue
// and the verification queue (nil: no verification queue), and the
// /metrics handler.
type invokers struct {
	events, sync, verify sqsspool.Invoker
	metrics              http.Handler
	// syncBatch bounds the sync-request batches (0: the queue's batch
	// size): GEOBLOB_COPY_CONCURRENCY, as infra/stacks bounds the
	// sync-request mapping's, so one batch is copied at once.
	syncBatch int
}

// functionsInvoker starts the event and schedule functions,
// SyncQueueConcurrency sync workers (the onCreate binary) and
// VerifyQueueConcurrency verify workers under their emulators and returns
// the event router in front of onCreate and onDelete, the workers' pools,
// the /metrics handler (the registry's gauges, read by this process; the
// copy counters live in the function processes and stay empty here), and
// the func that stops it all. env should carry requestQueueEnv, so that
// backfill and verify dispatch through the SQS API stand-in.
func functionsInvoker(ctx context.Context, o FunctionsOptions, env []string, logDir string, cfg config.Config, logger *slog.Logger) (invokers, func(), *Functions, error) {
	dsn, err := app.DatabaseURL(ctx, cfg, nil)
	if err != nil {
		return invokers{}, nil, nil, fmt.Errorf("devstack: %w", err)
	}
	pool, err := app.NewPool(ctx, dsn, 1)
	if err != nil {
		return invokers{}, nil, nil, fmt.Errorf("devstack: %w", err)
	}
	syncNames := WorkerNames(FnSyncWorker, SyncQueueConcurrency)
	verifyNames := WorkerNames(FnVerifyWorker, VerifyQueueConcurrency)
	names := append(append([]string{FnOnCreate, FnOnDelete, FnBackfill, FnVerify}, syncNames...), verifyNames...)
	fs, err := StartFunctions(ctx, o, env, logDir, names...)
	if err != nil {
		pool.Close()
		return invokers{}, nil, nil, err
	}
	fs.pools = map[string]*WorkerPool{SyncQueueName: fs.workerPool(syncNames), VerifyQueueName: fs.workerPool(verifyNames)}
	inv := invokers{
		events:    &eventRouter{onCreate: fs.Get(FnOnCreate), onDelete: fs.Get(FnOnDelete), logger: logger},
		sync:      fs.pools[SyncQueueName],
		verify:    fs.pools[VerifyQueueName],
		metrics:   prom.Handler(registry.New(pool, registry.Options{Logger: logger}), prom.NewCopies()),
		syncBatch: cfg.CopyConcurrency,
	}
	return inv, func() { fs.Close(); pool.Close() }, fs, nil
}

// workerPool returns a pool of the running functions names.
func (fs *Functions) workerPool(names []string) *WorkerPool {
	workers := make([]sqsspool.Invoker, len(names))
	for i, n := range names {
		workers[i] = fs.Get(n)
	}
	return NewWorkerPool(workers...)
}

// WorkerPool is a request queue's worker processes as its event source
// mapping sees them: each invocation goes to whichever worker is free
// (each runs one invocation at a time, as one Lambda execution
// environment), so the queue's concurrent deliveries run in parallel in
// separate processes. It counts what it did.
type WorkerPool struct {
	workers    []sqsspool.Invoker
	free       chan int // indexes of the idle workers
	calls      []atomic.Int64
	busy       atomic.Int64
	overlapped atomic.Int64
}

var _ sqsspool.Invoker = (*WorkerPool)(nil)

// NewWorkerPool returns a pool of workers, all idle.
func NewWorkerPool(workers ...sqsspool.Invoker) *WorkerPool {
	p := &WorkerPool{workers: workers, free: make(chan int, len(workers)), calls: make([]atomic.Int64, len(workers))}
	for i := range workers {
		p.free <- i
	}
	return p
}

// Invoke implements sqsspool.Invoker: it waits for an idle worker (or
// ctx) and invokes it.
func (p *WorkerPool) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var i int
	select {
	case i = <-p.free:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { p.free <- i }()
	p.calls[i].Add(1)
	if p.busy.Add(1) > 1 {
		p.overlapped.Add(1)
	}
	defer p.busy.Add(-1)
	return p.workers[i].Invoke(ctx, payload)
}

// PoolStats are a WorkerPool's counters since it was made.
type PoolStats struct {
	// Invocations is how many invocations each worker was given, in the
	// pool's order (FnSyncWorker-1 first).
	Invocations []int64
	// Overlapped is how many invocations began while another worker of
	// the pool was running one: invocations that ran at the same time as
	// another, in a different worker.
	Overlapped int64
}

// Stats returns the pool's counters.
func (p *WorkerPool) Stats() PoolStats {
	s := PoolStats{Invocations: make([]int64, len(p.calls)), Overlapped: p.overlapped.Load()}
	for i := range p.calls {
		s.Invocations[i] = p.calls[i].Load()
	}
	return s
}

// requestQueueEnv points the function processes' dispatchers at the local
// request queues, served by the SQS API stand-in on the events address
// addr: backfill sends sync requests, verify verification requests, with
// the local windows: the sync window is what the SyncQueueConcurrency
// sync worker processes copy at once (GEOBLOB_COPY_CONCURRENCY each), as
// in AWS the sync mapping's maximum concurrency times the copy cap.
func requestQueueEnv(addr string, cfg config.Config) []string {
	endpoint := "http://" + addr
	return []string{
		"AWS_ENDPOINT_URL_SQS=" + endpoint,
		"GEOBLOB_SYNC_QUEUE_URL=" + sqsspool.QueueURL(endpoint, SyncQueueName),
		fmt.Sprintf("GEOBLOB_SYNC_WINDOW=%d", syncWindow(cfg)),
		"GEOBLOB_VERIFY_QUEUE_URL=" + sqsspool.QueueURL(endpoint, VerifyQueueName),
		fmt.Sprintf("GEOBLOB_VERIFY_WINDOW=%d", VerifyQueueConcurrency*verifyQueueBatch),
		fmt.Sprintf("GEOBLOB_VERIFY_CONCURRENCY=%d", verifyQueueBatch),
	}
}
