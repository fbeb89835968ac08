package main

import (
	"context"
	"testing"
	"time"
)

// TestBenchSmoke runs the whole benchmark briefly: build and start the
// backend, nginx, HAProxy and the proxy (in-process, to skip building the
// CLI), send a second of load to each in every setting,
// flip the weights under load, and stop everything. wrk, nginx and HAProxy
// must be installed: their absence fails the test.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the backend and starts nginx and HAProxy")
	}
	if err := checkTools(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := bench(ctx, options{duration: time.Second, rounds: 1, conns: []int{4},
		path: "/api/health", proxyMode: modeInProcess, backend: backendBluemed, flips: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Settings) != 2 {
		t.Fatalf("%d settings, want keep-alive and new-conn at 4 connections", len(rep.Settings))
	}
	for _, s := range rep.Settings {
		for _, r := range s.Targets {
			if r.Requests == 0 || r.Errors != 0 || r.RPS <= 0 || r.P99 <= 0 {
				t.Errorf("%s %s: %d requests, %d errors, %.0f req/s, p99 %s; want some requests and none failed",
					s.mode(), r.Name, r.Requests, r.Errors, r.RPS, r.P99)
			}
			if r.Name != "direct" && r.CPUPerReq <= 0 {
				t.Errorf("%s %s: no CPU per request measured", s.mode(), r.Name)
			}
			if r.BackendCPUPerReq <= 0 || r.LoadCPUPerReq <= 0 {
				t.Errorf("%s %s: backend CPU per request %s, wrk's %s; want both measured", s.mode(), r.Name, r.BackendCPUPerReq, r.LoadCPUPerReq)
			}
		}
	}
	if f := rep.Flip; f == nil || f.Flips != 2 || f.Failed != 0 || f.Requests == 0 {
		t.Errorf("weight flip: %+v, want 2 flips and no failed request", f)
	}
}
