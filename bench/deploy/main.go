// Command deploy is the deployment section of `make bench`: it drives the
// real cutover binary on the example monorepo (examples/bluemed) under a
// steady 1,000 requests/s and measures what a release costs — the time
// from a healthy new set to all traffic on it, the time of a rollback
// during the termination wait, how long each kind of bad release takes to
// be caught and rolled back, and the requests that failed meanwhile.
//
// Everything runs on 127.0.0.1 under a unique project with its own
// CUTOVER_HOME, and is removed at the end, also on error or Ctrl-C.
//
//	go run ./bench/deploy [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	jsonOut := flag.Bool("json", false, "print the report as JSON on stdout instead of a table")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A bound on the whole run, so a hung deployment never runs forever.
	ctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	rep, err := run(ctx)
	cancel()
	stop()
	if err == nil || len(rep.Scenarios) > 0 { // what was measured before a failure is still worth reading
		write := rep.writeTable
		if *jsonOut {
			write = rep.writeJSON
		}
		if werr := write(os.Stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (Report, error) {
	root, err := findRoot()
	if err != nil {
		return Report{}, err
	}
	start := time.Now()
	progressf("building cutover")
	h, err := newHarness(ctx, root)
	if h != nil {
		defer h.cleanup()
	}
	if err != nil {
		return Report{}, err
	}
	b := &bench{h: h}
	rep, err := b.all(ctx)
	progressf("measured in %s", time.Since(start).Round(time.Second))
	if ctx.Err() != nil && err != nil {
		return rep, fmt.Errorf("interrupted: %w", err)
	}
	return rep, err
}
