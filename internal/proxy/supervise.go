package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
)

// startTimeout bounds how long EnsureRunning waits for a started proxy to answer.
const startTimeout = 20 * time.Second // covers lockWait for a dying predecessor and the first health checks

// EnsureRunning returns a client of the proxy of home, starting it first if
// it does not answer: exe args... (e.g. os.Executable() and ["proxy",
// "run"]) in a session of its own so it outlives the caller and its
// terminal, with stdin from /dev/null and output appended to
// home/proxy/proxy.log. If the proxy exits or stays silent, the error holds
// the last lines of that log.
func EnsureRunning(ctx context.Context, home string, exe string, args []string) (*Client, error) {
	c := NewClient(home)
	if _, err := ping(ctx, c); err == nil {
		return c, nil
	}
	if err := os.MkdirAll(proxyDir(home), 0o700); err != nil {
		return nil, fmt.Errorf("creating the proxy directory: %w", err)
	}
	logf, err := os.OpenFile(logPath(home), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the proxy log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)

	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the cutover proxy (%s): %w", exe, err)
	}
	// Waited on in the background rather than Released: the wait tells an
	// early exit apart, and reaps the child if it does exit while we run.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := ping(ctx, c); err == nil {
			return c, nil
		}
		select {
		case err := <-exited:
			// A proxy started meanwhile by another command wins the lock; use it.
			if _, perr := ping(ctx, c); perr == nil {
				return c, nil
			}
			return nil, fmt.Errorf("the cutover proxy exited at once (%v); last lines of %s:\n%s", err, logPath(home), tailFrom(logPath(home), logStart, 10))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the cutover proxy (pid %d) did not answer on %s within %s; last lines of %s:\n%s",
				cmd.Process.Pid, socketPath(home), startTimeout, logPath(home), tailFrom(logPath(home), logStart, 10))
		}
	}
}

