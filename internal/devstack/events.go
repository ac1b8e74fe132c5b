package devstack

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/geoblob/geoblob/internal/lambdarie"
	"github.com/geoblob/geoblob/internal/logtail"
	"github.com/geoblob/geoblob/internal/sqsspool"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/metrics/prom"
)

// ServeOptions configure ServeEvents.
type ServeOptions struct {
	// Addr is the listen address (host:port) for MinIO's webhook POSTs.
	Addr string
	// Token is the stack's secret MinIO's webhook sends (Settings.EventsToken);
	// POSTs without it are refused.
	Token string
	// Config is the functions' configuration (config.FromEnv); Getenv
	// supplies the GEOBLOB_BACKFILL_* and GEOBLOB_VERIFY_* variables of the
	// scheduled functions.
	Config config.Config
	Getenv func(string) string
	// Queue tunes the spool and its worker; Dir and DeadLetterDir are
	// required, sqsspool.Invoker is set by ServeEvents.
	Queue sqsspool.QueueOptions
	// Schedules of the backfill and verify passes (zero: none).
	Schedules Schedules
	// Logger receives the handler's and the daemon's logs.
	Logger *slog.Logger
	// ConsoleAddr is where the daemon serves the operator console
	// (127.0.0.1:port); "" serves none.
	ConsoleAddr string
	// Functions, when enabled, runs the function binaries under the
	// emulator (their output in FunctionLogDir) instead of the handler code
	// in this process; they get this process's GEOBLOB_* and AWS_* variables.
	Functions      FunctionsOptions
	FunctionLogDir string
}

// MetricsPath is where the event daemon serves Prometheus metrics (per-type
// registry gauges, replication latency and copied bytes) on its events
// address.
const MetricsPath = "/metrics"

// ServeEvents runs the event daemon in the foreground until ctx ends: it
// builds the functions' handler from the configuration exactly as the
// Lambda entry points do, wraps it with lambda.NewHandler (the runtime's
// JSON path), spools MinIO's webhook POSTs on Addr, delivers the spool to
// the handler as SQS events, and runs the scheduled backfill and verify
// passes. `geoblob serve-events` runs it.
func ServeEvents(ctx context.Context, o ServeOptions) error {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	copies := prom.NewCopies()
	var (
		inv      invokers
		closeApp func()
		fs       *Functions
		err      error
	)
	if o.Functions.Enabled() {
		env := append(stackEnviron(os.Environ()), requestQueueEnv(o.Addr, o.Config)...)
		inv, closeApp, fs, err = functionsInvoker(ctx, o.Functions, env, o.FunctionLogDir, o.Config, logger)
	} else {
		inv, closeApp, err = inProcessInvokers(ctx, o.Config, o.Getenv, logger, copies)
	}
	if err != nil {
		return err
	}
	defer closeApp()
	d, err := startDelivery(ctx, o.Addr, o.Token, inv, o.Queue, logger)
	if err != nil {
		return err
	}
	logger.Info("devstack: receiving MinIO events", "addr", d.srv.Addr(), "spool", o.Queue.Dir,
		"dead_letters", o.Queue.DeadLetterDir, "primary", o.Config.Primary.Name, "secondary", o.Config.Secondary.Name)
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	sched := d.schedules(o.Schedules)
	go func() {
		if fs != nil {
			schedDone <- sched.runFunctions(schedCtx, fs, o.Config.Secondary.Region, logger)
			return
		}
		schedDone <- sched.Run(schedCtx, o.Config, o.Getenv, logger, app.WithCopies(copies))
	}()
	consoleDone, closeConsole, err := startConsole(schedCtx, o, logger)
	if err != nil {
		stopSched()
		return errors.Join(err, d.close(context.WithoutCancel(ctx)), <-schedDone)
	}
	defer closeConsole()
	var serveErr error
	select {
	case serveErr = <-d.srv.Done():
	case err := <-d.queueDone:
		d.queueDone <- err // for close
		serveErr = fmt.Errorf("devstack: queue worker stopped: %w", err)
	case err := <-consoleDone:
		consoleDone <- err // for the wait below
		serveErr = err
	case <-ctx.Done():
	}
	logger.Info("devstack: stopping event daemon")
	stopSched()
	closeErr := d.close(context.WithoutCancel(ctx))
	schedErr := <-schedDone
	return errors.Join(serveErr, closeErr, schedErr, <-consoleDone)
}

