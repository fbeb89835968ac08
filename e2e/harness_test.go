package e2e

// The harness: one cutover binary and two releases of the example app (A and
// B, told apart by their X-Bluemed-Version header) are built once for the
// package; each test gets its own project, home, ports and cutover.yaml.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

const envName = "production"

var imagesProject = "e2eimages" + randomHex(4)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestMain(m *testing.M) {
	code := testenv.RunTests(m)
	testenv.RemoveProject(imagesProject)
	os.Exit(code)
}

// release is one build of the example: image IDs and the version its
// responses carry in X-Bluemed-Version.
type release struct{ Version, Backend, Frontend string }

var (
	imagesOnce sync.Once
	releaseA   release
	releaseB   release
	imagesErr  error
)

// releases builds releases A and B once for the whole package from a copy of
// the example in its own git repository: static binaries with the version
// linked in, in FROM scratch images built by the engine from a temporary
// context.
func releases(t *testing.T) (release, release) {
	t.Helper()
	imagesOnce.Do(func() {
		start := time.Now()
		repo := testenv.ExampleRepo(t, "main", nil)
		releaseA, imagesErr = buildRelease(repo, "A-"+randomHex(3))
		if imagesErr == nil {
			releaseB, imagesErr = buildRelease(repo, "B-"+randomHex(3))
		}
		t.Logf("built releases A and B in %s", time.Since(start).Round(time.Millisecond))
	})
	if imagesErr != nil {
		t.Fatalf("building the example's images: %v", imagesErr)
	}
	return releaseA, releaseB
}

func buildRelease(repo, version string) (release, error) {
	ctx := context.Background()
	rt, err := docker.Connect(ctx)
	if err != nil {
		return release{}, err
	}
	defer rt.Close()
	r := release{Version: version}
	for _, svc := range []string{"backend", "frontend"} {
		dir, err := os.MkdirTemp("", "cutover-e2e-"+svc+"-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		src := filepath.Join(repo, svc)
		gob := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", filepath.Join(dir, "bin", svc), ".")
		gob.Dir = src
		gob.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := gob.CombinedOutput(); err != nil {
			return r, fmt.Errorf("go build %s: %v\n%s", svc, err, out)
		}
		dockerfile, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
		if err != nil {
			return r, err
		}
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), dockerfile, 0o644); err != nil {
			return r, err
		}
		img, err := rt.Build(ctx, docker.BuildRequest{
			ContextDir: dir,
			Tags:       []string{fmt.Sprintf("cutover-e2e/%s:%s", svc, strings.ToLower(version))},
			Labels:     map[string]string{"dev.cutover.project": imagesProject},
		})
		if err != nil {
			return r, err
		}
		if svc == "backend" {
			r.Backend = img.ID
		} else {
			r.Frontend = img.ID
		}
	}
	return r, nil
}

// env is one test's project: a copy of the example in its own git repository
// with the test's cutover.yaml, a home and listener ports.
type env struct {
	t        *testing.T
	home     string
	file     string
	project  string
	port     int
	testPort int
}

func newEnv(t *testing.T) *env {
	testenv.RequireDocker(t)
	releases(t)
	repo := testenv.ExampleRepo(t, "main", nil)
	e := &env{t: t, home: filepath.Join(t.TempDir(), "home"), file: filepath.Join(repo, "cutover.yaml"),
		project: "e2e" + randomHex(4), port: testenv.FreePort(t), testPort: testenv.FreePort(t)}
	t.Cleanup(e.cleanup)
	return e
}

// cleanup leaves nothing behind, also after a failure: the environment's
// containers, the proxy process, and (with t.TempDir) the files.
func (e *env) cleanup() {
	_, _, _, _ = e.run("down", envName)
	_, _, _, _ = e.run("proxy", "stop")
	if n := testenv.RemoveProject(e.project); n > 0 {
		e.t.Logf("cleanup removed %d containers that `cutover down` left", n)
	}
}

// spec is what a test varies in cutover.yaml.
type spec struct {
	Release      release
	Fault        string // BLUEMED_FAULT of the backend
	BackendCount int    // default 2
	Strategy     string // YAML flow mapping for environments.production.strategy
	Hooks        string // YAML flow mapping for environments.production.hooks
}

