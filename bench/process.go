package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a process the benchmark started and must stop, by its PID.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// startChild starts cmd and watches for its exit. On Linux the kernel sends
// it SIGKILL if the benchmark dies without stopping it, so nothing outlives a
// crash (childAttr).
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop sends SIGTERM to the child's PID, waits up to grace, then SIGKILLs it.
func (c *child) stop(grace time.Duration) {
	if c == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "bench: %s (pid %d) did not stop within %s; killing it\n", c.name, c.cmd.Process.Pid, grace)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// exited reports whether the child has already exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitListening waits until addr accepts TCP connections, failing early if
// the child exits first.
func waitListening(ctx context.Context, c *child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if c.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v", c.name, addr, c.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not listening on %s after %s", c.name, addr, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scanFor reads lines from r until one contains marker and returns the text
// after it; the rest of r is drained in the background so the child never
// blocks on a full pipe.
func scanFor(r io.Reader, marker string, timeout time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			if _, after, ok := strings.Cut(s.Text(), marker); ok {
				found <- after
				break
			}
		}
		close(found)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case v, ok := <-found:
		if !ok {
			return "", errors.New("output ended before " + strings.TrimSpace(marker))
		}
		return v, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no %q line within %s", strings.TrimSpace(marker), timeout)
	}
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// could take it before we use it; on a benchmark machine that is unlikely and
// would show up as a clear "address in use" error.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// goBuild builds a package of this module into dir and returns the binary.
func goBuild(ctx context.Context, moduleDir, pkg, dir, name string) (string, error) {
	out := dir + "/" + name
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(b))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the benchmark inside the cutover module: go run ./bench")
	}
	return strings.TrimSuffix(gomod, "/go.mod"), nil
}