// startConsole serves the operator console on o.ConsoleAddr until ctx
// ends (nothing when it is empty); done receives its end.
func startConsole(ctx context.Context, o ServeOptions, logger *slog.Logger) (done chan error, closeConsole func(), err error) {
	done = make(chan error, 1)
	if o.ConsoleAddr == "" {
		done <- nil
		return done, func() {}, nil
	}
	h, closeConsole, err := NewConsole(ctx, ConsoleOptions{Config: o.Config, Getenv: o.Getenv,
		DeadLetterDir: o.Queue.DeadLetterDir, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	go func() { done <- ServeConsole(ctx, o.ConsoleAddr, h, logger) }()
	return done, closeConsole, nil
}

// inProcessInvokers builds the handler code in this process: one
// handler (one replication engine, one copy cap) takes the event queue and
// the sync-request queue, as one execution environment would, and the
// verify workers' handler takes the verification queue.
func inProcessInvokers(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger, copies *prom.Copies) (invokers, func(), error) {
	h, metricsHandler, closeApp, err := buildInvoker(ctx, cfg, logger, copies)
	if err != nil {
		return invokers{}, nil, err
	}
	verifyInv, closeWorker, err := verifyWorker(ctx, cfg, getenv, logger)
	if err != nil {
		closeApp()
		return invokers{}, nil, err
	}
	return invokers{events: h, sync: h, verify: verifyInv, metrics: metricsHandler, syncBatch: cfg.CopyConcurrency}, chain(closeApp, closeWorker), nil
}

// delivery is a running receiver with its queue workers.
type delivery struct {
	srv   *sqsspool.EventServer
	rec   *sqsspool.Receiver
	queue *sqsspool.Queue
	// syncQueue carries backfill's sync requests to onCreate (the sync
	// worker processes, or the in-process handler); verifyQueue (nil
	// without verify workers) verify's verification requests to the
	// workers.
	syncQueue, verifyQueue *sqsspool.Queue
	queues                 int // queue workers running
	stopQueue              context.CancelFunc
	queueDone              chan error // one result per queue worker
}

// startDelivery opens the spools, starts the queue workers and listens on
// addr: MinIO's webhook POSTs, the SQS API of the request queues (calls
// carrying an X-Amz-Target AmazonSQS.* header) and, when inv.metrics is
// not nil, /metrics. Events are delivered to inv.events, sync requests to
// inv.sync, SyncQueueConcurrency invocations at once; with inv.verify set,
// verification requests to it, VerifyQueueConcurrency invocations at once.
func startDelivery(ctx context.Context, addr, token string, inv invokers, qo sqsspool.QueueOptions, logger *slog.Logger) (*delivery, error) {
	qo.Invoker = inv.events
	if qo.Logger == nil {
		qo.Logger = logger
	}
	d := &delivery{}
	var err error
	if d.queue, err = sqsspool.OpenQueue(qo); err != nil {
		return nil, err
	}
	so := requestQueueOptions(qo, "sync", SyncQueueConcurrency)
	so.Invoker = inv.sync
	if inv.syncBatch > 0 {
		so.BatchSize = min(cmp.Or(so.BatchSize, 10), inv.syncBatch)
	}
	if d.syncQueue, err = sqsspool.OpenQueue(so); err != nil {
		return nil, err
	}
	queues := map[string]sqsspool.Enqueuer{SyncQueueName: d.syncQueue}
	run := []*sqsspool.Queue{d.queue, d.syncQueue}
	if inv.verify != nil {
		vo := requestQueueOptions(qo, "verify", VerifyQueueConcurrency)
		vo.Invoker, vo.BatchSize = inv.verify, verifyQueueBatch
		if d.verifyQueue, err = sqsspool.OpenQueue(vo); err != nil {
			return nil, err
		}
		queues[VerifyQueueName] = d.verifyQueue
		run = append(run, d.verifyQueue)
	}
	d.rec = sqsspool.NewReceiver(d.queue, inv.events, sqsspool.ReceiverOptions{Token: token, Logger: logger})
	api := sqsspool.NewSQSAPI(queues, logger)
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sqsspool.IsSQSRequest(r) {
			api.ServeHTTP(w, r)
			return
		}
		d.rec.ServeHTTP(w, r)
	}))
	if inv.metrics != nil {
		mux.Handle("GET "+MetricsPath, inv.metrics)
	}
	if d.srv, err = sqsspool.ListenEvents(addr, mux); err != nil {
		return nil, err
	}
	qctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stopQueue, d.queues, d.queueDone = stop, len(run), make(chan error, len(run))
	for _, q := range run {
		go func() { d.queueDone <- q.Run(qctx) }()
	}
	return d, nil
}

