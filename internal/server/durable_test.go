package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
	"github.com/cutoverdev/cutover/internal/webhook"
)

// A pipeline of host commands only (no Docker): every push builds,
// develop goes on to staging, main waits at an approval for production.
const commandProject = `version: 1
project: %s
services:
  hello: { image: "example.invalid/hello:1", port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18091, test_port: 18092 } }
  production: { branch: main, listen: { port: 18093, test_port: 18094 } }
pipeline:
  stages:
    - name: build
      actions: [{ name: compile, kind: command, commands: ["echo built"] }]
    - name: staging
      branches: [develop]
      actions: [{ name: smoke, kind: command, commands: ["echo staged"] }]
    - name: production
      branches: [main]
      actions: [{ name: approve, kind: approval, environment: production, timeout: 5m }]
`

const githubSecret = "gh-s3cret"

type daemon struct {
	t     *testing.T
	cfg   *config.Config
	store *store.Store
	eng   *pipeline.Engine
	repo  string
}

// newDaemon makes a git repository with the command project on main and a
// develop branch, and the store and engine a daemon runs on.
func newDaemon(t *testing.T) *daemon {
	name := "dd-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": fmt.Sprintf(commandProject, name)})
	testenv.Git(t, repo, "branch", "develop")
	cfg, st := loadProject(t, repo)
	return &daemon{t: t, cfg: cfg, store: st, repo: repo,
		eng: &pipeline.Engine{Store: st, Home: t.TempDir(), Poll: 20 * time.Millisecond}}
}

// server is a new daemon process on the same store (a restart).
func (d *daemon) server() *Server {
	s := &Server{Config: d.cfg, Store: d.store, Engine: d.eng, Addr: "127.0.0.1:0", Repo: d.repo, ConfigPath: "cutover.yaml",
		Grace: 300 * time.Millisecond}
	s.Webhooks = webhook.Handler(webhook.HandlerConfig{GenericSecret: "s3cret", GitHubSecret: []byte(githubSecret),
		OnTrigger: func(tr webhook.Trigger) error { return s.WebhookTrigger(context.Background(), tr) }})
	return s
}

func (d *daemon) executions() []store.Execution {
	xs, err := d.store.ListExecutions(context.Background(), d.cfg.Project, 50)
	if err != nil {
		d.t.Fatal(err)
	}
	return xs
}

func (d *daemon) find(f func(store.Execution) bool) (store.Execution, bool) {
	for _, x := range d.executions() {
		if f(x) {
			return x, true
		}
	}
	return store.Execution{}, false
}

func (d *daemon) status(id string) string {
	x, err := d.store.GetExecution(context.Background(), id)
	if err != nil {
		d.t.Fatal(err)
	}
	return x.Status
}

func send(t *testing.T, url string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// While a main execution waits for its approval, a develop push goes
// through build and staging to the end, and a pull request whose head
// branch is named main builds without superseding the waiting main run:
// executions hold only the stage they are in.
func TestDevelopAndPullRequestsRunWhileMainWaitsForItsApproval(t *testing.T) {
	d := newDaemon(t)
	// A pull request's commands run confined in a container.
	testenv.RequireDocker(t)
	rt, err := docker.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	d.eng.Runtime = rt
	s := d.server()
	start(t, s)
	base := "http://" + s.Address()
	if code, body := send(t, base+"/v1/executions", bearer(t, s, "deployer"), `{"branch":"main"}`); code != http.StatusAccepted {
		t.Fatalf("POST /v1/executions: %d %s", code, body)
	}
	var main store.Execution
	waitFor(t, "main to wait at its approval", func() bool {
		var ok bool
		main, ok = d.find(func(x store.Execution) bool { return x.Branch == "main" && x.Status == store.ExecutionWaiting })
		return ok
	})

	developHead := testenv.Git(t, d.repo, "rev-parse", "develop")
	if code, body := send(t, base+"/webhooks/generic", map[string]string{"X-Cutover-Secret": "s3cret"},
		`{"branch":"develop","commit":"`+developHead+`"}`); code != http.StatusOK {
		t.Fatalf("develop push: %d %s", code, body)
	}
	var develop store.Execution
	waitFor(t, "develop to go through staging to the end", func() bool {
		var ok bool
		develop, ok = d.find(func(x store.Execution) bool { return x.Branch == "develop" && !store.ExecutionActive(x.Status) })
		return ok
	})
	if develop.Status != store.ExecutionSucceeded || stageStatus(t, develop.Stages, "staging") != pipeline.StatusSucceeded {
		t.Fatalf("develop ended %s (%s): %s", develop.Status, develop.Error, develop.Stages)
	}

	// A fork's pull request from a branch it named main.
	testenv.Git(t, d.repo, "checkout", "-q", "-b", "fork-main")
	testenv.Git(t, d.repo, "commit", "-q", "--allow-empty", "-m", "pull request")
	prHead := testenv.Git(t, d.repo, "rev-parse", "HEAD")
	testenv.Git(t, d.repo, "checkout", "-q", "main")
	if code, body := send(t, base+"/webhooks/generic", map[string]string{"X-Cutover-Secret": "s3cret"},
		`{"kind":"pull_request","branch":"main","commit":"`+prHead+`"}`); code != http.StatusOK {
		t.Fatalf("pull request: %d %s", code, body)
	}
	var pr store.Execution
	waitFor(t, "the pull request to build", func() bool {
		var ok bool
		pr, ok = d.find(func(x store.Execution) bool { return x.Commit == prHead && !store.ExecutionActive(x.Status) })
		return ok
	})
	if pr.Status != store.ExecutionSucceeded || pr.Trigger != pipeline.TriggerPullRequest {
		t.Fatalf("pull request ended %s (%s)", pr.Status, pr.Error)
	}
	time.Sleep(200 * time.Millisecond) // several cancel polls of the main run
	if got := d.status(main.ID); got != store.ExecutionWaiting {
		t.Fatalf("the main execution is %s after a pull request from a branch named main; want it still waiting", got)
	}
	if code, body := send(t, base+"/v1/executions/"+main.ID+"/approve", bearer(t, s, "approver"), `{"comment":"ok"}`); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, body)
	}
	waitFor(t, "main to succeed", func() bool { return d.status(main.ID) == store.ExecutionSucceeded })
}

