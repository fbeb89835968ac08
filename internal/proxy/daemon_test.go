package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startRun runs Run in-process on a fresh home and returns a client; the
// proxy is stopped at the end of the test.
func startRun(t *testing.T, home string) (*Client, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, home, RunOptions{Version: "test", Logger: nil, ShutdownGrace: 5 * time.Second})
	}()
	c := NewClient(home)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Ping(ctx); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

func TestRunServesAPIAndPersists(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	if _, err := NewClient(home).Ping(ctx); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "cutover proxy start") {
		t.Fatalf("ping without a proxy: %v", err)
	}
	c, stop := startRun(t, home)
	h, err := c.Ping(ctx)
	if err != nil || h.PID != os.Getpid() || h.Version != "test" {
		t.Fatalf("health %+v %v", h, err)
	}
	if err := Run(ctx, home, RunOptions{}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second proxy on the same home: %v", err)
	}

	blue, green := upstream(t, "blue"), upstream(t, "green")
	addrA, addrB := freeAddr(t), freeAddr(t)
	prod := State{Listeners: []Listener{oneRouteNamed("prod/production", addrA, "prod/web")}, TargetGroups: []TargetGroup{tgOf("prod/web", blue)}}
	staging := State{Listeners: []Listener{oneRouteNamed("staging/production", addrB, "staging/web")}, TargetGroups: []TargetGroup{tgOf("staging/web", green)}}
	if err := c.PutScope(ctx, "prod", prod); err != nil {
		t.Fatal(err)
	}
	if err := c.PutScope(ctx, "staging", staging); err != nil {
		t.Fatal(err)
	}
	if err := c.PutScope(ctx, "staging", prod); err == nil || !strings.Contains(err.Error(), "every name must start with the scope") {
		t.Fatalf("a scope writing another's objects: %v", err)
	}
	if err := c.PutScope(ctx, "prod", State{Listeners: []Listener{oneRouteNamed("prod/x", "127.0.0.1:0", "prod/none")}}); err == nil {
		t.Fatal("an invalid state was accepted")
	}
	st, gen, err := c.State(ctx)
	if err != nil || len(st.Listeners) != 2 || gen != 2 {
		t.Fatalf("state gen %d %+v %v", gen, st, err)
	}
	if _, err := c.PutState(ctx, st, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("a stale If-Match: %v", err)
	}
	waitTargets(t, c, 2)
	for addr, want := range map[string]string{addrA: "blue", addrB: "green"} {
		if _, body, _ := get(t, addr, "", "/"); body != want {
			t.Fatalf("%s answered %q, want %q", addr, body, want)
		}
	}
	if err := c.SetWeights(ctx, WeightChange{Listener: "prod/production", Forward: []WeightedTarget{{"prod/web", 5}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWeights(ctx, WeightChange{Listener: "prod/production", PathPrefix: "/nope", Forward: []WeightedTarget{{"prod/web", 5}}}); err == nil {
		t.Fatal("weights of a missing rule were accepted")
	}
	stats, err := c.Stats(ctx)
	if g, ok := stats.Group("prod/web"); err != nil || !ok || g.Requests != 1 || g.Healthy != 1 {
		t.Fatalf("stats %+v %v", stats, err)
	}
	resp, err := c.hc.Get(adminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `cutover_proxy_requests_total{code="2xx",listener="prod/production",target_group="prod/web"} 1`) {
		t.Fatalf("metrics lack the request:\n%s", metrics)
	}

	stop()
	for _, f := range []string{"admin.sock", "proxy.pid"} {
		if _, err := os.Stat(filepath.Join(home, "proxy", f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after stop: %v", f, err)
		}
	}
	if _, err := http.Get("http://" + addrA + "/"); err == nil {
		t.Fatal("the listener still answers after stop")
	}

	// A restart serves the persisted routes at once.
	c, _ = startRun(t, home)
	st, gen, err = c.State(ctx)
	if err != nil || gen != 3 || len(st.Listeners) != 2 || st.Listeners[0].Rules[0].Forward[0].Weight != 5 {
		t.Fatalf("after restart: gen %d %+v %v", gen, st, err)
	}
	waitTargets(t, c, 2)
	if _, body, _ := get(t, addrB, "", "/"); body != "green" {
		t.Fatalf("after restart %q", body)
	}
	if err := c.PutScope(ctx, "staging", State{}); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := c.State(ctx); len(st.Listeners) != 1 || len(st.TargetGroups) != 1 {
		t.Fatalf("an empty scope should remove it: %+v", st)
	}
}

func oneRouteNamed(name, addr, group string) Listener {
	return Listener{Name: name, Addr: addr, Rules: []Rule{{Forward: []WeightedTarget{{group, 1}}}}}
}

func waitTargets(t *testing.T, c *Client, healthy int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts, err := c.Targets(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range ts {
			if x.State == "healthy" {
				n++
			}
		}
		if n == healthy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d healthy targets, have %+v", healthy, ts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProxyProcs: the proxy runs one event loop per CPU Go would use, and
// one P more for its other goroutines.
func TestProxyProcs(t *testing.T) {
	for cpus, want := range map[int]int{0: 2, 1: 2, 2: 3, 3: 4, 4: 5, 16: 17} {
		if got := proxyProcs(cpus); got != want {
			t.Errorf("proxyProcs(%d) = %d, want %d", cpus, got, want)
		}
	}
}
