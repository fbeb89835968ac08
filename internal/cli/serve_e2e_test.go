package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// daemonProc is a real `cutover serve` process.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	log  *os.File
}

func startServe(t *testing.T, bin, file, home string, port int) *daemonProc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(home, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "serve", "--addr", addr, "--grace", "1s", "-f", file, "--home", home)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, cmd: cmd, base: "http://" + addr, log: logf}
	t.Cleanup(func() {
		if proc.Alive(cmd.Process.Pid) {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		_ = cmd.Wait()
		logf.Close()
		// serve started the load balancer, which outlives it by design: stop it,
		// so no test leaves a proxy running (harmless when the test stopped it).
		_ = exec.Command(bin, "proxy", "stop", "--grace", "1s", "--home", home).Run()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(d.base + "/v1/health")
		if err == nil {
			resp.Body.Close()
			return d
		}
		if time.Now().After(deadline) || !proc.Alive(cmd.Process.Pid) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("cutover serve did not answer on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// commandRepo is a git repository whose cutover.yaml (a unique project with
// prefix, one local environment on free ports) has the given pipeline
// section of host commands; it returns the file and the project.
func commandRepo(t *testing.T, prefix, pipeline string) (file, project string) {
	project = fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1_000_000_000)
	yaml := fmt.Sprintf(`version: 1
project: %s
services:
  hello: { image: "example.invalid/hello:1", port: 8080 }
environments:
  production: { branch: main, listen: { port: %d, test_port: %d } }
`, project, testenv.FreePort(t), testenv.FreePort(t)) + pipeline
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": yaml})
	return filepath.Join(repo, "cutover.yaml"), project
}

// background starts cmd; exited closes when it ends (*errp then holds
// its error), and the test's end kills it if it still runs.
func background(t *testing.T, cmd *exec.Cmd) (exited <-chan struct{}, errp *error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var err error
	done := make(chan struct{})
	go func() { err = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return done, &err
}

// kill -9 of a real `cutover serve` with one execution running a command
// and two queued behind it, then a restart: the queued ones run, the
// interrupted run's processes (its shell and the child it started) are
// ended, its workspace is removed, and it is resumed from its stage.
func TestServeKilledWithQueuedWorkRunsItAfterARestart(t *testing.T) {
	testenv.RequireDocker(t) // serve connects to Docker for the local environment
	bin := testenv.CutoverBinary(t)
	home, marks := t.TempDir(), t.TempDir()
	// The first attempt of the build leaves a child behind and blocks;
	// every later one (the resumed run, the queued ones) passes at once.
	build := fmt.Sprintf(`if [ ! -e %[1]s/first ]; then touch %[1]s/first; sleep 300 & echo $! > %[1]s/child; echo $$ > %[1]s/leader; wait; fi`, marks)
	file, project := commandRepo(t, "kq", fmt.Sprintf(`pipeline:
  mode: queued
  stages:
    - name: build
      actions: [{ name: compile, kind: command, commands: [%q] }]
    - name: test
      actions: [{ name: unit, kind: command, commands: ["echo tested"] }]
`, build))
	t.Cleanup(func() { _ = exec.Command(bin, "proxy", "stop", "-f", file, "--home", home).Run() })
	port := testenv.FreePort(t)
	ctx := context.Background()

	tokOut, tokErr, err := testenv.CLI{Bin: bin, File: file, Home: home}.Run("token", "create", "ci", "--role", "deployer", "-o", "json")
	var tok struct{ Token string }
	if err != nil || json.Unmarshal([]byte(tokOut), &tok) != nil {
		t.Fatalf("token create: %v %s", err, tokErr)
	}
	d := startServe(t, bin, file, home, port)
	var ids []string
	for i := range 3 {
		code, body := d.api(http.MethodPost, "/v1/executions", tok.Token, `{"branch":"main"}`)
		var out map[string]string
		_ = json.Unmarshal([]byte(body), &out)
		if code != http.StatusAccepted || out["execution"] == "" {
			t.Fatalf("trigger %d: %d %v", i+1, code, body)
		}
		ids = append(ids, out["execution"])
	}
	deadline := time.Now().Add(60 * time.Second)
	for readPID(t, filepath.Join(marks, "child")) == 0 || readPID(t, filepath.Join(marks, "leader")) == 0 {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(home, "serve.log"))
			t.Fatalf("the first build never started\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	leader, child := readPID(t, filepath.Join(marks, "leader")), readPID(t, filepath.Join(marks, "child"))
	t.Cleanup(func() { _ = syscall.Kill(-leader, syscall.SIGKILL) })

	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	running := ""
	for _, id := range ids {
		x, err := st.GetExecution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var stages []pipeline.StageState
		_ = json.Unmarshal(x.Stages, &stages)
		if len(stages) > 0 && stages[0].Name == "build" && stages[0].Status == pipeline.StatusRunning {
			running = id
		}
	}
	if running == "" || !proc.Alive(leader) || !proc.Alive(child) {
		t.Fatalf("before the restart: running execution %q, its shell alive %v, its child alive %v (the test needs all three)", running, proc.Alive(leader), proc.Alive(child))
	}
	workspace := filepath.Join(home, "workspaces", running)
	if _, err := os.Stat(workspace); err != nil {
		t.Fatalf("the killed run's workspace is not there before the restart: %v", err)
	}

	startServe(t, bin, file, home, port)
	deadline = time.Now().Add(90 * time.Second)
	for {
		done := 0
		for _, id := range ids {
			if x, _ := st.GetExecution(ctx, id); id != running && x.Status == store.ExecutionSucceeded {
				done++
			}
		}
		resumed, _ := st.FindExecutions(ctx, store.ExecutionFilter{Project: project, Status: store.ExecutionSucceeded})
		retried := 0
		for _, x := range resumed {
			if strings.Contains(string(x.Variables), `\"retry_of\":\"`+running+`\"`) {
				retried++
			}
		}
		if done == 2 && retried == 1 {
			break
		}
		if time.Now().After(deadline) {
			xs, _ := st.ListExecutions(ctx, project, 10)
			b, _ := os.ReadFile(filepath.Join(home, "serve.log"))
			t.Fatalf("after the restart: %d of the 2 queued succeeded, %d resumption succeeded; executions %+v\n%s", done, retried, xs, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "serve.log")); testing.Verbose() {
		t.Logf("serve.log:\n%s", b)
	}
	x, _ := st.GetExecution(ctx, running)
	if x.Status != store.ExecutionFailed || !strings.Contains(x.Error, "interrupted") {
		t.Fatalf("the interrupted execution is %s (%q), want failed as interrupted", x.Status, x.Error)
	}
	if proc.Alive(leader) || proc.Alive(child) {
		t.Fatalf("after the restart the killed run's shell (pid %d) alive %v, its child (pid %d) alive %v", leader, proc.Alive(leader), child, proc.Alive(child))
	}
	if _, err := os.Stat(workspace); !os.IsNotExist(err) {
		t.Fatalf("the killed run's workspace %s is still there: %v", workspace, err)
	}
}

// A foreground `cutover run` waiting at its approval keeps its execution
// when `cutover serve` starts: serve does not take it over (which used to
// give one commit two approval gates), and the approval ends the run.
func TestServeDoesNotTakeOverAForegroundRun(t *testing.T) {
	testenv.RequireDocker(t)
	bin := testenv.CutoverBinary(t)
	home := t.TempDir()
	file, project := commandRepo(t, "fg", `pipeline:
  stages:
    - name: build
      actions: [{ name: compile, kind: command, commands: ["echo built"] }]
    - name: production
      branches: [main]
      actions: [{ name: approve, kind: approval, environment: production, timeout: 5m }]
`)
	t.Cleanup(func() { _ = exec.Command(bin, "proxy", "stop", "-f", file, "--home", home).Run() })
	ctx := context.Background()

	run := exec.Command(bin, "run", "--kind", "push", "--branch", "main", "-o", "json", "-f", file, "--home", home)
	var out strings.Builder
	run.Stdout = &out
	exited, runErr := background(t, run)
	var st *store.Store
	var waiting store.Execution
	deadline := time.Now().Add(60 * time.Second)
	for waiting.ID == "" {
		if st == nil {
			st, _ = store.Open(ctx, filepath.Join(home, "cutover.db"))
		}
		if st != nil {
			if xs, _ := st.FindExecutions(ctx, store.ExecutionFilter{Project: project, Status: store.ExecutionWaiting}); len(xs) == 1 {
				waiting = xs[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the foreground run never waited for its approval")
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer st.Close()
	if waiting.OwnerPID != run.Process.Pid {
		t.Fatalf("the waiting execution is owned by pid %d, want the foreground run's %d", waiting.OwnerPID, run.Process.Pid)
	}

	startServe(t, bin, file, home, testenv.FreePort(t))
	time.Sleep(2 * time.Second) // start-up recovery and a queue scan
	x, _ := st.GetExecution(ctx, waiting.ID)
	all, _ := st.ListExecutions(ctx, project, 10)
	if x.Status != store.ExecutionWaiting || x.OwnerPID != run.Process.Pid || x.Generation != waiting.Generation || len(all) != 1 {
		b, _ := os.ReadFile(filepath.Join(home, "serve.log"))
		t.Fatalf("serve touched the foreground run's execution: %s owned by %d, generation %d→%d, %d executions\n%s",
			x.Status, x.OwnerPID, waiting.Generation, x.Generation, len(all), b)
	}
	if o, err := exec.Command(bin, "approve", waiting.ID, "--comment", "ok", "-f", file, "--home", home).CombinedOutput(); err != nil {
		t.Fatalf("cutover approve: %v\n%s", err, o)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the foreground run did not end after its approval")
	}
	if *runErr != nil || !strings.Contains(out.String(), `"status": "succeeded"`) && !strings.Contains(out.String(), `"status":"succeeded"`) {
		t.Fatalf("cutover run after its approval: %v\n%s", *runErr, out.String())
	}
}