func githubPush(t *testing.T, url, delivery, branch, commit string) (int, string) {
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "before": strings.Repeat("0", 40), "after": commit,
		"repository": map[string]any{"full_name": "acme/app"}, "sender": map[string]any{"login": "octocat"}})
	m := hmac.New(sha256.New, []byte(githubSecret))
	m.Write(body)
	return send(t, url, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(m.Sum(nil))}, string(body))
}

// A delivery is in the store when the answer arrives, and a replay of it
// (same X-GitHub-Delivery, or X-Cutover-Delivery) runs nothing: 200 "duplicate".
func TestReplayedDeliveryRunsOnce(t *testing.T) {
	d := newDaemon(t)
	s := d.server()
	start(t, s)
	base := "http://" + s.Address()
	develop := testenv.Git(t, d.repo, "rev-parse", "develop")

	code, body := githubPush(t, base+"/webhooks/github", "f2b1c9a0-0001", "develop", develop)
	if code != http.StatusOK || !strings.Contains(body, `"accepted"`) {
		t.Fatalf("first delivery: %d %s", code, body)
	}
	if xs := d.executions(); len(xs) != 1 || xs[0].Commit != develop {
		t.Fatalf("right after the 200 the store holds %+v; want the trigger's execution", xs)
	}
	for range 3 {
		code, body = githubPush(t, base+"/webhooks/github", "f2b1c9a0-0001", "develop", develop)
		if code != http.StatusOK || !strings.Contains(body, `"duplicate"`) {
			t.Fatalf("replayed delivery: %d %s", code, body)
		}
	}
	generic := map[string]string{"X-Cutover-Secret": "s3cret", "X-Cutover-Delivery": "f2b1c9a0-0001"} // same id, other source
	for i, want := range []string{`"accepted"`, `"duplicate"`} {
		if code, body := send(t, base+"/webhooks/generic", generic, `{"branch":"develop","commit":"`+develop+`"}`); code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("generic delivery %d: %d %s, want %s", i+1, code, body, want)
		}
	}
	waitFor(t, "both executions to end", func() bool {
		_, active := d.find(func(x store.Execution) bool { return store.ExecutionActive(x.Status) })
		return !active
	})
	if xs := d.executions(); len(xs) != 2 {
		t.Fatalf("%d executions ran for 2 deliveries and 4 replays: %+v", len(xs), xs)
	}
}

