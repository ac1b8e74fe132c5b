package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readPID returns the pid recorded in file and whether that process is alive.
func readPID(file string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid)
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie (exited child not yet reaped) still answers signal 0.
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// stopPID sends SIGTERM to the process named by pidFile, waits up to grace
// for it to exit, then sends SIGKILL. It removes the pid file and reports
// whether a live process was stopped.
func stopPID(ctx context.Context, pidFile string, grace time.Duration) (int, bool, error) {
	pid, ok := readPID(pidFile)
	if !ok {
		_ = os.Remove(pidFile)
		return pid, false, nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return pid, false, fmt.Errorf("devstack: stop pid %d (%s): %w", pid, pidFile, err)
	}
	deadline := time.Now().Add(grace)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
			break
		}
		select {
		case <-ctx.Done():
			return pid, false, fmt.Errorf("devstack: wait for pid %d to exit: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = os.Remove(pidFile)
	return pid, true, nil
}

// spawn starts argv as a detached background process (own session, so a
// Ctrl-C in the terminal that ran `up` does not reach it) with stdout and
// stderr appended to logFile, and records its pid in pidFile.
func spawn(argv, env []string, pidFile, logFile string) (int, error) {
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("devstack: open log %s: %w", logFile, err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("devstack: start %s: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	// Reap the child if it exits while we are still running, so alive()
	// sees it gone; the daemon outlives us otherwise.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("devstack: write %s: %w", pidFile, err)
	}
	return pid, nil
}

// waitHTTP polls url until it answers any HTTP status, the process pid dies
// (pid 0: not watched) or ctx ends.
func waitHTTP(ctx context.Context, url string, pid int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
		if err != nil {
			return fmt.Errorf("devstack: %s: %w", url, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("devstack: process %d exited before %s answered", pid, url)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: %s did not answer within %s: %w", url, timeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// copyExecutable copies the running binary to dst so a daemon started from
// `go run` keeps a binary that outlives go run's temporary build directory.
func copyExecutable(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("devstack: read executable: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return fmt.Errorf("devstack: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("devstack: install %s: %w", dst, err)
	}
	return nil
}
