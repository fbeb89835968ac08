package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
	"github.com/cutoverdev/cutover/internal/webhook"
)

// A project whose pipeline builds one FROM scratch image and then waits at
// an approval on main, so a test can hold an execution at a gate.
const project = `version: 1
project: %s
services:
  hello: { build: { context: hello, commands: ["echo hi > hello.txt"] }, port: 8080 }
environments:
  production: { branch: main, listen: { port: 18099 } }
pipeline:
  stages:
    - name: build
      actions: [{ name: hello, kind: build, service: hello }]
    - name: gate
      branches: [main]
      actions: [{ name: approve, kind: approval, environment: production, timeout: 1m }]
`

func newServer(t *testing.T) (*Server, string) {
	testenv.RequireDocker(t)
	name := "sv-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	repo, _ := testenv.GitRepo(t, "main", map[string]string{
		"cutover.yaml":     strings.Replace(project, "%s", name, 1),
		"hello/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
	})
	t.Cleanup(func() { testenv.RemoveProject(name) })
	ctx := context.Background()
	cfg, st := loadProject(t, repo)
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	s := &Server{
		Config: cfg, Store: st, Addr: "127.0.0.1:0", Repo: repo, ConfigPath: "cutover.yaml", Grace: 300 * time.Millisecond,
		Engine: &pipeline.Engine{Store: st, Runtime: rt, Home: t.TempDir(), Poll: 20 * time.Millisecond},
	}
	s.Webhooks = webhook.Handler(webhook.HandlerConfig{GenericSecret: "s3cret", OnTrigger: func(tr webhook.Trigger) error {
		return s.WebhookTrigger(ctx, tr)
	}})
	return s, repo
}

// start runs s until the test ends (or stop is called) and waits for Run to
// return before the store and engine are closed.
func start(t *testing.T, s *Server) (stop func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	wait := make(chan error, 1)
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-ch:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20s of the stop")
			}
			wait <- runErr
		})
	}
	t.Cleanup(stop)
	<-s.Ready()
	return stop, wait
}

func post(t *testing.T, url, secret, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if secret != "" {
		req.Header.Set("X-Cutover-Secret", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// apiTokens holds the token of each role per store, named after the role.
var apiTokens sync.Map

// tokenFor is a token of role (named after it) in s's store, created once.
func tokenFor(t *testing.T, s *Server, role string) string {
	t.Helper()
	tok, ok := apiTokens.Load(s.Store.Path() + role)
	if !ok {
		created, err := auth.CreateToken(context.Background(), s.Store, auth.Identity{Name: "test"}, role, role)
		if err != nil {
			t.Fatal(err)
		}
		tok = created.Token
		apiTokens.Store(s.Store.Path()+role, tok)
	}
	return tok.(string)
}

// bearer is the Authorization header of a token of role.
func bearer(t *testing.T, s *Server, role string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tokenFor(t, s, role)}
}

// postAPI posts a JSON body to the API with a token of role.
func postAPI(t *testing.T, s *Server, url, role, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, s, role))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for i := 0; i < 400; i++ {
		if f() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWebhookTriggersSupersedeAndGracefulStop(t *testing.T) {
	s, repo := newServer(t)
	ctx := context.Background()
	stop, done := start(t, s)
	base := "http://" + s.Address()

	// Forged and unsigned webhooks run nothing.
	if code := post(t, base+"/webhooks/generic", "wrong", `{"branch":"main"}`); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d", code)
	}
	if code := post(t, base+"/webhooks/generic", "", `{"branch":"main"}`); code != http.StatusUnauthorized {
		t.Fatalf("unsigned webhook: %d", code)
	}
	// An authentic one runs the pipeline up to the approval gate.
	first := testenv.Git(t, repo, "rev-parse", "HEAD")
	if code := post(t, base+"/webhooks/generic", "s3cret", `{"branch":"main","commit":"`+first+`"}`); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}
	var waiting store.Execution
	waitFor(t, "the first execution to wait at the gate", func() bool {
		xs, _ := s.Store.ListExecutions(ctx, s.Config.Project, 10)
		if len(xs) == 1 && xs[0].Status == "waiting" {
			waiting = xs[0]
			return true
		}
		return false
	})
	if waiting.Commit != first {
		t.Fatalf("ran %s, want %s", waiting.Commit, first)
	}

	// A newer commit on the same branch supersedes the one waiting at the gate.
	testenv.Git(t, repo, "commit", "-q", "--allow-empty", "-m", "second")
	second := testenv.Git(t, repo, "rev-parse", "HEAD")
	if code := post(t, base+"/webhooks/generic", "s3cret", `{"branch":"main","commit":"`+second+`"}`); code != http.StatusOK {
		t.Fatalf("second webhook: %d", code)
	}
	waitFor(t, "the first execution to be superseded", func() bool {
		x, _ := s.Store.GetExecution(ctx, waiting.ID)
		return x.Status == "superseded"
	})
	waitFor(t, "the second execution to wait at the gate", func() bool {
		xs, _ := s.Store.ListExecutions(ctx, s.Config.Project, 10)
		return len(xs) == 2 && xs[0].Commit == second && xs[0].Status == "waiting"
	})

	// SIGTERM (ctx cancelled): the waiting execution gets the grace period, then is cancelled.
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	xs, _ := s.Store.ListExecutions(context.Background(), s.Config.Project, 10)
	if xs[0].Status != "cancelled" {
		t.Fatalf("after the stop the execution is %s, want cancelled", xs[0].Status)
	}
	if _, err := http.Get(base + "/v1/health"); err == nil {
		t.Fatal("the API still answers after the stop")
	}
}