// `serve` never takes over an execution whose owner (here a live process
// standing for a foreground `cutover run`) still runs; once the owner is
// gone, the next start recovers it and resumes it from its stage.
func TestServeLeavesAnExecutionWhoseOwnerIsAlive(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	owner := exec.Command("sleep", "60")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	q := d.waitingAtApproval(t, testenv.Git(t, d.repo, "rev-parse", "main"), owner.Process.Pid)
	before, _ := d.store.GetExecution(ctx, q.ID)

	stop, done := start(t, d.server())
	time.Sleep(time.Second) // the start-up recovery and several queue scans
	after, _ := d.store.GetExecution(ctx, q.ID)
	if after.Status != store.ExecutionWaiting || after.Generation != before.Generation || len(d.executions()) != 1 {
		t.Fatalf("serve took over an execution whose owner (pid %d) is alive: %s, generation %d→%d, %d executions",
			owner.Process.Pid, after.Status, before.Generation, after.Generation, len(d.executions()))
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	_ = owner.Process.Kill()
	_ = owner.Wait()
	start(t, d.server())
	var resumed store.Execution
	waitFor(t, "the execution of the dead owner to be resumed", func() bool {
		var ok bool
		resumed, ok = d.find(func(x store.Execution) bool { return x.ID != q.ID && x.Status == store.ExecutionWaiting })
		return ok
	})
	old, _ := d.store.GetExecution(ctx, q.ID)
	if old.Status != store.ExecutionFailed || !strings.Contains(old.Error, "interrupted") || !strings.Contains(string(resumed.Stages), "retried from stage production") {
		t.Fatalf("after its owner died: %s (%s); resumed as %s", old.Status, old.Error, resumed.Stages)
	}
	if resumed.OwnerPID != os.Getpid() {
		t.Fatalf("the resumed execution is owned by pid %d, want this daemon's %d", resumed.OwnerPID, os.Getpid())
	}
}

// A cancel asked while no daemon runs is honoured by the next start: a
// queued execution never runs, and an interrupted one is not resumed.
func TestCancelWhileTheDaemonIsDownIsHonouredAtTheNextStart(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	commit := testenv.Git(t, d.repo, "rev-parse", "main")
	trig := pipeline.Trigger{Kind: pipeline.TriggerPush, Project: d.cfg.Project, Repo: d.repo, Branch: "main", Commit: commit, ConfigPath: "cutover.yaml"}
	queued := pipeline.QueuedExecution(trig, time.Now())
	if _, err := d.store.QueueExecution(ctx, queued, store.Delivery{}, nil); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	left := pipeline.QueuedExecution(trig, time.Now())
	stages, _ := json.Marshal([]pipeline.StageState{
		{Name: "build", Status: pipeline.StatusSucceeded},
		{Name: "production", Status: pipeline.StatusRunning, Actions: []pipeline.ActionState{{Name: "approve", Kind: "approval", Status: pipeline.StatusWaiting}}},
	})
	left.Status, left.Stages, left.OwnerPID, left.OwnerHost = store.ExecutionWaiting, stages, gone.Process.Pid, host
	if err := d.store.CreateExecution(ctx, left); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{queued.ID, left.ID} {
		if _, err := pipeline.RequestCancel(ctx, d.store, id, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.status(queued.ID); got != store.ExecutionCancelled {
		t.Fatalf("a queued execution after its cancel: %s, want cancelled at once", got)
	}
	start(t, d.server())
	waitFor(t, "the interrupted execution to end", func() bool { return !store.ExecutionActive(d.status(left.ID)) })
	time.Sleep(300 * time.Millisecond) // several queue scans
	if got := d.status(left.ID); got != store.ExecutionCancelled {
		t.Fatalf("the interrupted execution whose cancel was asked: %s, want cancelled", got)
	}
	if xs := d.executions(); len(xs) != 2 {
		t.Fatalf("the next start ran something that was cancelled: %d executions", len(xs))
	}
	if _, err := pipeline.RequestCancel(ctx, d.store, left.ID, "alice"); err == nil || !strings.Contains(err.Error(), "already cancelled") {
		t.Fatalf("cancelling a cancelled execution: %v", err)
	}
}

// stageStatus is the status of the named stage in an execution's stored stages.
func stageStatus(t *testing.T, stages []byte, name string) string {
	t.Helper()
	var ss []pipeline.StageState
	if err := json.Unmarshal(stages, &ss); err != nil {
		t.Fatalf("stages %s: %v", stages, err)
	}
	for _, st := range ss {
		if st.Name == name {
			return st.Status
		}
	}
	return ""
}

// waitingAtApproval stores an execution of main's commit waiting at its
// production approval, its build stage done, owned by the process pid on
// this host (a foreground `cutover run`, or a daemon, alive or not).
func (d *daemon) waitingAtApproval(t *testing.T, commit string, pid int) store.Execution {
	t.Helper()
	host, _ := os.Hostname()
	x := pipeline.QueuedExecution(pipeline.Trigger{Kind: pipeline.TriggerPush, Project: d.cfg.Project, Repo: d.repo, Branch: "main",
		Commit: commit, ConfigPath: "cutover.yaml"}, time.Now())
	stages, _ := json.Marshal([]pipeline.StageState{
		{Name: "build", Status: pipeline.StatusSucceeded, Actions: []pipeline.ActionState{{Name: "compile", Kind: "command", Status: pipeline.StatusSucceeded}}},
		{Name: "production", Status: pipeline.StatusRunning, Actions: []pipeline.ActionState{{Name: "approve", Kind: "approval", Status: pipeline.StatusWaiting}}},
	})
	x.Status, x.Stages, x.OwnerPID, x.OwnerHost = store.ExecutionWaiting, stages, pid, host
	if err := d.store.CreateExecution(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	return x
}

// deadPID is the PID of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	return gone.Process.Pid
}
