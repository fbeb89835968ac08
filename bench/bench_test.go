package main

import (
	"context"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestBenchSmoke runs the whole benchmark briefly: build and start the
// backend, nginx and the proxy (in-process, to skip building the CLI), send
// a few hundred milliseconds of load to each, and stop everything.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the backend and starts nginx")
	}
	testenv.RequireFile(t, nginxBin, "nginx-light")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := bench(ctx, options{duration: 200 * time.Millisecond, rounds: 1, concurrency: 4,
		path: "/api/health", proxyMode: modeInProcess})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Targets {
		if s.Requests == 0 || s.Failed != 0 || s.RPS <= 0 {
			t.Errorf("%s: %d requests, %d failed, %.0f req/s; want some requests and none failed", s.Name, s.Requests, s.Failed, s.RPS)
		}
	}
}