// write renders the example's services with short timings and the spec.
func (e *env) write(s spec) {
	e.t.Helper()
	if s.BackendCount == 0 {
		s.BackendCount = 2
	}
	envVars := fmt.Sprintf(`CORS_ORIGIN: "http://127.0.0.1:%d"`, e.port)
	if s.Fault != "" {
		envVars += fmt.Sprintf(`, BLUEMED_FAULT: %q`, s.Fault)
	}
	hooks := ""
	if s.Hooks != "" {
		hooks = "\n    hooks: " + s.Hooks
	}
	y := fmt.Sprintf(`version: 1
project: %s
services:
  backend:
    image: %s
    port: 3001
    health: { path: /api/health, interval: 500ms, timeout: 250ms, healthy_threshold: 2, unhealthy_threshold: 2 }
    route: { path_prefix: /api }
    env: { %s }
    desired_count: %d
    deregistration_delay: 1s
    stop_timeout: 3s
  frontend:
    image: %s
    port: 80
    health: { path: /, interval: 500ms, timeout: 250ms }
    route: { path_prefix: / }
    desired_count: 1
    deregistration_delay: 1s
    stop_timeout: 3s
environments:
  %s:
    listen: { port: %d, test_port: %d }
    strategy: %s%s
`, e.project, s.Release.Backend, envVars, s.BackendCount, s.Release.Frontend, envName, e.port, e.testPort, s.Strategy, hooks)
	if err := os.WriteFile(e.file, []byte(y), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) command(args ...string) *exec.Cmd {
	return testenv.CLI{Bin: testenv.CutoverBinary(e.t), File: e.file, Home: e.home}.Command(args...)
}

// run runs a cutover command to its end.
func (e *env) run(args ...string) (stdout, stderr string, took time.Duration, err error) {
	cmd := e.command(args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	return out.String(), errb.String(), time.Since(start), err
}

func (e *env) mustRun(args ...string) time.Duration {
	e.t.Helper()
	out, errOut, took, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("cutover %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return took
}

// deploy runs `cutover deploy production` and returns how long it took;
// wantOK says whether the deployment must succeed (exit 0) or not (exit 1).
func (e *env) deploy(wantOK bool, extra ...string) (stderr string, took time.Duration) {
	e.t.Helper()
	out, errOut, took, err := e.run(append([]string{"deploy", envName, "--timeout", "60s"}, extra...)...)
	if wantOK != (err == nil) {
		e.t.Fatalf("cutover deploy: want success %v, got %v\nstdout: %s\nstderr: %s", wantOK, err, out, errOut)
	}
	return errOut, took
}

// proc is a cutover command running in the background whose stderr lines
// the test watches.
type proc struct {
	cmd   *exec.Cmd
	start time.Time
	done  chan error
	mu    sync.Mutex
	buf   []byte
	lines []string
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		p.lines = append(p.lines, string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
}

func (e *env) start(args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: e.command(args...), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	e.t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done; p.done <- nil })
	return p
}

// phaseLine matches a progress line: "15:04:05 Shifting   production traffic: ...".
var phaseLine = regexp.MustCompile(`^\d\d:\d\d:\d\d (\w+)\s`)

// waitPhase returns the first stderr line of the phase that contains
// marker, or fails the test when the process ends or the timeout passes first.
func (p *proc) waitPhase(t *testing.T, phase, marker string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for seen := 0; ; {
		p.mu.Lock()
		lines := p.lines[seen:]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if m := phaseLine.FindStringSubmatch(l); m != nil && m[1] == phase && strings.Contains(l, marker) {
				return l
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("cutover ended (%v) before phase %s:\n%s", err, phase, p.output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s phase within %s:\n%s", phase, timeout, p.output())
		}
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n") + string(p.buf)
}

// wait waits for the process to end (it is reaped) and returns its error.
func (p *proc) wait() error {
	err := <-p.done
	p.done <- err
	return err
}

// history is `cutover history production -o json`.
type history struct {
	Deployments []store.Deployment `json:"deployments"`
	Revisions   []store.Revision   `json:"revisions"`
}

func (e *env) history() history {
	e.t.Helper()
	out, errOut, _, err := e.run("history", envName, "-o", "json")
	var h history
	if err == nil {
		err = json.Unmarshal([]byte(out), &h)
	}
	if err != nil {
		e.t.Fatalf("cutover history: %v\n%s%s", err, out, errOut)
	}
	return h
}

// last returns the newest deployment and checks that none is in progress.
func (e *env) last() store.Deployment {
	e.t.Helper()
	h := e.history()
	if len(h.Deployments) == 0 {
		e.t.Fatal("history lists no deployment")
	}
	for _, d := range h.Deployments {
		if d.Status == "in_progress" {
			e.t.Errorf("deployment %s is still in progress in the store (phase %s)", d.ID, d.Phase)
		}
	}
	return h.Deployments[0]
}

// containers counts the project's containers (any state) by color.
func (e *env) containers() map[string]int {
	e.t.Helper()
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=dev.cutover.project="+e.project,
		"--format", `{{.Label "dev.cutover.color"}}`).Output()
	if err != nil {
		e.t.Fatalf("docker ps: %v", err)
	}
	n := map[string]int{}
	for _, c := range strings.Fields(string(out)) {
		n[c]++
	}
	return n
}

// wantOneSet checks that exactly one set of want containers runs.
func (e *env) wantOneSet(want int) {
	e.t.Helper()
	if n := e.containers(); len(n) != 1 || total(n) != want {
		e.t.Errorf("want one set of %d containers, found %v", want, n)
	}
}

func total(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// sub makes e report to the subtest t until the returned func runs.
func (e *env) sub(t *testing.T) func() {
	parent := e.t
	e.t = t
	return func() { e.t = parent }
}

func (e *env) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path) }

// versions sends n sequential requests to the backend and the frontend
// through the production listener and counts the versions that answer.
func (e *env) versions(n int) map[string]int {
	e.t.Helper()
	got := map[string]int{}
	for i := range n {
		path := "/api/version"
		if i%2 == 1 {
			path = "/"
		}
		resp, err := httpClient.Get(e.url(path))
		if err != nil {
			e.t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			e.t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		got[resp.Header.Get("X-Bluemed-Version")]++
	}
	return got
}

// wantServing checks that every answer comes from release r.
func (e *env) wantServing(r release) {
	e.t.Helper()
	if v := e.versions(20); len(v) != 1 || v[r.Version] != 20 {
		e.t.Errorf("want all traffic on %s, versions answering: %v", r.Version, v)
	}
}

// load is a bounded load run in the background against the production listener.
type load struct {
	cancel context.CancelFunc
	done   chan loadgen.Result
}

func (e *env) startLoad(o loadgen.Options) *load {
	if o.URL == "" {
		o.URL = e.url("/api/version")
	}
	o.Concurrency = max(o.Concurrency, 8)
	if o.Rate == 0 {
		o.Rate = 200
	}
	if o.Duration == 0 {
		o.Duration = 3 * time.Minute
	}
	o.CountHeader = "X-Bluemed-Version"
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, done: make(chan loadgen.Result, 1)}
	t := e.t
	go func() {
		res, err := loadgen.Run(ctx, o)
		if err != nil {
			t.Error(err)
		}
		l.done <- res
	}()
	t.Cleanup(cancel)
	time.Sleep(300 * time.Millisecond) // traffic flows before the change starts
	return l
}

// stop ends the run after a short tail, so requests right after the change count too.
func (l *load) stop() loadgen.Result {
	time.Sleep(300 * time.Millisecond)
	l.cancel()
	return <-l.done
}

func wantNoFailures(t *testing.T, what string, r loadgen.Result) {
	t.Helper()
	t.Logf("%s: %s, versions %v", what, r, r.Header)
	if r.Failed != 0 {
		t.Errorf("%s: %d of %d requests failed: %v", what, r.Failed, r.Requests, r.Errors)
	}
	if r.Requests < 100 {
		t.Errorf("%s: only %d requests were sent; the load did not run", what, r.Requests)
	}
}