// schedules returns sc with the dispatchers of the local request queues:
// backfill and verify send through the SQS API stand-in, exactly as they
// send to SQS in AWS.
func (d *delivery) schedules(sc Schedules) Schedules {
	endpoint := "http://" + d.srv.Addr()
	sc.Dispatcher = sender(endpoint, SyncQueueName)
	if d.verifyQueue != nil {
		sc.VerifyDispatcher = sender(endpoint, VerifyQueueName)
	}
	return sc
}

// close stops accepting POSTs, then stops the queue workers (waiting for
// the invocations in flight; what is not acknowledged stays spooled).
func (d *delivery) close(ctx context.Context) error {
	shutdown, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Stop delivering first: once close begins no message is received
	// again, however long the rest takes (a message failing while the
	// stack stops must stay spooled, not use up its receives and land in
	// the dead-letter directory). The receiver keeps spooling until its
	// server closes; what it spools waits for the next start.
	d.stopQueue()
	var qErrs []error
	for range d.queues {
		select {
		case err := <-d.queueDone:
			qErrs = append(qErrs, err)
		case <-shutdown.Done():
			return errors.Join(fmt.Errorf("devstack: queue worker did not stop: %w", shutdown.Err()), d.srv.Close(shutdown))
		}
	}
	srvErr := d.srv.Close(shutdown)
	return errors.Join(srvErr, errors.Join(qErrs...))
}

// chain returns a func that calls fns in order.
func chain(fns ...func()) func() {
	return func() {
		for _, f := range fns {
			f()
		}
	}
}

// Daemon runs the event receiver as a background process of the geoblob
// binary (`geoblob serve-events`), with a pid file and a log file in the
// state directory. It is the EventsRunner of the CLI.
type Daemon struct {
	// Executable is the geoblob binary (os.Executable()); it is copied into
	// the state directory so a daemon started by `go run` keeps its binary.
	Executable string
	// Schedules of the backfill and verify passes the daemon runs.
	Schedules Schedules
	// Functions, when enabled, makes the daemon run the function binaries
	// under the emulator, and migrations run through the migrate function.
	Functions FunctionsOptions
}

var (
	_ EventsRunner = Daemon{}
	_ Migrator     = Daemon{}
)

// Migrate applies the registry schema: through the migrate function when
// the functions run as processes, else in this process.
func (d Daemon) Migrate(ctx context.Context, s Settings) error {
	if d.Functions.Enabled() {
		return migrateThroughFunction(ctx, d.Functions, s, daemonEnv(os.Environ(), s))
	}
	return migrate(ctx, s.DatabaseURL())
}

