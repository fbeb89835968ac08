package proxy

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
)

// A proxy under Keep comes back by itself after it is SIGKILLed (as a crash
// or the OOM killer would end it) and serves the persisted routes again;
// `Stop` ends both the proxy and its supervisor, and leaves them down.
func TestKeepRestartsAKilledProxyAndStopEndsBoth(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, first := startDaemonAs(t, home, "cutover-test-keeper")
	h := Health{PID: first}
	var supervisor int
	t.Cleanup(func() { // nothing left running, even after a failure
		for _, pid := range []int{supervisor, h.PID} {
			if pid > 0 && proc.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				waitGone(context.Background(), pid, 5*time.Second)
			}
		}
	})
	u := upstream(t, "web")
	addr := freeAddr(t)
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	for deadline := time.Now().Add(5 * time.Second); supervisor == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		supervisor, _ = readPIDFile(supervisorPath(home))
	}
	if supervisor <= 0 || supervisor == h.PID || !proc.Alive(supervisor) {
		t.Fatalf("supervisor pid %d (proxy pid %d)", supervisor, h.PID)
	}

	killed := time.Now()
	if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var (
		again Health
		err   error
	)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if again, err = c.Ping(ctx); err == nil && again.PID != h.PID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no proxy answered within 15s of the kill (last: %v)", err)
		}
	}
	t.Logf("proxy pid %d SIGKILLed; pid %d answered after %s", h.PID, again.PID, time.Since(killed).Round(time.Millisecond))
	if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "web" {
		t.Fatalf("first request through the restarted proxy: %d %q", code, body)
	}
	if log, _ := os.ReadFile(logPath(home)); !strings.Contains(string(log), "the proxy died; starting it again") {
		t.Errorf("the restart is not in the proxy log:\n%s", log)
	}
	h = again

	if err := Stop(ctx, home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(h.PID) || !waitGone(ctx, supervisor, 5*time.Second) {
		t.Fatalf("after Stop: proxy alive %v, supervisor alive %v", proc.Alive(h.PID), proc.Alive(supervisor))
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Ping(ctx); err == nil {
		t.Fatal("a proxy answers after Stop: it was restarted")
	}
}

// A second Keep for a home whose proxy already runs gives up at once (its
// proxy cannot start) instead of restarting it in a loop, and leaves the
// first supervisor's pid file alone.
func TestKeepGivesUpWhenTheProxyCannotStart(t *testing.T) {
	home := t.TempDir()
	c, pid := startDaemon(t, home)
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(supervisorPath(home), []byte("4242\n"), 0o600)
	start := time.Now()
	err := Keep(context.Background(), home, os.Args[0], []string{"cutover-test-proxyd", home}, KeepOptions{MinUptime: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "not restarting it") {
		t.Fatalf("Keep = %v, want it to give up", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Keep took %s to give up", took)
	}
	if got, _ := readPIDFile(supervisorPath(home)); got != 4242 {
		t.Errorf("supervisor.pid = %d, want the first supervisor's 4242 untouched", got)
	}
	if !proc.Alive(pid) {
		t.Error("the running proxy was stopped")
	}
}

// Stop between a crash and the restart (no proxy answers, the supervisor
// waits out its backoff) stops the supervisor, so nothing comes back.
func TestStopBetweenCrashAndRestart(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	_, pid := startDaemonAs(t, home, "cutover-test-keeper-slow")
	var supervisor int
	for deadline := time.Now().Add(5 * time.Second); supervisor == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		supervisor, _ = readPIDFile(supervisorPath(home))
	}
	if supervisor <= 0 {
		t.Fatal("no supervisor pid file")
	}
	t.Cleanup(func() {
		if proc.Alive(supervisor) {
			syscall.Kill(supervisor, syscall.SIGKILL)
			waitGone(context.Background(), supervisor, 5*time.Second)
		}
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil || !waitGone(ctx, pid, 5*time.Second) {
		t.Fatalf("kill the proxy: %v", err)
	}
	if err := Stop(ctx, home, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(supervisor) {
		t.Fatal("the supervisor runs after Stop")
	}
	time.Sleep(3500 * time.Millisecond) // past the supervisor's backoff
	if _, err := NewClient(home).Ping(ctx); err == nil {
		t.Fatal("a proxy came back after Stop")
	}
}
