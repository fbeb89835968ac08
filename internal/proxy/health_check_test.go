package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
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