// StartEvents starts the daemon unless one is already running and answering.
func (d Daemon) StartEvents(ctx context.Context, s Settings) (string, error) {
	if d.Executable == "" {
		return "", errors.New("devstack: Daemon.Executable is required")
	}
	bin := filepath.Join(s.Dir, "bin", "geoblob")
	restarted := ""
	if pid, ok := readPID(s.EventsPIDFile()); ok {
		current := sameFile(d.Executable, bin)
		if current && waitHTTP(ctx, s.EventsURL(), pid, 2*time.Second) == nil {
			return fmt.Sprintf("%-15s %s (pid %d), log %s", "already running", s.EventsURL(), pid, s.EventsLogFile()), nil
		}
		// Not answering, or running an older build of geoblob: replace it
		// (the spool keeps what it accepted; events MinIO posts meanwhile
		// are lost and reconciled by the backfill schedule).
		if _, _, err := stopPID(ctx, s.EventsPIDFile(), 10*time.Second); err != nil {
			return "", err
		}
		restarted = "re"
	}
	if err := copyExecutable(d.Executable, bin); err != nil {
		return "", err
	}
	env := daemonEnv(os.Environ(), s)
	var err error
	argv := []string{bin, "serve-events", "-dir", s.Dir, "-listen", s.EventsAddr(), "-spool", s.SpoolDir(), "-dead-letters", s.DeadLetterDir(),
		"-backfill-every", d.Schedules.Backfill.String(), "-verify-every", d.Schedules.Verify.String(),
		"-first-run", d.Schedules.FirstRun.String(), "-console", s.ConsoleAddr()}
	if d.Functions.Enabled() {
		emulator := d.Functions.Emulator
		if emulator == "" {
			if emulator, err = lambdarie.FindBinary(); err != nil {
				return "", fmt.Errorf("devstack: %w", err)
			}
		}
		argv = append(argv, "-functions", d.Functions.Dir, "-emulator", emulator)
	}
	pid, err := spawn(argv, env, s.EventsPIDFile(), s.EventsLogFile())
	if err != nil {
		return "", err
	}
	if err := waitHTTP(ctx, s.EventsURL(), pid, 30*time.Second); err != nil {
		_, _, _ = stopPID(context.WithoutCancel(ctx), s.EventsPIDFile(), 2*time.Second)
		return "", fmt.Errorf("%w; log %s: %s", err, s.EventsLogFile(), logtail.Tail(s.EventsLogFile(), 1000))
	}
	return fmt.Sprintf("%-15s %s (pid %d), log %s", restarted+"started", s.EventsURL(), pid, s.EventsLogFile()), nil
}

// sameFile reports whether files a and b have identical contents.
func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil || sa.Size() != sb.Size() {
		return false
	}
	ha, errA := fileSHA256(a)
	hb, errB := fileSHA256(b)
	return errA == nil && errB == nil && ha == hb
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// daemonEnv is the caller's environment without GEOBLOB_* and AWS_*
// variables (so a sourced env file of another stack cannot leak in), plus
// the stack's variables. GEOBLOB_LOG_LEVEL and the tuning variables pass.
func daemonEnv(environ []string, s Settings) []string {
	own := map[string]bool{}
	for _, v := range s.Env() {
		own[v.Name] = true
	}
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if own[name] || strings.HasPrefix(name, "AWS_") || name == "GEOBLOB_DATABASE_SECRET_ARN" || name == "GEOBLOB_DATABASE_HOST" {
			continue
		}
		env = append(env, kv)
	}
	for _, v := range s.Env() {
		env = append(env, v.Name+"="+v.Value)
	}
	return env
}

// InProcess serves the event receiver and its queue worker inside the
// calling process (the end-to-end tests): same handler, same spool, same
// SQS delivery, no daemon.
type InProcess struct {
	// Observe, when set, sees every delivered message (see QueueOptions.Observe).
	Observe func(sqsspool.Delivery)
	// Logger receives the handler's logs; nil discards.
	Logger *slog.Logger
	// Getenv supplies tuning variables beyond the stack's own (nil: none).
	Getenv func(string) string
	// Invoker, when set, replaces the functions' handler (tests of the
	// delivery path itself, e.g. a handler that fails on purpose).
	Invoker sqsspool.Invoker
	// Queue tunes the queue worker (Dir, DeadLetterDir, sqsspool.Invoker and
	// Observe are set from the stack and the fields above).
	Queue sqsspool.QueueOptions
	// Schedules of the backfill and verify passes (zero: none).
	Schedules Schedules
	// Functions, when enabled (and Invoker is nil), runs the function
	// binaries under the emulator instead of the handler code in this
	// process; migrations then run through the migrate function.
	Functions FunctionsOptions

	mu        sync.Mutex
	fns       *Functions
	d         *delivery
	closeApp  func()
	stopSched context.CancelFunc
	schedDone chan error
}

