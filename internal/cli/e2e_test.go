package cli_test

// End to end: the real cutover binary, the real Docker engine, the real proxy
// process and the example monorepo (examples/bluemed). Traffic goes only to
// 127.0.0.1 and every load run is bounded.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
	"github.com/cutoverdev/cutover/internal/testenv"
)

type e2e struct {
	t       *testing.T
	bin     string
	home    string
	file    string
	project string
	port    int
}

func TestMain(m *testing.M) { os.Exit(testenv.RunTests(m)) }

// newE2E copies the example into a fresh git repository (a user's
// repository) with a unique project name and free ports in its cutover.yaml.
func newE2E(t *testing.T) *e2e {
	testenv.RequireDocker(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &e2e{t: t, bin: testenv.CutoverBinary(t), home: t.TempDir(), project: "e2e" + hex.EncodeToString(b[:])}
	e.port = testenv.FreePort(t)
	repo := testenv.ExampleRepo(t, "main", func(dir string) {
		testenv.Replace(t, filepath.Join(dir, "cutover.yaml"),
			"project: bluemed", "project: "+e.project,
			"port: 8080, test_port: 8081", fmt.Sprintf("port: %d, test_port: %d", e.port, testenv.FreePort(t)),
			"port: 8180", fmt.Sprintf("port: %d", testenv.FreePort(t)))
	})
	e.file = filepath.Join(repo, "cutover.yaml")
	t.Cleanup(e.cleanup)
	return e
}

func (e *e2e) cleanup() {
	e.run("down", "production")
	e.run("proxy", "stop")
	if n := testenv.RemoveProject(e.project); n > 0 {
		e.t.Errorf("cleanup found %d containers left behind", n)
	}
}

func (e *e2e) command(args ...string) *exec.Cmd {
	return testenv.CLI{Bin: e.bin, File: e.file, Home: e.home}.Command(args...)
}

func (e *e2e) run(args ...string) (string, string, error) {
	return testenv.CLI{Bin: e.bin, File: e.file, Home: e.home}.Run(args...)
}

func (e *e2e) mustRun(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("cutover %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (e *e2e) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path) }

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *e2e) labelledContainers() int {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=dev.cutover.project="+e.project).Output()
	if err != nil {
		e.t.Fatalf("docker ps: %v", err)
	}
	return len(strings.Fields(string(out)))
}

func TestUpServesRedeploysWithoutFailuresAndDownCleansUp(t *testing.T) {
	e := newE2E(t)
	var up struct{ Revision, URL string }
	lines := strings.Split(strings.TrimSpace(e.mustRun("up", "production", "--output", "json")), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &up); err != nil {
		t.Fatal(err)
	}
	if up.URL != e.url("/") || up.Revision == "" || e.labelledContainers() != 3 {
		t.Fatalf("unexpected up result %+v, %d containers", up, e.labelledContainers())
	}
	code, hdr, body := get(t, e.url("/api/health"))
	if code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("backend through the proxy: %d %s", code, body)
	}
	firstVersion := hdr.Get("X-Bluemed-Version")
	if code, _, body := get(t, e.url("/some/spa/route")); code != 200 || !strings.Contains(strings.ToLower(body), "<html") {
		t.Fatalf("frontend SPA fallback through the proxy: %d %.80s", code, body)
	}

	// A second up under steady load: the new set comes up beside the old
	// one, traffic moves once it is healthy, and no request fails.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: e.url("/api/health"), Concurrency: 4, Rate: 200, Duration: 3 * time.Minute, CountHeader: "X-Bluemed-Version"})
		if err != nil {
			t.Error(err)
		}
		loadDone <- res
	}()
	time.Sleep(500 * time.Millisecond)
	e.mustRun("up", "production")
	time.Sleep(500 * time.Millisecond)
	cancel()
	res := <-loadDone
	t.Logf("redeploy under load: %v, versions %v", res, res.Header)
	if res.Failed != 0 || res.Requests < 100 {
		t.Fatalf("redeploy under load: %d of %d requests failed: %v", res.Failed, res.Requests, res.Errors)
	}
	_, hdr, _ = get(t, e.url("/api/health"))
	if v := hdr.Get("X-Bluemed-Version"); v == "" || v == firstVersion {
		t.Fatalf("after redeploy the version should change: before %q after %q", firstVersion, v)
	}
	if n := e.labelledContainers(); n != 3 {
		t.Fatalf("after redeploy want 3 containers (old set removed), found %d", n)
	}

	e.mustRun("down", "production")
	if n := e.labelledContainers(); n != 0 {
		t.Fatalf("down left %d containers", n)
	}
}

