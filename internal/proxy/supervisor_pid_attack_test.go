package proxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
)

// startUnrelated starts a process with args after `sh -c 'sleep 30; true'`
// (keepalived: a command line with "keep" as keepalived's has), ended with
// the test; exited says when it ends.
func startUnrelated(t *testing.T, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	other := exec.Command("sh", append([]string{"-c", "sleep 30; true"}, args...)...)
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- other.Wait() }()
	t.Cleanup(func() { other.Process.Kill() })
	return other, exited
}

// A supervisor that died without removing supervisor.pid (SIGKILL, the OOM
// killer) leaves its PID, which a later process may get: `proxy stop` (and
// `restart`) must not signal that process, even one whose command line says
// "keep". The file records the supervisor's start time, which the later
// process does not have.
func TestAttackStaleSupervisorPIDKillsAnUnrelatedProcess(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(proxyDir(home), 0o700); err != nil {
		t.Fatal(err)
	}
	other, exited := startUnrelated(t, "keepalived")
	start := proc.StartTime(other.Process.Pid)
	if start == 0 {
		t.Skip("no /proc start times here")
	}
	// A stale file: the unrelated process's PID with another start time
	// (the supervisor that died).
	if err := os.WriteFile(filepath.Join(proxyDir(home), "supervisor.pid"), []byte(fmt.Sprintf("%d %d\n", other.Process.Pid, start+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := supervisorOf(home); got != 0 {
		t.Errorf("supervisorOf = %d, want 0: pid %d is not the supervisor that wrote the file", got, other.Process.Pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, home, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-exited:
		t.Fatalf("stop killed an unrelated process: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The same with a file an older cutover wrote (a PID alone): the
	// process's command line has "keep", but it is not `proxy keep`.
	if err := os.WriteFile(filepath.Join(proxyDir(home), "supervisor.pid"), []byte(fmt.Sprintf("%d\n", other.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := supervisorOf(home); got != 0 {
		t.Errorf("supervisorOf (a PID alone) = %d, want 0: pid %d is keepalived, not a `proxy keep`", got, other.Process.Pid)
	}
	if err := Stop(ctx, home, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-exited:
		t.Fatalf("stop (a PID alone in supervisor.pid) killed an unrelated process: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := Restart(ctx, home, time.Second); err == nil {
		t.Error("Restart without a proxy succeeded")
	}
	select {
	case err := <-exited:
		t.Fatalf("restart signalled an unrelated process: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

// supervisor.pid names a process by PID and start time; a file an older
// cutover wrote (a PID alone) is still read, with the command-line check.
func TestSupervisorPIDFileFormats(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(proxyDir(home), 0o700); err != nil {
		t.Fatal(err)
	}
	other, _ := startUnrelated(t, "cutover", "proxy", "keep", "--home", home)
	pid := other.Process.Pid
	start := proc.StartTime(pid)
	if start == 0 {
		t.Skip("no /proc start times here")
	}
	for _, c := range []struct {
		file string
		want int
	}{
		{fmt.Sprintf("%d %d\n", pid, start), pid}, // the process that wrote it
		{fmt.Sprintf("%d %d\n", pid, start+1), 0}, // a reuse of its PID
		{fmt.Sprintf("%d\n", pid), pid},           // older format: alive, "keep" in its command line
		{fmt.Sprintf("%d\n", os.Getpid()), 0},     // older format, not a `proxy keep`
		{fmt.Sprintf("%d %d x\n", pid, start), 0}, // not a pid file
		{fmt.Sprintf("%d junk\n", pid), 0},        // not a start time
	} {
		if err := os.WriteFile(supervisorPath(home), []byte(c.file), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := supervisorOf(home); got != c.want {
			t.Errorf("supervisor.pid %q: supervisorOf = %d, want %d", c.file, got, c.want)
		}
		if got, err := readPIDFile(supervisorPath(home)); c.want != 0 && (err != nil || got != pid) {
			t.Errorf("supervisor.pid %q: readPIDFile = %d, %v", c.file, got, err)
		}
	}
	// What a supervisor writes names it.
	if err := os.WriteFile(supervisorPath(home), supervisorRecord(), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, st, err := readPIDStartFile(supervisorPath(home)); err != nil || got != os.Getpid() || st != proc.StartTime(os.Getpid()) {
		t.Errorf("supervisorRecord read back as %d %d (%v), want %d %d", got, st, err, os.Getpid(), proc.StartTime(os.Getpid()))
	}
}