var (
	_ EventsRunner = (*InProcess)(nil)
	_ Migrator     = (*InProcess)(nil)
)

// Migrate applies the registry schema: through the migrate function when
// Functions is enabled, else in this process.
func (p *InProcess) Migrate(ctx context.Context, s Settings) error {
	if p.Functions.Enabled() && p.Invoker == nil {
		return migrateThroughFunction(ctx, p.Functions, s, os.Environ())
	}
	return migrate(ctx, s.DatabaseURL())
}

// RunningFunctions returns the running function processes (nil unless Functions
// is enabled and the receiver started); tests kill them.
func (p *InProcess) RunningFunctions() *Functions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fns
}

// StartEvents builds the handler from the stack's configuration, opens the
// stack's spool and starts serving on the stack's events address.
func (p *InProcess) StartEvents(ctx context.Context, s Settings) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d != nil {
		return "", errors.New("devstack: in-process receiver already started")
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	getenv := s.Getenv(p.Getenv)
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return "", fmt.Errorf("devstack: stack configuration: %w", err)
	}
	copies := prom.NewCopies()
	var (
		inv      = invokers{events: p.Invoker, sync: p.Invoker}
		closeApp = func() {}
		fs       *Functions
	)
	switch {
	case p.Invoker != nil:
	case p.Functions.Enabled():
		env := append(FunctionEnv(s, os.Environ()), requestQueueEnv(s.EventsAddr(), cfg)...)
		if inv, closeApp, fs, err = functionsInvoker(ctx, p.Functions, env, s.FunctionLogDir(), cfg, logger); err != nil {
			return "", err
		}
	default:
		if inv, closeApp, err = inProcessInvokers(ctx, cfg, getenv, logger, copies); err != nil {
			return "", err
		}
	}
	qo := p.Queue
	qo.Dir, qo.DeadLetterDir, qo.Observe = s.SpoolDir(), s.DeadLetterDir(), p.Observe
	d, err := startDelivery(ctx, s.EventsAddr(), s.EventsToken, inv, qo, logger)
	if err != nil {
		closeApp()
		return "", err
	}
	schedCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.schedDone = make(chan error, 1)
	sched := d.schedules(p.Schedules)
	go func() {
		if fs != nil {
			p.schedDone <- sched.runFunctions(schedCtx, fs, cfg.Secondary.Region, logger)
			return
		}
		p.schedDone <- sched.Run(schedCtx, cfg, getenv, logger, app.WithCopies(copies))
	}()
	p.d, p.closeApp, p.stopSched, p.fns = d, closeApp, stop, fs
	if fs != nil {
		return fmt.Sprintf("%-15s %s (in-process delivery; functions under aws-lambda-rie, logs %s)", "started", s.EventsURL(), s.FunctionLogDir()), nil
	}
	return fmt.Sprintf("%-15s %s (in-process)", "started", s.EventsURL()), nil
}

// Receiver returns the receiver (nil before StartEvents); tests replay
// captured bodies through its Invoke.
func (p *InProcess) Receiver() *sqsspool.Receiver {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d == nil {
		return nil
	}
	return p.d.rec
}

// Close stops the receiver, the queue worker (messages not acknowledged
// stay in the spool) and the schedules, and releases the handler's
// resources.
func (p *InProcess) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d == nil {
		return nil
	}
	err := p.d.close(ctx)
	p.stopSched()
	err = errors.Join(err, <-p.schedDone)
	p.closeApp()
	p.d, p.fns = nil, nil
	return err
}
