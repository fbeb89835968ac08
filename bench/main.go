// Command bench is `make bench`: it measures cutover's load balancer against
// nginx and HAProxy (Debian's packages, tuned as reverse proxies) and against
// no proxy at all, in front of the same bluemed backend, on 127.0.0.1 only.
// In one run, in interleaved rounds (so a noisy neighbour hits every target
// alike), wrk loads each target at every connection count, with keep-alive
// and with a new connection per request; it reports requests/s, p50, p99 and
// p99.9, and the CPU time the proxy process spent per request. Then it flips
// the cutover proxy's weights between two target groups under load and
// counts failed requests (the goal: none).
//
// Usage: go run ./bench [-duration 2s] [-rounds 8] [-conns 32,256] [-proxy process|inprocess] [-json] [-cpuprofile DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration   time.Duration
	warmup     time.Duration
	rounds     int
	conns      []int
	path       string
	proxyMode  string
	backend    string // backendBluemed or backendStatic
	flips      int
	json       bool
	cpuProfile string // directory for CPU profiles of the cutover proxy, or ""
}

func main() {
	os.Exit(runMain(os.Args[1:]))
}

func runMain(args []string) int {
	o := options{conns: []int{32, 256}}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "load duration of each target in each setting and round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load per target before the first round")
	fs.IntVar(&o.rounds, "rounds", 8, "rounds; each figure is the median over them (an even count runs each order forwards and backwards equally)")
	fs.Func("conns", "connection counts, comma-separated (default 32,256)", func(s string) error {
		o.conns = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("%q is not a number", f)
			}
			o.conns = append(o.conns, n)
		}
		return nil
	})
	fs.StringVar(&o.path, "path", "/api/appointments", "request path on the bluemed backend")
	fs.StringVar(&o.proxyMode, "proxy", modeProcess, "how to run cutover's proxy: process (cutover proxy run, as in production) or inprocess")
	fs.StringVar(&o.backend, "backend", backendBluemed, "what the proxies forward to: bluemed (its Go server, as the goal is judged) or static (nginx serving bluemed's answer as a file: the proxies' own latency, from a backend that is not saturated)")
	fs.IntVar(&o.flips, "flips", 8, "weight flips during the last load on the cutover proxy (0: none)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "directory: after the rounds, load the cutover proxy once more in each setting (unmeasured) and write its CPU profile there")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	if err := checkTools(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "bench: about %s of load\n", o.budget().Round(time.Second))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, o)
	if rep == nil {
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
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if failed := rep.failures(); failed != "" {
		fmt.Fprintf(os.Stderr, "bench: %s\n", failed)
		return 1
	}
	return 0
}

// maxBudget bounds the whole run's load time: the benchmark stays well under
// ten minutes.
const maxBudget = 7 * time.Minute

func (o options) check() error {
	switch {
	case o.duration < time.Second || o.duration > time.Minute || o.duration%time.Second != 0:
		return fmt.Errorf("-duration %s: use whole seconds from 1s to 1m (wrk's unit)", o.duration)
	case o.warmup < 0 || o.warmup > time.Minute:
		return fmt.Errorf("-warmup %s: use a value from 0 to 1m", o.warmup)
	case o.rounds < 1 || o.rounds > 20:
		return fmt.Errorf("-rounds %d: use a value from 1 to 20", o.rounds)
	case len(o.conns) == 0:
		return errors.New("-conns: give at least one connection count")
	case o.proxyMode != modeProcess && o.proxyMode != modeInProcess:
		return fmt.Errorf("-proxy %q: use process or inprocess", o.proxyMode)
	case o.backend != backendBluemed && o.backend != backendStatic:
		return fmt.Errorf("-backend %q: use bluemed or static", o.backend)
	case len(o.path) == 0 || o.path[0] != '/':
		return fmt.Errorf("-path %q: use an absolute path such as /api/health", o.path)
	case o.flips < 0 || o.flips > 100:
		return fmt.Errorf("-flips %d: use a value from 0 to 100", o.flips)
	}
	for _, n := range o.conns {
		if n < 1 || n > 1024 {
			return fmt.Errorf("-conns %d: use counts from 1 to 1024", n)
		}
	}
	if b := o.budget(); b > maxBudget {
		return fmt.Errorf("-duration/-rounds/-conns: %s of load, more than %s: use fewer rounds or a shorter duration", b.Round(time.Second), maxBudget)
	}
	return nil
}

// budget is the load time of a run: every target, setting and round, the
// warm-up and the flip run.
func (o options) budget() time.Duration {
	settings := len(o.conns) * len(connModes)
	b := time.Duration(len(targetNames)*settings*o.rounds)*o.duration + time.Duration(len(targetNames))*o.warmup
	if o.flips > 0 {
		b += o.duration
	}
	if o.cpuProfile != "" {
		b += time.Duration(settings) * o.duration
	}
	return b
}

// Connection modes of a setting.
var connModes = []bool{false, true} // new connection per request?

var targetNames = []string{"direct", "cutover", "nginx", "haproxy", "nginx-bare"}

// bench starts the backend and the three proxies in front of it, measures
// them and stops everything it started, by PID, whatever happens. A failing
// weight flip still returns the report of the rounds.
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
	script, err := writeWrkScript(dir)
	if err != nil {
		return nil, err
	}

	progress("building and starting the bluemed backend")
	backend, backendAddr, err := startBackend(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	defer backend.stop(5 * time.Second)
	if o.backend == backendStatic {
		progress("starting nginx as a static backend, serving bluemed's answer to %s", o.path)
		static, staticAddr, err := startStaticBackend(ctx, dir, backendAddr, o.path)
		backend.stop(5 * time.Second)
		if err != nil {
			return nil, err
		}
		defer static.stop(5 * time.Second)
		backend, backendAddr = static, staticAddr
	}
	progress("starting nginx, with the cutover proxy's forwarding headers and without")
	nginx, nginxAddr, err := startNginx(ctx, dir, "nginx", backendAddr, true)
	if err != nil {
		return nil, err
	}
	defer nginx.stop(5 * time.Second)
	bare, bareAddr, err := startNginx(ctx, dir, "nginx-bare", backendAddr, false)
	if err != nil {
		return nil, err
	}
	defer bare.stop(5 * time.Second)
	progress("starting HAProxy")
	haproxy, haproxyAddr, err := startHAProxy(ctx, dir, backendAddr)
	if err != nil {
		return nil, err
	}
	defer haproxy.stop(5 * time.Second)
	progress("starting the cutover proxy (%s)", o.proxyMode)
	cut, err := startCutover(ctx, o.proxyMode, root, dir, backendAddr, o.cpuProfile != "")
	if err != nil {
		return nil, err
	}
	defer cut.stop()

	targets := []target{
		{name: "direct", url: "http://" + backendAddr + o.path, pid: backend.cmd.Process.Pid},
		{name: "cutover", url: "http://" + cut.addr + o.path, pid: cut.pid()},
		{name: "nginx", url: "http://" + nginxAddr + o.path, pid: nginx.cmd.Process.Pid},
		{name: "haproxy", url: "http://" + haproxyAddr + o.path, pid: haproxy.cmd.Process.Pid},
		{name: "nginx-bare", url: "http://" + bareAddr + o.path, pid: bare.cmd.Process.Pid},
	}
	backendPID := backend.cmd.Process.Pid
	load := func(t target, conns int, newConn bool, d time.Duration) (run, error) {
		cpu := treeCPU
		if t.pid == os.Getpid() {
			cpu = processCPU // the in-process proxy: not the children this process started
		}
		before, backendBefore := cpu(t.pid), treeCPU(backendPID)
		r, err := runWrk(ctx, script, t.url, conns, newConn, d)
		if err == nil && r.Requests > 0 {
			r.CPUPerReq = (cpu(t.pid) - before) / time.Duration(r.Requests)
			r.BackendCPUPerReq = (treeCPU(backendPID) - backendBefore) / time.Duration(r.Requests)
		}
		if err == nil && ctx.Err() != nil {
			err = errors.New("interrupted; stopped everything it started")
		}
		return r, err
	}
	if o.warmup > 0 {
		for _, t := range targets {
			progress("warming up %s (%s)", t.name, o.warmup)
			if _, err := load(t, o.conns[0], false, o.warmup); err != nil {
				return nil, err
			}
		}
	}
	rep := &report{ProxyMode: cut.mode, Backend: backendLabels[o.backend], Path: o.path, Duration: o.duration, Rounds: o.rounds}
	for _, conns := range o.conns {
		for _, newConn := range connModes {
			s := &setting{Conns: conns, NewConn: newConn}
			for _, t := range targets {
				s.Targets = append(s.Targets, &summary{Name: t.name})
			}
			rep.Settings = append(rep.Settings, s)
		}
	}
	for r := range o.rounds {
		for i, s := range rep.Settings {
			for _, k := range roundOrder(len(targets), r, i) {
				res, err := load(targets[k], s.Conns, s.NewConn, o.duration)
				if err != nil {
					return nil, err
				}
				progress("round %d/%d %4d conns %-10s %-8s %7.0f req/s  p99 %s  cpu/req %s (backend %s, wrk %s)  errors %d",
					r+1, o.rounds, s.Conns, s.mode(), targets[k].name, res.RPS, ms(res.P99), us(res.CPUPerReq), us(res.BackendCPUPerReq), us(res.LoadCPUPerReq), res.Errors)
				s.Targets[k].Runs = append(s.Targets[k].Runs, res)
			}
		}
	}
	for _, s := range rep.Settings {
		s.summarize()
	}
	if o.cpuProfile != "" {
		err := profileRuns(ctx, o, rep, cut, func(conns int, newConn bool, d time.Duration) error {
			_, err := load(targets[1], conns, newConn, d)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if o.flips > 0 {
		conns := o.conns[len(o.conns)-1]
		progress("flipping the cutover proxy's weights %d times under %d connections", o.flips, conns)
		f, err := flipUnderLoad(ctx, cut, script, targets[1].url, conns, o.flips, o.duration)
		rep.Flip = &f
		if err != nil {
			return rep, fmt.Errorf("weight flips under load: %w", err)
		}
	}
	return rep, nil
}

// roundOrder is the order in which the targets are loaded in round r of
// setting i: rotated so no target always runs first or last, and reversed
// every other round (round 2k+1 runs round 2k's order backwards) so each
// target runs before its neighbour in half the rounds and after it in the
// other half (cutover is compared with the others within a round: see
// paired).
func roundOrder(n, r, i int) []int {
	order := make([]int, n)
	for j := range order {
		order[j] = (j + r + i) % n
		if r%2 == 1 {
			order[j] = (n - 1 - j + r - 1 + i) % n // round r-1's order, reversed
		}
	}
	return order
}

// target is one thing the load is sent to, and the process serving it.
type target struct {
	name, url string
	pid       int
}

// flipUnderLoad loads the cutover proxy with keep-alive connections while
// moving all traffic between its blue and green target groups, evenly spread
// over the run, and reports what the load saw.
func flipUnderLoad(ctx context.Context, cut *cutoverProxy, script, url string, conns, flips int, d time.Duration) (flipResult, error) {
	done := make(chan struct{})
	var flipErr error
	n := 0
	go func() {
		defer close(done)
		every := d / time.Duration(flips+1)
		for i := range flips {
			time.Sleep(every)
			blue := 0
			if i%2 == 1 {
				blue = 100
			}
			if err := cut.setWeights(ctx, blue); err != nil {
				flipErr = err
				return
			}
			n++
		}
	}()
	r, err := runWrk(ctx, script, url, conns, false, d)
	<-done
	if err == nil {
		err = flipErr
	}
	if err == nil {
		err = cut.setWeights(ctx, 100)
	}
	return flipResult{Conns: conns, Flips: n, Requests: r.Requests, Failed: r.Errors}, err
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