// The proxy is the data plane: killing the command that controls it, at
// the worst moment, must not fail a request; the next up reconciles.
func TestKilledControllerDropsNoRequestsAndKilledProxyComesBack(t *testing.T) {
	e := newE2E(t)
	e.mustRun("up", "production")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan loadgen.Result, 1)
	go func() {
		res, _ := loadgen.Run(ctx, loadgen.Options{URL: e.url("/api/health"), Concurrency: 4, Rate: 200, Duration: 3 * time.Minute})
		loadDone <- res
	}()
	// Start a redeploy and SIGKILL it while its new tasks are being health-checked.
	cmd := e.command("up", "production")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "waiting for the new set to be healthy") {
			_ = cmd.Process.Kill()
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("up never reached the health wait")
	}
	time.Sleep(time.Second)
	// The next command reconciles: it finishes the release.
	e.mustRun("up", "production")
	time.Sleep(300 * time.Millisecond)
	cancel()
	res := <-loadDone
	t.Logf("controller killed under load: %v", res)
	if res.Failed != 0 {
		t.Fatalf("%d of %d requests failed: %v", res.Failed, res.Requests, res.Errors)
	}
	if n := e.labelledContainers(); n != 3 {
		t.Fatalf("after reconcile want 3 containers, found %d (orphans?)", n)
	}

	// SIGKILL the proxy itself, as a crash would end it: its supervisor
	// (`proxy keep`) starts it again and the persisted routes serve at once,
	// with no cutover command involved.
	pidText, err := os.ReadFile(filepath.Join(e.home, "proxy", "proxy.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(pidText)), &pid)
	proc, err := os.FindProcess(pid)
	if err != nil || pid <= 1 {
		t.Fatalf("proxy pid %q: %v", pidText, err)
	}
	_ = proc.Kill()
	killedAt := time.Now()
	for i := 0; ; i++ {
		out, _, err := e.run("proxy", "status", "--output", "json")
		var st struct{ Proxy struct{ PID int } }
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Proxy.PID != 0 && st.Proxy.PID != pid {
			t.Logf("proxy pid %d SIGKILLed; pid %d answers %s later", pid, st.Proxy.PID, time.Since(killedAt).Round(time.Millisecond))
			break
		}
		if i == 100 {
			t.Fatal("no new proxy answers 10s after the old one was SIGKILLed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _, body := get(t, e.url("/api/health")); code != 200 {
		t.Fatalf("restarted proxy: %d %s", code, body)
	}
	e.mustRun("proxy", "start") // finds it running
}

func TestUpWithEngineDownIsOneClearLine(t *testing.T) {
	bin := testenv.CutoverBinary(t)
	cmd := exec.Command(bin, "up", "production", "-f", filepath.Join(testenv.ExampleRepo(t, "main", nil), "cutover.yaml"), "--home", t.TempDir())
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent/docker.sock")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("want failure")
	}
	msg := strings.TrimSpace(string(out))
	if !strings.Contains(msg, "Docker engine") || strings.Count(msg, "\n") > 1 || strings.Contains(msg, "goroutine") {
		t.Fatalf("want one or two lines naming the Docker engine, got:\n%s", msg)
	}
}

// Bad input changes nothing: a taken port and a failing build are one
// clear message, exit 1, and no container left.
func TestUpWithPortInUseOrFailingBuildChangesNothing(t *testing.T) {
	e := newE2E(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.port))
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, err := e.run("up", "production")
	l.Close()
	want := fmt.Sprintf("environments.production.listen.port: 127.0.0.1:%d is in use by another process", e.port)
	if err == nil || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
		t.Fatalf("want one line containing %q, got %v:\n%s", want, err, errOut)
	}
	if n := e.labelledContainers(); n != 0 {
		t.Fatalf("a refused up left %d containers", n)
	}
	e.noProxy("a refused up") // it started one, and it routes nothing

	// A build command that fails: the message names the service and the command.
	y, _ := os.ReadFile(e.file)
	bad := strings.Replace(string(y), `-o bin/backend .`, `-o bin/backend ./does-not-exist`, 1)
	if err := os.WriteFile(e.file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = e.run("up", "production")
	if err == nil || !strings.Contains(errOut, "service backend: build command") || !strings.Contains(errOut, "services.backend.build.commands") {
		t.Fatalf("want a build failure naming the service and field, got %v:\n%s", err, errOut)
	}
	if n := e.labelledContainers(); n != 0 {
		t.Fatalf("a failed build left %d containers", n)
	}
	e.noProxy("a failed build")
}

// noProxy fails the test when a load balancer answers for the home: after
// what, a command that failed before deploying anything (found by a
// newcomer's audit: it left the one it started running).
func (e *e2e) noProxy(what string) {
	e.t.Helper()
	if out, _, err := e.run("proxy", "status"); err == nil {
		e.t.Fatalf("%s left a load balancer running:\n%s", what, out)
	}
}

// Attack (found by a newcomer's audit): two CUTOVER_HOMEs on one engine
// with the same project (a developer's and CI's, a test's and a user's)
// each removed the other's tasks: the second home's `up production`
// destroyed the first one's serving containers (they matched its labels),
// and the first home's app answered 503 while its status said up. Now a
// container carries the store that started it (dev.cutover.owner), and a
// home lists, replaces and removes only its own.
func TestAttackSecondHomeLeavesTheFirstHomesTasksAlone(t *testing.T) {
	e := newE2E(t)
	e.mustRun("up", "production")
	if code, _, body := get(t, e.url("/api/health")); code != 200 {
		t.Fatalf("the first home's production: %d %s", code, body)
	}
	// The same project from another home, on ports of its own.
	other := testenv.CLI{Bin: e.bin, File: filepath.Join(filepath.Dir(e.file), "cutover-other.yaml"), Home: t.TempDir()}
	yaml, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(yaml), fmt.Sprintf("port: %d,", e.port), fmt.Sprintf("port: %d,", testenv.FreePort(t)), 1)
	text = regexp.MustCompile(`test_port: \d+`).ReplaceAllString(text, fmt.Sprintf("test_port: %d", testenv.FreePort(t)))
	if err := os.WriteFile(other.File, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Run("down", "production"); other.Run("proxy", "stop") })
	for _, args := range [][]string{{"up", "production"}, {"up", "production"}, {"down", "production"}} {
		if out, errOut, err := other.Run(args...); err != nil {
			t.Fatalf("the other home's cutover %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		if code, _, body := get(t, e.url("/api/health")); code != 200 {
			t.Fatalf("after the other home's %s, the first home's production answers %d %s", strings.Join(args, " "), code, body)
		}
		if n := e.labelledContainers(); n < 3 {
			t.Fatalf("after the other home's %s, %d containers of the project are left, want the first home's 3 at least", strings.Join(args, " "), n)
		}
	}
	if n := e.labelledContainers(); n != 3 {
		t.Fatalf("after the other home's down: %d containers of the project, want the first home's 3", n)
	}
	if out := e.mustRun("status", "production"); !strings.Contains(out, "up") {
		t.Fatalf("the first home's status: %s", out)
	}
	// The other home's logs are of its own containers (none now), not of
	// the first home's.
	if out, errOut, err := other.Run("logs", "production", "backend", "--tail", "5"); err == nil || !strings.Contains(errOut, "no containers of service backend in environment production") {
		t.Fatalf("the other home's logs after its down: %v\n%s%s", err, out, errOut)
	}
	if out := e.mustRun("logs", "production", "backend", "--tail", "5"); strings.TrimSpace(out) == "" {
		t.Fatal("the first home's logs are empty")
	}
}

// A daemon whose address is taken fails with the address named and leaves
// no load balancer running (it had started one; found by a newcomer's
// audit).
func TestServeOnATakenAddressLeavesNoProxy(t *testing.T) {
	e := newE2E(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, errOut, err := e.run("serve", "--addr", l.Addr().String())
	if err == nil || !strings.Contains(errOut, "cannot listen on "+l.Addr().String()) {
		t.Fatalf("serve on a taken address: %v\n%s", err, errOut)
	}
	e.noProxy("serve on a taken address")
}
