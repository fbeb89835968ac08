package proc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestAliveTellsARunningProcessFromAZombieAndAGone(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	for _, pid := range []int{0, -1, -os.Getpid()} {
		if Alive(pid) {
			t.Fatalf("Alive(%d): a group or the caller's group is never one live process", pid)
		}
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !Alive(pid) || StartTime(pid) == 0 {
		t.Fatalf("a running sleep: alive %v, start time %d", Alive(pid), StartTime(pid))
	}
	_ = cmd.Process.Kill()
	// Not reaped yet: a zombie, which is not alive.
	deadline := time.Now().Add(5 * time.Second)
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) {
		t.Fatal("a killed, unreaped child still counts as alive")
	}
	_ = cmd.Wait()
	if Alive(pid) || StartTime(pid) != 0 {
		t.Fatal("a reaped child still counts as alive")
	}
}

func TestSameRefusesAReusedPID(t *testing.T) {
	start := StartTime(os.Getpid())
	if !Same(os.Getpid(), start) {
		t.Fatal("this process is not the same as itself")
	}
	if Same(os.Getpid(), start+1) {
		t.Fatal("a different start time names another process: Same must be false")
	}
}

// KillGroup ends a whole group: the shell and the child it left behind,
// and only when the leader is the process recorded.
func TestKillGroupEndsTheGroupOnlyForTheRecordedLeader(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL); _ = cmd.Wait() })
	start := StartTime(pgid)
	if KillGroup(pgid, start+1) {
		t.Fatal("KillGroup signalled a group whose leader is not the recorded process")
	}
	if !groupAlive(pgid) {
		t.Fatal("the group died without a signal")
	}
	if KillGroup(1, 0) || KillGroup(0, 0) {
		t.Fatal("KillGroup signalled init's or the caller's group")
	}
	if !KillGroup(pgid, start) {
		t.Fatal("KillGroup did not signal the recorded group")
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if groupAlive(pgid) {
		t.Fatal("a member of the group (the background sleep) survived KillGroup")
	}
}

// A process chooses its own command name, which /proc/PID/stat shows in
// parentheses before the state: a name holding ") Z (" must not make a
// running process read as a zombie, nor shift the start time.
func TestAliveReadsStateAfterAHostileCommandName(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep is needed to start a child: %v", err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	hostile := filepath.Join(t.TempDir(), "x) Z 1 (y")
	if err := os.WriteFile(hostile, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hostile, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || !strings.Contains(string(stat), "(x) Z 1 (y)") {
		t.Fatalf("the child's stat %q (%v) does not carry the hostile name: the test proves nothing", stat, err)
	}
	start := StartTime(pid)
	if !Alive(pid) || start == 0 || !Same(pid, start) {
		t.Fatalf("a running child named %q: alive %v, start time %d", filepath.Base(hostile), Alive(pid), start)
	}
	if self := StartTime(os.Getpid()); start < self {
		t.Fatalf("the child's start time %d is before its parent's %d: fields were miscounted", start, self)
	}
}

// groupAlive reports whether any process of group pgid runs.
func groupAlive(pgid int) bool {
	return pgid > 1 && syscall.Kill(-pgid, 0) == nil
}

// ListenerUID names the owner of a loopback listener: this process's own,
// another user's (started as nobody), and none once it is closed.
func TestListenerUIDNamesTheListenersOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if uid, ok := ListenerUID(port); !ok || uid != os.Getuid() {
		t.Errorf("ListenerUID(%d) of this process's listener = %d, %v; want %d, true", port, uid, ok, os.Getuid())
	}
	ln.Close()
	if uid, ok := ListenerUID(port); ok {
		t.Errorf("ListenerUID(%d) after the listener closed = %d, true; want false", port, uid)
	}
	port, _ = testenv.ServeAsNobody(t)
	if uid, ok := ListenerUID(port); !ok || uid != 65534 {
		t.Errorf("ListenerUID(%d) of nobody's listener = %d, %v; want 65534, true", port, uid, ok)
	}
}
