package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealthTransitionsWithThresholds(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var checks atomic.Int32
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			checks.Add(1)
			w.WriteHeader(int(status.Load()))
		}
	}))
	defer u.Close()
	p := newTestProxy(t, Options{})
	hc := HealthCheck{Path: "/healthz", Interval: Duration(20 * time.Millisecond), Timeout: Duration(time.Second), HealthyThreshold: 3, UnhealthyThreshold: 2, SuccessCodes: "200,204"}
	if err := p.Apply(context.Background(), State{TargetGroups: []TargetGroup{{Name: "e/g", Health: hc, Targets: []Target{{ID: "t", Addr: hostOf(u)}}}}}); err != nil {
		t.Fatal(err)
	}
	if ts := p.Targets(); ts[0].State != "initial" {
		t.Fatalf("a new target starts %s, want initial", ts[0].State)
	}
	waitState(t, p, "e/g", "healthy", 1)
	if n := checks.Load(); n < 3 {
		t.Fatalf("healthy after %d checks, want at least the threshold 3", n)
	}
	status.Store(500)
	waitState(t, p, "e/g", "unhealthy", 1)
	if ts := p.Targets(); ts[0].Reason != "GET /healthz: status 500" {
		t.Fatalf("reason %q", ts[0].Reason)
	}
	status.Store(204)
	waitState(t, p, "e/g", "healthy", 1)
}

func TestParseCodes(t *testing.T) {
	for _, c := range []struct {
		in      string
		ok      []int
		notOK   []int
		wantErr bool
	}{
		{in: "200", ok: []int{200}, notOK: []int{201, 500}},
		{in: "200-299", ok: []int{200, 250, 299}, notOK: []int{300, 199}},
		{in: "200,204", ok: []int{200, 204}, notOK: []int{201}},
		{in: "200-299, 302", ok: []int{302, 201}, notOK: []int{301}},
		{in: "abc", wantErr: true},
		{in: "299-200", wantErr: true},
		{in: "200-700", wantErr: true},
		{in: "", wantErr: true},
	} {
		r, err := parseCodes(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		for _, code := range c.ok {
			if !r.match(code) {
				t.Errorf("%q should match %d", c.in, code)
			}
		}
		for _, code := range c.notOK {
			if r.match(code) {
				t.Errorf("%q should not match %d", c.in, code)
			}
		}
	}
}

// A health answer's head is bounded as a target's answer through the proxy
// is (32 KiB, beyond which the data plane answers 502): a hostile or broken
// target's 9 MiB head fails its check rather than costing the proxy its
// size at every interval (Go's client takes up to 10 MiB).
func TestHealthCheckHugeAnswerHeadFails(t *testing.T) {
	var big atomic.Value // built before the measure: the server's allocations are this process's too
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Big"] = []string{big.Load().(string)}
	}))
	defer u.Close()
	c := newHealthConfig(HealthCheck{Path: "/", Timeout: Duration(2 * time.Second), SuccessCodes: "200"})
	big.Store(strings.Repeat("b", 20<<10))
	if reason, err := checkOnce(context.Background(), hostOf(u), c); reason != "" || err != nil {
		t.Fatalf("a 20 KiB head: %q %v, want a passed check", reason, err)
	}
	big.Store(strings.Repeat("b", 9<<20))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	reason, err := checkOnce(context.Background(), hostOf(u), c)
	runtime.ReadMemStats(&after)
	if err != nil || !strings.Contains(reason, "header") {
		t.Fatalf("a 9 MiB head: %q %v, want a failed check that says its head is too large", reason, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("one check of a 9 MiB head allocated %d bytes", grew)
	}
}
