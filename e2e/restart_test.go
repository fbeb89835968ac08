package e2e

import (
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A production task that crashes after its deployment is over comes back:
// the engine restarts the serving set (restart policy unless-stopped, set
// when the deployment ends) on the same host port, so the load balancer's
// target is right again without any cutover command running. Even at
// desired count 1, production answers again within seconds.
func TestCrashedProductionTaskIsRestarted(t *testing.T) {
	e := newEnv(t)
	a, _ := releases(t)
	e.write(spec{Release: a, BackendCount: 1, Strategy: "{ type: blue_green, termination_wait: 1s }"})
	e.deploy(true)
	e.wantServing(a)

	id := strings.TrimSpace(e.docker("ps", "-q", "--no-trunc", "--filter", "label=dev.cutover.project="+e.project, "--filter", "label=dev.cutover.service=backend"))
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("want one backend task, found %q", id)
	}
	if policy := e.docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", id); strings.TrimSpace(policy) != "unless-stopped" {
		t.Fatalf("the serving backend task has restart policy %q, want unless-stopped", policy)
	}
	// Crash it from the host (`docker kill` would count as a deliberate stop).
	pid, err := strconv.Atoi(strings.TrimSpace(e.docker("inspect", "-f", "{{.State.Pid}}", id)))
	if err != nil || pid <= 0 {
		t.Fatalf("backend task pid: %v", err)
	}
	crashed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var back time.Duration
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v := e.versionOnce(); v == a.Version && time.Since(crashed) > 100*time.Millisecond {
			back = time.Since(crashed)
			break
		}
	}
	if back == 0 {
		t.Fatalf("production did not answer again within 30s of the backend crash")
	}
	restarts := strings.TrimSpace(e.docker("inspect", "-f", "{{.RestartCount}}", id))
	t.Logf("backend crashed; production answered again after %s (restart count %s)", back.Round(time.Millisecond), restarts)
	if restarts == "0" {
		t.Errorf("the backend task was not restarted (restart count 0)")
	}
	// The health checks that failed while the task was down can still mark
	// it unhealthy just after its first answer (unhealthy_threshold 2 at
	// 500ms), and passing ones mark it healthy again a second later: wait
	// for that to settle, then expect every request served.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if e.steady(a, 10) {
			break
		}
	}
	e.wantServing(a)
	e.wantOneSet(2)

	// `cutover down` still stops it for good.
	e.mustRun("down", envName)
	time.Sleep(time.Second)
	if n := e.containers(); total(n) != 0 {
		t.Errorf("after down: %v", n)
	}
}

// docker runs the docker CLI and returns its output.
func (e *env) docker(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		e.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// steady says whether n requests in a row are served by r, without failing the test.
func (e *env) steady(r release, n int) bool {
	for range n {
		resp, err := httpClient.Get(e.url("/api/version"))
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Bluemed-Version") != r.Version {
			return false
		}
	}
	return true
}
