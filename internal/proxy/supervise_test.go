package proxy

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"

	"github.com/cutoverdev/cutover/internal/proc"
)

// startDaemon starts this test binary as a detached proxy for home and
// makes sure it is gone at the end of the test.
func startDaemon(t *testing.T, home string) (*Client, int) {
	t.Helper()
	return startDaemonAs(t, home, "cutover-test-proxyd")
}

// startDaemonAs is startDaemon with the role of the detached process.
func startDaemonAs(t *testing.T, home, role string) (*Client, int) {
	t.Helper()
	ctx := context.Background()
	c, err := EnsureRunning(ctx, home, os.Args[0], []string{role, home})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if proc.Alive(h.PID) {
			syscall.Kill(h.PID, syscall.SIGKILL)
			waitGone(context.Background(), h.PID, 5*time.Second)
		}
	})
	return c, h.PID
}

func TestDaemonSurvivesSIGKILLAndServesPersistedRoutesOnRestart(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, pid := startDaemon(t, home)
	if again, err := EnsureRunning(ctx, home, os.Args[0], []string{"cutover-test-proxyd", home}); err != nil {
		t.Fatal(err)
	} else if h, _ := again.Ping(ctx); h.PID != pid {
		t.Fatalf("EnsureRunning started a second proxy (pid %d, first %d)", h.PID, pid)
	}
	u := upstream(t, "web")
	addr := freeAddr(t)
	tg := tgOf("e/web", u)
	tg.Health.HealthyThreshold = 3
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tg}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(ctx, pid, 5*time.Second) {
		t.Fatal("the proxy survived SIGKILL")
	}
	c, pid2 := startDaemon(t, home) // the stale socket and pid file are left from the kill
	if pid2 == pid {
		t.Fatal("same pid")
	}
	if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "web" {
		t.Fatalf("first request after the restarted proxy answered ping: %d %q", code, body)
	}
	if err := Stop(ctx, home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(pid2) {
		t.Fatal("the proxy runs after Stop")
	}
	if err := Stop(ctx, home, time.Second); err != nil {
		t.Fatalf("stopping a stopped proxy: %v", err)
	}
}

func TestEnsureRunningReportsEarlyExit(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(home+"/proxy", 0o700)
	os.WriteFile(home+"/proxy/state.json", []byte(`{"state": {"listeners": "nope"}}`), 0o600)
	_, err := EnsureRunning(context.Background(), home, os.Args[0], []string{"cutover-test-proxyd", home})
	if err == nil || !strings.Contains(err.Error(), "exited at once") || !strings.Contains(err.Error(), "state.json") {
		t.Fatalf("want the early exit with the log's reason, got %v", err)
	}
}

func TestKilledControllerDoesNotFailRequests(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, _ := startDaemon(t, home)
	blue, green := upstream(t, "blue"), upstream(t, "green")
	addr := freeAddr(t)
	err := c.PutScope(ctx, "e", State{
		Listeners:    []Listener{{Name: "e/production", Addr: addr, Rules: []Rule{{Forward: []WeightedTarget{{"e/blue", 100}, {"e/green", 0}}}}}},
		TargetGroups: []TargetGroup{tgOf("e/blue", blue), tgOf("e/green", green)},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 2)

	load := make(chan loadgen.Result)
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: "http://" + addr + "/", Concurrency: 8, Duration: 3 * time.Second, CountHeader: "X-Upstream"})
		if err != nil {
			t.Error(err)
		}
		load <- res
	}()
	ctl := exec.Command(os.Args[0], "cutover-test-controller", home)
	out, _ := ctl.StdoutPipe()
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Process.Kill(); ctl.Wait() })
	sc := bufio.NewScanner(out)
	for flips := 0; flips < 20 && sc.Scan(); flips++ {
	}
	time.Sleep(500 * time.Millisecond)
	ctl.Process.Signal(syscall.SIGKILL) // mid-change, as a crashing `cutover deploy` would
	ctl.Wait()

	res := <-load
	t.Logf("load while the controller flipped weights and was SIGKILLed: %s; by upstream %v", res, res.Header)
	if res.Failed != 0 || res.Requests == 0 {
		t.Fatalf("want zero failed requests, got %s errors %v", res, res.Errors)
	}
	if res.Header["blue"] == 0 || res.Header["green"] == 0 {
		t.Fatalf("the controller's flips did not reach the proxy: %v", res.Header)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("the proxy died with its controller: %v", err)
	}
}