func ping(ctx context.Context, c *Client) (Health, error) {
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		h, err := c.Ping(pctx)
		cancel()
		// A proxy that has just died can still take a connection on its
		// socket and reset it (or break the pipe of the request being written);
		// a moment later the socket refuses, which is
		// the answer wanted ("not running").
		if err == nil || attempt == 2 || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return h, err
		}
		select {
		case <-ctx.Done():
			return h, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tailFrom returns the last n lines of path written after offset.
func tailFrom(path string, offset int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	lines := strings.Split(strings.TrimRight(string(bytes.TrimSpace(b)), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Stop stops the proxy of home: SIGTERM to the PID in proxy.pid, then
// SIGKILL if it still runs after grace. The PID is signalled only if the
// proxy answering on the socket reports that same PID, so a stale pid file
// never kills an unrelated process. Stopping a proxy that is not running
// is not an error.
func Stop(ctx context.Context, home string, grace time.Duration) error {
	h, err := ping(ctx, NewClient(home))
	if errors.Is(err, ErrNotRunning) {
		// No proxy answers, but its supervisor may be about to start one
		// again (between a crash and the restart): stop the supervisor.
		stopIdleSupervisor(ctx, home)
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := readPID(home)
	if err != nil || pid != h.PID {
		return fmt.Errorf("the proxy answering on %s has pid %d but %s says %d: stop pid %d yourself", socketPath(home), h.PID, pidPath(home), pid, h.PID)
	}
	// A supervisor (Keep) must not start again a proxy stopped on purpose,
	// even one that has to be killed; it exits with it.
	if err := markStopping(home); err != nil {
		return fmt.Errorf("stopping the cutover proxy: %w", err)
	}
	supervisor := supervisorOf(home) // waited for below, never signalled
	defer func() {
		if supervisor > 0 {
			waitGone(ctx, supervisor, 2*time.Second)
		}
	}()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		_ = os.Remove(stoppingPath(home))
		return fmt.Errorf("stopping the cutover proxy (pid %d): %w", pid, err)
	}
	if waitGone(ctx, pid, grace) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing the cutover proxy (pid %d): %w", pid, err)
	}
	if !waitGone(ctx, pid, 5*time.Second) {
		return fmt.Errorf("the cutover proxy (pid %d) is still running after SIGKILL", pid)
	}
	return nil
}

// waitGone waits up to d for pid to exit (or become a zombie).
func waitGone(ctx context.Context, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !proc.Alive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// stopIdleSupervisor sends SIGTERM to the supervisor named in
// supervisor.pid, if that process is alive and is a `proxy keep` (a stale
// file must never signal an unrelated process), and waits for it.
func stopIdleSupervisor(ctx context.Context, home string) {
	pid := supervisorOf(home)
	if pid <= 0 {
		return
	}
	_ = markStopping(home)
	if syscall.Kill(pid, syscall.SIGTERM) == nil && waitGone(ctx, pid, 5*time.Second) {
		// A supervisor ended by its signal stops its proxies without
		// reading the marker: it is this stop's to remove (left, the next
		// Keep would take its proxy's first crash for a stop until that
		// proxy answers). TestStopDuringARestartStopsEverything found it,
		// when the stop came as the restart's proxies swapped the socket.
		_ = os.Remove(stoppingPath(home))
	}
}

// supervisorOf returns the PID in supervisor.pid if that process is alive
// and is the supervisor that wrote the file (a stale file must never signal
// an unrelated process), else 0. The file names the supervisor by PID and
// start time, so a process that got the PID of a supervisor that was
// SIGKILLed is not taken for it, even one whose command line says "keep"
// (keepalived). A file without a start time (an older cutover wrote it)
// is trusted only if the process is alive and its arguments have "proxy"
// then "keep" (as `cutover proxy keep` and its systemd unit run it; a mere
// "keep" in the command line matched keepalived).
func supervisorOf(home string) int {
	pid, start, err := readPIDStartFile(supervisorPath(home))
	if err != nil || !proc.Alive(pid) {
		return 0
	}
	if start != 0 {
		if !proc.Same(pid, start) {
			return 0
		}
		return pid
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !isProxyKeep(cmdline) {
		return 0
	}
	return pid
}

// isProxyKeep reports whether a /proc/PID/cmdline (NUL-separated
// arguments) runs the `proxy keep` command.
func isProxyKeep(cmdline []byte) bool {
	args := bytes.Split(cmdline, []byte{0})
	for i := 1; i < len(args); i++ {
		if string(args[i-1]) == "proxy" && string(args[i]) == "keep" {
			return true
		}
	}
	return false
}

// Restart replaces the running proxy with a new process (a new version of
// cutover, new listener limits) without refusing a connection: its
// supervisor starts the next proxy with the listening sockets it holds
// while the running one finishes its requests (up to its grace). It
// returns the next proxy's health once it answers.
func Restart(ctx context.Context, home string, wait time.Duration) (Health, error) {
	h, err := ping(ctx, NewClient(home))
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			return Health{}, fmt.Errorf("%w: start it with `cutover proxy start`", err)
		}
		return Health{}, err
	}
	sup := supervisorOf(home)
	if sup <= 0 {
		return Health{}, fmt.Errorf("the proxy (pid %d) has no supervisor to start the next one (it was started with `cutover proxy run`, or 2s have not passed since `cutover proxy start`): stop it with `cutover proxy stop`, then `cutover proxy start`", h.PID)
	}
	// The supervisor writes it if this restart fails.
	if err := os.Remove(restartFailedPath(home)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Health{}, err
	}
	if err := syscall.Kill(sup, syscall.SIGHUP); err != nil {
		return Health{}, fmt.Errorf("asking the proxy's supervisor (pid %d) to restart it: %w", sup, err)
	}
	deadline := time.Now().Add(wait)
	for {
		next, err := NewClient(home).Ping(ctx)
		if err == nil && next.PID != h.PID {
			return next, nil
		}
		// The supervisor records a restart that failed (the running
		// proxy then serves on).
		if why, serr := os.ReadFile(restartFailedPath(home)); serr == nil {
			// The supervisor records the failure, then tells the running
			// proxy to take changes again: say it serves on once it does
			// (its restart marker gone), so a change made next is not
			// held by the freeze.
			for !time.Now().After(deadline) {
				if _, err := os.Stat(restartingPath(home)); errors.Is(err, os.ErrNotExist) {
					break
				}
				select {
				case <-ctx.Done():
					return Health{}, ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
			return Health{}, fmt.Errorf("the new proxy did not start, so pid %d serves on: %s (see %s)", h.PID, strings.TrimSpace(string(why)), logPath(home))
		}
		if time.Now().After(deadline) {
			return Health{}, fmt.Errorf("no new proxy answered within %s of the restart (pid %d was running; see %s)", wait, h.PID, logPath(home))
		}
		select {
		case <-ctx.Done():
			return Health{}, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}