func TestAPIRunsAnExecutionAndApprovesIt(t *testing.T) {
	s, _ := newServer(t)
	ctx := context.Background()
	start(t, s)
	base := "http://" + s.Address()
	if code := postAPI(t, s, base+"/v1/executions", "deployer", `{"branch":"main"}`); code != http.StatusAccepted {
		t.Fatalf("POST /v1/executions: %d", code)
	}
	var id string
	waitFor(t, "the execution to wait", func() bool {
		xs, _ := s.Store.ListExecutions(ctx, s.Config.Project, 10)
		if len(xs) == 1 && xs[0].Status == "waiting" {
			id = xs[0].ID
			return true
		}
		return false
	})
	if code := postAPI(t, s, base+"/v1/executions/"+id+"/approve", "deployer", `{"by":"alice","comment":"ok"}`); code != http.StatusForbidden {
		t.Fatalf("approval by a deployer: %d", code)
	}
	if code := postAPI(t, s, base+"/v1/executions/"+id+"/approve", "approver", `{"by":"alice","comment":"ok"}`); code != http.StatusOK {
		t.Fatalf("approve: %d", code)
	}
	if a, _ := s.Store.GetApproval(ctx, id, "approve"); a.DecidedBy != "approver" {
		t.Fatalf("approved by %q, want the token's name", a.DecidedBy)
	}
	waitFor(t, "the execution to succeed", func() bool {
		x, _ := s.Store.GetExecution(ctx, id)
		return x.Status == "succeeded"
	})
}

