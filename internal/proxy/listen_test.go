package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestListenerOnEveryInterfaceSurvivesARestart: a listener bound on
// 0.0.0.0 (facing users) goes through the admin API, is persisted with its
// bind address and is served again by the next proxy. Traffic is sent to
// 127.0.0.1 only.
func TestListenerOnEveryInterfaceSurvivesARestart(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	public := net.JoinHostPort("0.0.0.0", port)
	web := upstream(t, "web")
	st := State{Listeners: []Listener{oneRouteNamed("prod/production", public, "prod/web")}, TargetGroups: []TargetGroup{tgOf("prod/web", web)}}

	get := func() string {
		t.Helper()
		res, err := http.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	c, stop := startRun(t, home)
	if err := c.PutScope(ctx, "prod", st); err != nil {
		t.Fatal(err)
	}
	// The new target takes traffic once its first health check passed
	// (checked at once, but not before PutScope returns).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := get()
		if got == "web" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("through 0.0.0.0:%s: %q", port, got)
		}
	}
	stop()

	c, _ = startRun(t, home)
	got, _, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Listeners) != 1 || got.Listeners[0].Addr != public {
		t.Fatalf("restored listeners %+v, want one on %s", got.Listeners, public)
	}
	if got := get(); got != "web" {
		t.Fatalf("after a restart: %q", got)
	}
}

func TestListenerAddressMustBeAnIPAndPort(t *testing.T) {
	p := newTestProxy(t, Options{})
	web := upstream(t, "web")
	for _, addr := range []string{"localhost:8080", "0.0.0.0", "0.0.0.0:0", "0.0.0.0:65536", ":8080"} {
		st := State{Listeners: []Listener{oneRouteNamed("prod/production", addr, "prod/web")}, TargetGroups: []TargetGroup{tgOf("prod/web", web)}}
		if err := p.Apply(context.Background(), st); err == nil {
			t.Errorf("addr %q accepted", addr)
		}
	}
}
