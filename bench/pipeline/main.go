// Command pipeline is the pipeline section of `make bench`: the wall time
// from a commit on main to production for the example monorepo
// (examples/bluemed, two services), broken down per stage and action, and
// the engine's own overhead — the time not spent in user commands, image
// builds, pushes, compose integration, deploy waits, verify checks or the
// wait for a person's approval.
//
// It runs the real cutover binary on a temporary clone of this repository
// (HEAD) under a unique project, free 127.0.0.1 ports and its own
// CUTOVER_HOME, approves the production gate as soon as it is requested,
// and removes everything at the end, also on error or Ctrl-C.
//
//	go run ./bench/pipeline [-json]
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

// Goals of issue 4 on this 2-core machine.
const (
	goalEndToEnd = 3 * time.Minute
	goalOverhead = time.Second
)

func main() {
	jsonOut := flag.Bool("json", false, "print the report as JSON on stdout instead of a table")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A bound on the whole run, so a hung pipeline never runs forever.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	rep, err := run(ctx)
	cancel()
	stop()
	if rep != nil {
		write := rep.writeTable
		if *jsonOut {
			write = rep.writeJSON
		}
		if werr := write(os.Stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/pipeline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (*Report, error) {
	root, err := findRoot()
	if err != nil {
		return nil, err
	}
	progressf("building cutover and cloning the repository")
	h, err := newHarness(ctx, root)
	if h != nil {
		defer h.cleanup()
	}
	if err != nil {
		return nil, err
	}
	progressf("cutover run --branch main (project %s, production on 127.0.0.1:%d)", h.project, h.port)
	m, err := h.runMain(ctx)
	if err != nil {
		return nil, err
	}
	rep := attribute(m)
	rep.Project = h.project
	if m.exec.Status != "succeeded" {
		return rep, fmt.Errorf("execution %s %s: %s (see the table)", m.exec.ID, m.exec.Status, m.exec.Error)
	}
	return rep, nil
}
