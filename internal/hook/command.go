package hook

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	keepOutput  = 16 << 10 // bytes of output kept while a command runs
	tailLines   = 10       // lines of output shown in a Detail
	tailBytes   = 1 << 10  // bytes of output shown in a Detail
	pipesLinger = 2 * time.Second
)

// runCommand execs argv directly (no shell) in env.Dir. The command gets its own
// process group, so that a timeout kills the group: a hung script's children die
// with it instead of outliving the deployment.
func runCommand(ctx context.Context, argv, pass []string, env Env, timeout time.Duration) (bool, string) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Secrets are masked in all the output kept, before the last of it is
	// cut for the Detail: a secret the cut splits would not match after.
	out := &tail{mask: func(s string) string { return redact(s, env.Vars, pass) }}
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	cmd.Dir = env.Dir
	cmd.Env = commandEnv(pass, env)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Background children that keep the output pipe open must not hold up Wait.
	cmd.WaitDelay = pipesLinger
	err := cmd.Run()
	if cmd.Process != nil {
		// Whatever the command left running in its group goes too: a hook is a
		// check, not a way to start services. The group id cannot have been reused
		// while any member is alive.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the command exited 0 but a child it left kept the output open.
		return true, "exit code 0" + out.suffix()
	case ctx.Err() != nil:
		return false, "was canceled: the deployment stopped" + out.suffix()
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		return false, fmt.Sprintf("timed out after %s", timeout) + out.suffix()
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return false, fmt.Sprintf("killed by signal %s", ws.Signal()) + out.suffix()
		}
		return false, fmt.Sprintf("exit code %d", exitErr.ExitCode()) + out.suffix()
	}
	return false, startFailure(argv[0], env.Dir, err)
}

// startFailure words an error starting the command, such as a missing script.
func startFailure(name, dir string, err error) string {
	var execErr *exec.Error
	var pathErr *fs.PathError
	switch {
	case errors.As(err, &execErr) && errors.Is(execErr.Err, exec.ErrNotFound):
		return fmt.Sprintf("cannot start %s: not found in $PATH (write a path such as ./%s for a file in the project)", name, name)
	case errors.As(err, &pathErr):
		err = pathErr.Err
	}
	where := ""
	if dir != "" {
		where = " in " + dir
	}
	return fmt.Sprintf("cannot start %s%s: %v (check the path and that the file is executable)", name, where, err)
}

// tail keeps the last keepOutput bytes written to it. os/exec calls Write from one
// goroutine at a time because Stdout and Stderr are the same writer.
type tail struct {
	buf  []byte
	mask func(string) string // applied to the kept output before it is cut
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if extra := len(t.buf) - keepOutput; extra > 0 {
		t.buf = append(t.buf[:0], t.buf[extra:]...)
	}
	return len(p), nil
}

// suffix is the last output for a Detail: at most tailLines non-empty lines and
// tailBytes bytes, joined with " | " to stay on one line.
func (t *tail) suffix() string {
	var lines []string
	kept := strings.ToValidUTF8(string(t.buf), "?")
	if t.mask != nil {
		kept = t.mask(kept)
	}
	for _, l := range strings.Split(kept, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "; no output"
	}
	s := strings.Join(lines[max(len(lines)-tailLines, 0):], " | ")
	if len(s) > tailBytes {
		s = "…" + strings.ToValidUTF8(s[len(s)-tailBytes:], "")
	}
	return "; last output: " + s
}