func TestStopDuringABuildCancelsCleanlyAndARestartResumesNothingHalfDone(t *testing.T) {
	s, repo := newServer(t)
	cfg := strings.Replace(project, `commands: ["echo hi > hello.txt"]`, `commands: ["echo hi > hello.txt", "sleep 30"]`, 1)
	cfg = strings.Replace(cfg, "%s", s.Config.Project, 1)
	if err := os.WriteFile(filepath.Join(repo, "cutover.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo, "commit", "-qam", "slow build")
	ctx := context.Background()
	stop, done := start(t, s)
	if code := postAPI(t, s, "http://"+s.Address()+"/v1/executions", "deployer", `{"branch":"main"}`); code != http.StatusAccepted {
		t.Fatalf("POST /v1/executions: %d", code)
	}
	var id string
	waitFor(t, "the build to be running", func() bool {
		xs, _ := s.Store.ListExecutions(ctx, s.Config.Project, 10)
		if len(xs) == 1 && strings.Contains(string(xs[0].Stages), `"status":"running"`) {
			id = xs[0].ID
			return true
		}
		return false
	})
	time.Sleep(300 * time.Millisecond) // inside `sleep 30`
	stop()
	if err := <-done; err != nil {
		t.Fatalf("the build was not cancelled after the grace period: %v", err)
	}
	x, _ := s.Store.GetExecution(context.Background(), id)
	if x.Status != "cancelled" {
		t.Fatalf("execution %s after SIGTERM during the build, want cancelled (%s)", x.Status, x.Error)
	}
	if _, err := os.Stat(filepath.Join(s.Engine.Home, "workspaces", id)); !os.IsNotExist(err) {
		t.Fatalf("the workspace of the cancelled execution is still there: %v", err)
	}
	// A restart finds nothing active: nothing is resumed twice or left running.
	active, _ := s.Store.ActiveExecutions(context.Background(), s.Config.Project)
	if len(active) != 0 {
		t.Fatalf("active executions after the stop: %+v", active)
	}
}

// A daemon killed while an execution waits at an approval leaves it
// "waiting" in the store; the next start resumes it from that stage (as a
// retry that reuses what the earlier stages produced) and marks the old one.
func TestRestartResumesAnExecutionLeftWaiting(t *testing.T) {
	s, repo := newServer(t)
	ctx := context.Background()
	commit := testenv.Git(t, repo, "rev-parse", "HEAD")
	trig, _ := json.Marshal(pipeline.Trigger{Kind: pipeline.TriggerPush, Project: s.Config.Project, Repo: repo, Branch: "main", Commit: commit, ConfigPath: "cutover.yaml"})
	vars, _ := json.Marshal(map[string]string{pipeline.TriggerVar: string(trig)})
	stages, _ := json.Marshal([]pipeline.StageState{
		{Name: "build", Status: pipeline.StatusSucceeded, Actions: []pipeline.ActionState{{Name: "hello", Kind: "build", Status: pipeline.StatusSucceeded, Outputs: map[string]string{"CUTOVER_IMAGE_HELLO": "sha256:feed"}}}},
		{Name: "gate", Status: pipeline.StatusRunning, Actions: []pipeline.ActionState{{Name: "approve", Kind: "approval", Status: pipeline.StatusWaiting}}},
	})
	left := store.Execution{ID: "x-left-waiting", Project: s.Config.Project, Pipeline: "main", Trigger: pipeline.TriggerPush,
		Branch: "main", Commit: commit, Status: store.ExecutionWaiting, Variables: vars, Stages: stages}
	if err := s.Store.CreateExecution(ctx, left); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	var resumed store.Execution
	waitFor(t, "the execution to be resumed at its gate", func() bool {
		xs, _ := s.Store.ListExecutions(ctx, s.Config.Project, 10)
		for _, x := range xs {
			// The resumption keeps the kind of what it resumes (a push here).
			if x.ID != left.ID && x.Trigger == pipeline.TriggerPush && strings.Contains(string(x.Variables), `retried_from\":\"x-left-waiting`) && x.Status == "waiting" {
				resumed = x
				return true
			}
		}
		return false
	})
	old, _ := s.Store.GetExecution(ctx, left.ID)
	if old.Status != "failed" || !strings.Contains(old.Error, "resumed") {
		t.Fatalf("the interrupted execution is %s (%q), want failed and pointing at its resumption", old.Status, old.Error)
	}
	if !strings.Contains(string(resumed.Stages), `"retried from stage gate"`) || !strings.Contains(string(resumed.Variables), "sha256:feed") {
		t.Fatalf("the resumption did not start at the gate with the earlier images: %s %s", resumed.Stages, resumed.Variables)
	}
}

// An API trigger of main with a commit that is not on main (an unmerged
// feature commit) is refused at once with the reason; nothing is queued.
func TestAPIRefusesACommitThatIsNotOnTheBranch(t *testing.T) {
	s, repo := newServer(t)
	testenv.Git(t, repo, "checkout", "-qb", "feature")
	_ = os.WriteFile(filepath.Join(repo, "feature.txt"), []byte("unmerged"), 0o644)
	testenv.Git(t, repo, "add", ".")
	testenv.Git(t, repo, "commit", "-qm", "unmerged feature")
	feature := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-q", "main")
	start(t, s)
	code, body := send(t, "http://"+s.Address()+"/v1/executions", bearer(t, s, "deployer"), `{"branch":"main","commit":"`+feature+`"}`)
	if code != http.StatusConflict || !strings.Contains(string(body), "is not on branch main") {
		t.Fatalf("want 409 naming the reason, got %d %s", code, body)
	}
	if xs, _ := s.Store.ListExecutions(context.Background(), s.Config.Project, 10); len(xs) != 0 {
		t.Fatalf("a refused trigger ran: %+v", xs)
	}
}
