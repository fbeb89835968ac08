// Command bench is `make bench`: it measures the overhead of cutover's load
// balancer on one machine by sending the same bounded load, on 127.0.0.1
// only, to the bluemed backend directly, through cutover's proxy, and through
// nginx configured as a tuned reverse proxy, in interleaved rounds.
//
// Usage: go run ./bench [-duration 5s] [-rounds 3] [-concurrency 32] [-proxy process|inprocess] [-json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

type options struct {
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	concurrency int
	path        string
	proxyMode   string
	json        bool
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "load duration of each target in each round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load per target before the first round")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each target's result is the median over them")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent connections of the load generator")
	fs.StringVar(&o.path, "path", "/api/appointments", "request path on the bluemed backend")
	fs.StringVar(&o.proxyMode, "proxy", modeProcess, "how to run cutover's proxy: process (cutover proxy run, as in production) or inprocess")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if o.json {
		if err := rep.writeJSON(os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	} else {
		rep.writeText(os.Stdout)
	}
	for _, s := range rep.Targets {
		if s.Failed > 0 {
			fmt.Fprintf(os.Stderr, "bench: %s had %d failed requests: the figures above are not comparable\n", s.Name, s.Failed)
			return 1
		}
	}
	return 0
}

func (o options) check() error {
	switch {
	case o.duration < 100*time.Millisecond || o.duration > time.Minute:
		return fmt.Errorf("-duration %s: use a value from 100ms to 1m", o.duration)
	case o.warmup < 0 || o.warmup > time.Minute:
		return fmt.Errorf("-warmup %s: use a value from 0 to 1m", o.warmup)
	case o.rounds < 1 || o.rounds > 20:
		return fmt.Errorf("-rounds %d: use a value from 1 to 20", o.rounds)
	case o.concurrency < 1 || o.concurrency > 1024:
		return fmt.Errorf("-concurrency %d: use a value from 1 to 1024", o.concurrency)
	case o.proxyMode != modeProcess && o.proxyMode != modeInProcess:
		return fmt.Errorf("-proxy %q: use process or inprocess", o.proxyMode)
	case len(o.path) == 0 || o.path[0] != '/':
		return fmt.Errorf("-path %q: use an absolute path such as /api/health", o.path)
	}
	return nil
}

// bench starts the three targets, measures them and stops everything it
// started, by PID, whatever happens.
func bench(ctx context.Context, o options) (*report, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cutover-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	progress("building and starting the bluemed backend")
	backend, backendAddr, err := startBackend(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	defer backend.stop(5 * time.Second)
	progress("starting nginx")
	nginx, nginxAddr, err := startNginx(ctx, dir, backendAddr)
	if err != nil {
		return nil, err
	}
	defer nginx.stop(5 * time.Second)
	progress("starting the cutover proxy (%s)", o.proxyMode)
	cut, err := startCutover(ctx, o.proxyMode, root, dir, backendAddr)
	if err != nil {
		return nil, err
	}
	defer cut.stop()

	targets := []*summary{
		{Name: "direct", URL: "http://" + backendAddr + o.path},
		{Name: "cutover", URL: "http://" + cut.addr + o.path},
		{Name: "nginx", URL: "http://" + nginxAddr + o.path},
	}
	load := func(t *summary, d time.Duration) (loadgen.Result, error) {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: t.URL, Concurrency: o.concurrency, Duration: d})
		if err == nil && ctx.Err() != nil {
			err = errors.New("interrupted; stopped everything it started")
		}
		return res, err
	}
	if o.warmup > 0 {
		for _, t := range targets {
			progress("warming up %s (%s)", t.Name, o.warmup)
			if _, err := load(t, o.warmup); err != nil {
				return nil, err
			}
		}
	}
	for r := range o.rounds {
		// Rotate the order so no target always runs first or last.
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			res, err := load(t, o.duration)
			if err != nil {
				return nil, err
			}
			progress("round %d/%d %-8s %6.0f req/s  p50 %s  p99 %s  failed %d",
				r+1, o.rounds, t.Name, res.RPS, ms(res.P50), ms(res.P99), res.Failed)
			t.Rounds = append(t.Rounds, res)
		}
	}

	rep := &report{ProxyMode: cut.mode, Path: o.path, Duration: o.duration, RoundsCount: o.rounds,
		Concurrency: o.concurrency, Targets: targets}
	for _, t := range targets {
		t.summarize()
	}
	rep.compare(targets[0], targets[1], targets[2])
	return rep, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
