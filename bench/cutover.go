package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
)

// benchScope is the environment name that owns the benchmark's routes.
const benchScope = "bench"

// healthPath is what the cutover proxy's health check asks the backend.
const healthPath = "/api/health"

// Ways to run the proxy under test.
const (
	modeProcess   = "process"   // `cutover proxy run`, configured over its admin API, as in production
	modeInProcess = "inprocess" // proxy.New in the benchmark's own process
)

// cutoverProxy is the proxy under test.
type cutoverProxy struct {
	addr   string        // listener, 127.0.0.1:PORT
	mode   string        // for the report
	child  *child        // modeProcess
	client *proxy.Client // modeProcess: its admin API
	engine *proxy.Proxy  // modeInProcess
	home   string        // modeProcess: its CUTOVER_HOME
}

// routes sends every path of one listener to backend through two target
// groups, blue and green (both the same backend, so flipping the weights
// between them changes nothing but the routing), health-checked the way
// cutover.yaml checks the bluemed backend. Blue takes the traffic.
func routes(listen, backend string) proxy.State {
	st := proxy.State{Listeners: []proxy.Listener{{
		Name:  benchListener,
		Addr:  listen,
		Rules: []proxy.Rule{{PathPrefix: "/", Forward: weights(100)}},
	}}}
	for _, color := range []string{"blue", "green"} {
		st.TargetGroups = append(st.TargetGroups, proxy.TargetGroup{
			Name: benchScope + "/" + color,
			Health: proxy.HealthCheck{
				Path:             healthPath,
				Interval:         proxy.Duration(time.Second),
				Timeout:          proxy.Duration(500 * time.Millisecond),
				HealthyThreshold: 1,
			},
			Targets: []proxy.Target{{ID: "backend-" + color, Addr: backend}},
		})
	}
	return st
}

const benchListener = benchScope + "/http"

// weights gives blue its share (0..100) and green the rest.
func weights(blue int) []proxy.WeightedTarget {
	return []proxy.WeightedTarget{{TargetGroup: benchScope + "/blue", Weight: blue}, {TargetGroup: benchScope + "/green", Weight: 100 - blue}}
}

// setWeights moves the traffic between blue and green, as a deployment does.
func (p *cutoverProxy) setWeights(ctx context.Context, blue int) error {
	if p.engine != nil {
		st := p.engine.State()
		st.Listeners[0].Rules[0].Forward = weights(blue)
		return p.engine.Apply(ctx, st)
	}
	return p.client.SetWeights(ctx, proxy.WeightChange{Listener: benchListener, PathPrefix: "/", Forward: weights(blue)})
}

// pid is the process that serves the proxy's requests.
func (p *cutoverProxy) pid() int {
	if p.child != nil {
		return p.child.cmd.Process.Pid
	}
	return os.Getpid()
}

// startCutover starts the proxy in the given mode on a free 127.0.0.1 port in
// front of backend and waits until it routes.
// With pprof, the process serves its profiles on the admin socket (for
// -cpuprofile).
func startCutover(ctx context.Context, mode, moduleDir, dir, backend string, pprof bool) (*cutoverProxy, error) {
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &cutoverProxy{addr: listen}
	switch mode {
	case modeInProcess:
		p.mode = "in-process (proxy.New)"
		p.engine = proxy.New(proxy.Options{})
		err = p.engine.Apply(ctx, routes(listen, backend))
	default:
		p.mode = "separate process (cutover proxy run)"
		err = p.startProcess(ctx, moduleDir, dir, backend, pprof)
	}
	if err == nil {
		err = waitRoutable(ctx, "http://"+listen+healthPath, 15*time.Second)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startProcess builds the cutover binary, runs `cutover proxy run` with its
// own home in dir, and configures it through the admin API.
func (p *cutoverProxy) startProcess(ctx context.Context, moduleDir, dir, backend string, pprof bool) error {
	bin, err := goBuild(ctx, moduleDir, "./cmd/cutover", dir, "cutover")
	if err != nil {
		return err
	}
	home := filepath.Join(dir, "cutover-home")
	p.home = home
	// The proxy's log goes to a file, shown only if it fails to start, so
	// the benchmark's own output stays readable.
	logPath := filepath.Join(dir, "cutover-proxy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "proxy", "run", "--home", home)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if pprof {
		cmd.Env = append(os.Environ(), proxy.PprofEnv+"=1")
	}
	if p.child, err = startChild("cutover proxy", cmd); err != nil {
		return err
	}
	failed := func(err error) error {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%v\ncutover proxy log:\n%s", err, log)
	}
	client := proxy.NewClient(home)
	p.client = client
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := client.Ping(ctx)
		if err == nil {
			break
		}
		if p.child.exited() {
			return failed(fmt.Errorf("cutover proxy run exited at start (%v); try -proxy inprocess", p.child.err))
		}
		if time.Now().After(deadline) {
			return failed(fmt.Errorf("cutover proxy admin API did not answer within 15s: %v", err))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := client.PutScope(ctx, benchScope, routes(p.addr, backend)); err != nil {
		return failed(fmt.Errorf("configuring the cutover proxy: %w", err))
	}
	return nil
}

// waitRoutable polls url until it answers 200, which for the proxy means the
// listener is up and the target has passed its health check.
func waitRoutable(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cutover proxy: GET %s still failing after %s: %v", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the proxy: the process by its PID, or the in-process engine.
func (p *cutoverProxy) stop() {
	if p == nil {
		return
	}
	p.child.stop(10 * time.Second)
	if p.engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.engine.Close(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "bench: closing the in-process proxy: %v\n", err)
		}
	}
}
