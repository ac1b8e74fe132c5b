// Package lambdarie runs one of geoblob's Lambda function binaries (the
// `bootstrap` that `make lambdas` builds) as a plain local process under the
// AWS Lambda Runtime Interface Emulator (aws-lambda-rie): the emulator serves
// the Lambda Runtime API to the function and the Invoke API on 127.0.0.1, so
// the function runs exactly as in Lambda, configured only through its
// environment. One Function is one emulator process with one function
// process; like one Lambda execution environment it serves one invocation
// at a time.
package lambdarie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/geoblob/geoblob/internal/toolbin"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// BinEnv names the environment variable that points at the emulator binary.
const BinEnv = "GEOBLOB_RIE_BIN"

// Errors.
var (
	// ErrBinaryNotFound: no aws-lambda-rie binary (run `make tools`).
	ErrBinaryNotFound = errors.New("lambdarie: aws-lambda-rie not found (run `make tools`, or set " + BinEnv + ")")
	// ErrFunction: the function's handler returned an error (Lambda's
	// "Handled"/"Unhandled" function error); the error text carries its
	// errorType and errorMessage.
	ErrFunction = errors.New("lambdarie: function error")
	// ErrRuntime: the invocation did not complete: the function process
	// exited or was killed, the invocation timed out, or the emulator is
	// gone. The emulator starts a new function process for the next one.
	ErrRuntime = errors.New("lambdarie: invocation failed")
	// ErrClosed: the Function was closed.
	ErrClosed = errors.New("lambdarie: function closed")
)

// Options configure Start.
type Options struct {
	// Emulator is the aws-lambda-rie binary (FindBinary). Required.
	Emulator string
	// Bootstrap is the function binary. Required.
	Bootstrap string
	// Name is the function name (AWS_LAMBDA_FUNCTION_NAME). Required.
	Name string
	// Env is the function's whole environment (NAME=value): the function
	// sees these variables and the ones Lambda sets, nothing of the caller's.
	Env []string
	// Timeout is the function timeout (default 5 minutes).
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 1769).
	MemoryMB int
	// Log receives the emulator's and the function's output (nil discards).
	Log io.Writer
}

// Function is one function under its own emulator process.
type Function struct {
	o      Options
	client *http.Client

	// invoke serializes invocations: one execution environment.
	invoke sync.Mutex

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	addr   string
	closed bool
}

// Start starts the emulator with the function and waits until it accepts
// invocations. The function process itself starts on the first invocation
// (a cold start, as in Lambda).
func Start(ctx context.Context, o Options) (*Function, error) {
	if o.Emulator == "" || o.Bootstrap == "" || o.Name == "" {
		return nil, errors.New("lambdarie: Options.Emulator, Bootstrap and Name are required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = 1769
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if _, err := os.Stat(o.Bootstrap); err != nil {
		return nil, fmt.Errorf("lambdarie: %s: function binary: %w (build it with make lambdas)", o.Name, err)
	}
	f := &Function{o: o, client: &http.Client{}}
	if err := f.start(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Name returns the function's name.
func (f *Function) Name() string { return f.o.Name }

// start launches the emulator on two free ports (Invoke API, Runtime API).
func (f *Function) start(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(f.o.Emulator,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--log-level", "error",
		f.o.Bootstrap)
	cmd.Dir = filepath.Dir(f.o.Bootstrap)
	cmd.Env = append(append([]string(nil), f.o.Env...),
		"AWS_LAMBDA_FUNCTION_NAME="+f.o.Name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(f.o.Timeout.Seconds())),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(f.o.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+f.o.Name,
	)
	cmd.Stdout, cmd.Stderr = f.o.Log, f.o.Log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lambdarie: %s: start emulator: %w", f.o.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := waitListening(ctx, addr, exited, 10*time.Second); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("lambdarie: %s: %w", f.o.Name, err)
	}
	f.mu.Lock()
	f.cmd, f.exited, f.addr = cmd, exited, addr
	f.mu.Unlock()
	return nil
}

// running returns the emulator's address, restarting the emulator when its
// process is gone (killed or crashed), as Lambda replaces an execution
// environment.
func (f *Function) running(ctx context.Context) (string, error) {
	f.mu.Lock()
	closed, exited, addr := f.closed, f.exited, f.addr
	f.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	select {
	case <-exited:
		if err := f.start(ctx); err != nil {
			return "", err
		}
		f.mu.Lock()
		addr = f.addr
		f.mu.Unlock()
	default:
	}
	return addr, nil
}

// Invoke runs one synchronous invocation with payload (the Lambda Invoke
// API, RequestResponse) and returns the function's response. A handler
// error is ErrFunction; a crash, a timeout or a lost emulator is ErrRuntime.
// Invocations wait for each other.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	f.invoke.Lock()
	defer f.invoke.Unlock()
	addr, err := f.running(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("lambdarie: %s: %w", f.o.Name, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRuntime, f.o.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: read response: %v", ErrRuntime, f.o.Name, err)
	}
	return body, classify(f.o.Name, resp.StatusCode, body)
}

// classify maps the emulator's answer to Lambda's outcomes: status 200 with
// the function's response; 200 with {"errorType","errorMessage"} when the
// handler failed; 200 with "Task timed out after ..." on a timeout; 5xx
// when the function process exited.
func classify(name string, status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("%w: %s: status %d: %s", ErrRuntime, name, status, bytes.TrimSpace(body))
	}
	if bytes.HasPrefix(body, []byte("Task timed out after")) {
		return fmt.Errorf("%w: %s: %s", ErrRuntime, name, body)
	}
	var fe struct {
		ErrorType    *string `json:"errorType"`
		ErrorMessage *string `json:"errorMessage"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) && json.Unmarshal(body, &fe) == nil && fe.ErrorType != nil && fe.ErrorMessage != nil {
		return fmt.Errorf("%w: %s: %s: %s", ErrFunction, name, *fe.ErrorType, *fe.ErrorMessage)
	}
	return nil
}

// EmulatorPID returns the pid of the emulator process (its process group
// holds the function process).
func (f *Function) EmulatorPID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cmd.Process.Pid
}

// Kill kills the emulator and the function process it runs (SIGKILL to the
// process group), as a crashed execution environment. An invocation in
// flight fails with ErrRuntime; the next one starts a new emulator.
func (f *Function) Kill() error {
	f.mu.Lock()
	cmd, exited := f.cmd, f.exited
	f.mu.Unlock()
	if err := signalAll(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("lambdarie: %s: kill: %w", f.o.Name, err)
	}
	<-exited
	return nil
}

// signalAll sends sig to the emulator's process group and to every process
// below it (the function process has a process group of its own).
func signalAll(pid int, sig syscall.Signal) error {
	below := descendants(pid)
	err := syscall.Kill(-pid, sig)
	for _, p := range below {
		_ = syscall.Kill(p, sig)
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Close stops the emulator and the function process (SIGTERM, then SIGKILL
// after 5 s).
func (f *Function) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	cmd, exited := f.cmd, f.exited
	f.mu.Unlock()
	below := descendants(cmd.Process.Pid)
	_ = signalAll(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	for _, p := range below {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return nil
}

// waitListening waits until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("emulator exited at start (see its log)")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("emulator not listening on %s after %s", addr, timeout)
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("lambdarie: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FindBinary returns the emulator: $GEOBLOB_RIE_BIN, else .local/bin/aws-lambda-rie
// under the module root (where `make tools` installs it), else aws-lambda-rie
// on PATH.
func FindBinary() (string, error) {
	return toolbin.Find(BinEnv, "aws-lambda-rie", ErrBinaryNotFound)
}
