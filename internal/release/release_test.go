package release_test

// The release use cases against the real thing: a SQLite file store, the
// Docker engine and the cutover binary's load balancer (the local
// platform), with a one-service project built FROM scratch. Traffic goes
// only to 127.0.0.1.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunTests(m)) }

const webMain = `package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

var version = "dev"

func main() {
	if s := os.Getenv("WEB_SECRET"); s != "" {
		fmt.Println("starting with secret " + s) // as careless applications do
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, version) })
	http.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getenv(strings.TrimPrefix(r.URL.Path, "/env/"))) })
	_ = http.ListenAndServe(":8000", nil)
}
`

// project is a one-service project in a temp dir with strategy (indented
// under environments.production), its Manager on a fresh home, and the
// production port. Each build's binary answers with its build id.
type project struct {
	t     *testing.T
	m     *release.Manager
	home  string
	port  int
	mu    sync.Mutex
	notes []string
	steps deploy.Event // the last progress event that said step N of M
	phase chan string  // the controller's phase events
}

func newProject(t *testing.T, strategy string) *project {
	t.Helper()
	return newProjectWith(t, strategy, "")
}

// newProjectWith is newProject with more settings of the web service
// (indented under services.web).
func newProjectWith(t *testing.T, strategy, web string) *project {
	t.Helper()
	return newProjectFrom(t, webMain, strategy, web)
}

// newProjectFrom is newProjectWith whose web service runs main.
func newProjectFrom(t *testing.T, main, strategy, web string) *project {
	t.Helper()
	testenv.RequireDocker(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rel" + hex.EncodeToString(b[:])
	dir, home := t.TempDir(), t.TempDir()
	p := &project{t: t, home: home, port: testenv.FreePort(t), phase: make(chan string, 64)}
	files := map[string]string{
		"web/go.mod":     "module web\n\ngo 1.22\n",
		"web/main.go":    main,
		"web/Dockerfile": "FROM scratch\nCOPY bin/web /web\nENTRYPOINT [\"/web\"]\n",
		"cutover.yaml": fmt.Sprintf(`version: 1
project: %s
services:
  web:
    build:
      context: web
      commands: ["CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -X main.version=${CUTOVER_BUILD_ID}\" -o bin/web ."]
    port: 8000
    health: { path: /, interval: 500ms, timeout: 400ms, healthy_threshold: 1 }
%s
environments:
  production:
    listen: { port: %d, test_port: %d }
%s
`, name, web, p.port, testenv.FreePort(t), strategy),
	}
	for path, body := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	m, err := release.Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	m.Binary = testenv.CutoverBinary(t)
	m.Actor = "tester (pid 1 on test)"
	m.Progress = func(ev deploy.Event) {
		switch ev.Kind {
		case release.KindNote:
			p.mu.Lock()
			p.notes = append(p.notes, ev.Message)
			p.mu.Unlock()
		case "phase":
			select {
			case p.phase <- ev.Phase:
			default:
			}
		case "progress":
			if ev.Steps > 0 {
				p.mu.Lock()
				p.steps = ev
				p.mu.Unlock()
			}
		}
	}
	p.m = m
	t.Cleanup(func() {
		ctx := context.WithoutCancel(ctx)
		_, _ = m.Down(ctx, "production")
		_ = release.StopProxy(ctx, home, 5*time.Second)
		m.Close()
		testenv.RemoveProject(name)
	})
	return p
}

// serving is what production answers with (the build id of the serving revision).
func (p *project) serving() string { return p.get("/") }

// get is what production answers at path.
func (p *project) get(path string) string {
	p.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path))
	if err != nil {
		p.t.Fatalf("production: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

const quick = `    strategy: { type: blue_green, termination_wait: 0s }`

// Two deployments, then rollback --to the first: it is deployed again
// without a build through the strategy, serves again, and is recorded as a
// new deployment whose previous revision is the second.
func TestDeployThenRollbackToARevision(t *testing.T) {
	p := newProject(t, quick)
	ctx := context.Background()
	d1, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	v1 := p.serving()
	d2, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	v2 := p.serving()
	if v1 == v2 || d1.Revision == d2.Revision {
		t.Fatalf("the two builds serve the same version %q (revisions %s, %s)", v1, d1.Revision, d2.Revision)
	}

	d3, err := p.m.Rollback(ctx, "production", release.RollbackOptions{To: d1.Revision, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("rollback --to %s: %v", d1.Revision, err)
	}
	if d3.Status != store.DeploymentSucceeded || d3.Revision != d1.Revision || d3.PreviousRevision != d2.Revision {
		t.Fatalf("rollback deployment: %+v", d3)
	}
	if got := p.serving(); got != v1 {
		t.Fatalf("after rollback --to %s production answers %q, want %q", d1.Revision, got, v1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.notes, "redeploying the previous revision "+d1.Revision+" (no rebuild)") {
		t.Errorf("notes do not say the revision is redeployed without a build: %q", p.notes)
	}
	st, err := p.m.Status(ctx, "production")
	if err != nil || len(st) != 1 || st[0].Revision != d1.Revision || st[0].Serving == nil || st[0].Serving.ID != d1.Revision ||
		st[0].Traffic[d3Color(st[0])] != 100 || len(st[0].Unread) != 0 {
		t.Fatalf("status after the rollback: %+v (%v)", st, err)
	}

	// A revision that is not the environment's is refused before anything runs.
	_, err = p.m.Rollback(ctx, "production", release.RollbackOptions{To: "r-000000000000"})
	var usage release.UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "r-000000000000") {
		t.Errorf("rollback --to an unknown revision: %v, want a usage error naming it", err)
	}
}

// d3Color is the color the serving tasks run as.
func d3Color(s release.Status) string {
	for _, task := range s.Tasks {
		if task.Revision == s.Revision {
			return task.Color
		}
	}
	return ""
}

// deployPromotingAt deploys and sends a promote once the deployment is in
// phase, first calling at(), and returns the deployment as it ended.
func (p *project) deployPromotingAt(ctx context.Context, phase string, at func()) store.Deployment {
	p.t.Helper()
	type result struct {
		d   store.Deployment
		err error
	}
	for len(p.phase) > 0 {
		<-p.phase
	}
	done := make(chan result, 1)
	go func() {
		d, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
		done <- result{d, err}
	}()
	for ph := ""; ph != phase; {
		select {
		case ph = <-p.phase:
		case r := <-done:
			p.t.Fatalf("the deployment ended before %s: %+v %v", phase, r.d, r.err)
		case <-ctx.Done():
			p.t.Fatalf("no %s phase", phase)
		}
	}
	at()
	if _, err := p.m.Promote(ctx, "production"); err != nil {
		p.t.Fatalf("promote: %v", err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.d.Status != store.DeploymentSucceeded || r.d.TrafficPercent != 100 {
			p.t.Fatalf("promoted deployment: %+v %v", r.d, r.err)
		}
		return r.d
	case <-time.After(time.Minute):
		p.t.Fatalf("the deployment promoted in %s did not finish within a minute (its schedule is hours)", phase)
	}
	return store.Deployment{}
}

// A promote skips what is left of a deployment's schedule of hours: the
// first deployment's bake, then the second's linear steps, bake and
// termination wait. Each succeeds at once with all traffic on its revision.
func TestPromoteSkipsTheRemainingSteps(t *testing.T) {
	p := newProject(t, `    strategy:
      type: blue_green
      linear: { percent: 10, interval: 1h }
      bake: 1h
      termination_wait: 1h`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	first := p.deployPromotingAt(ctx, "Baking", func() {})
	v1 := p.serving()

	second := p.deployPromotingAt(ctx, "Shifting", func() {
		// While it shifts, status says where it stands: step N of M, about an hour left in the step.
		time.Sleep(500 * time.Millisecond)
		st, err := p.m.Status(ctx, "production")
		if err != nil || st[0].Progress == nil || st[0].Progress.Phase != "Shifting" || st[0].Progress.PhaseLeft < 50*time.Minute ||
			st[0].Progress.Step < 2 || st[0].Progress.Step > st[0].Progress.Steps || st[0].Progress.Left < 10*time.Hour {
			t.Errorf("status while shifting: %+v (%v)", st, err)
		}
		// And so do the deployment's own progress events (what `cutover deploy` renders).
		time.Sleep(1200 * time.Millisecond)
		p.mu.Lock()
		ev := p.steps
		p.mu.Unlock()
		if err == nil && (ev.Phase != "Shifting" || ev.Step != st[0].Progress.Step || ev.Steps != st[0].Progress.Steps || ev.Left < 10*time.Hour) {
			t.Errorf("progress event while shifting: step %d/%d, phase %s, %v left overall; status says %+v", ev.Step, ev.Steps, ev.Phase, ev.Left, st[0].Progress)
		}
	})
	if v := p.serving(); v == v1 || second.Revision == first.Revision {
		t.Fatalf("production answers %q after the second promote, as after the first (revisions %s, %s)", v, first.Revision, second.Revision)
	}
	// Promote with nothing in progress says so.
	if _, err := p.m.Promote(ctx, "production"); err == nil || !strings.Contains(err.Error(), "no deployment") {
		t.Errorf("promote with nothing in progress: %v", err)
	}
}

// With the Docker engine down, status reports what the store knows and
// names what it could not read, instead of failing.
func TestStatusWithDockerDownSaysUnread(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	y := "version: 1\nproject: shop\nservices:\n  web: { image: shop/web:1, port: 8000 }\nenvironments:\n  production: { listen: { port: 18080 } }\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := release.Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rev := store.Revision{ID: "r-1", Project: "shop", Environment: "production", Source: "commit 0123456789ab",
		Services: map[string]store.ServiceRevision{"web": {Image: "sha256:" + strings.Repeat("ab", 32)}}}
	if err := m.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Store.PutEnvState(ctx, store.EnvState{Project: "shop", Environment: "production", Revision: "r-1", Status: "up"}, 0); err != nil {
		t.Fatal(err)
	}

	st, err := m.Status(ctx, "")
	if err != nil {
		t.Fatalf("status with Docker down: %v", err)
	}
	if len(st) != 1 || st[0].Status != "up" || st[0].Serving == nil || st[0].Serving.Source != "commit 0123456789ab" {
		t.Fatalf("status from the store: %+v", st)
	}
	joined := strings.Join(st[0].Unread, "\n")
	if !strings.Contains(joined, "tasks: ") || !strings.Contains(joined, "Docker engine") || !strings.Contains(joined, "target health: ") {
		t.Fatalf("unread does not name the engine and the proxy: %q", st[0].Unread)
	}
	// An unknown environment is an error naming the file and the environments.
	if _, err := m.Status(ctx, "nowhere"); err == nil || !strings.Contains(err.Error(), "cutover.yaml") || !strings.Contains(err.Error(), "production") {
		t.Errorf("status of an unknown environment: %v", err)
	}
}

// With the proxy stopped, status says the tasks' health is unknown (and
// why, in Unread), not that the load balancer has no target for them: it
// used to show every running task as "not registered" while the proxy's
// saved state still routed to them.
func TestStatusWithTheProxyDownSaysHealthUnknown(t *testing.T) {
	p := newProject(t, quick)
	ctx := context.Background()
	if _, err := p.m.Up(ctx, "production", release.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := release.StopProxy(ctx, p.home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := p.m.Status(ctx, "production")
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || len(st[0].Tasks) == 0 {
		t.Fatalf("status with the proxy down: %+v", st)
	}
	for _, task := range st[0].Tasks {
		if task.Health != "unknown" {
			t.Errorf("task %s with the proxy down: health %q, want unknown", task.Name, task.Health)
		}
	}
	if joined := strings.Join(st[0].Unread, "\n"); !strings.Contains(joined, "target health: ") {
		t.Errorf("unread does not name the proxy: %q", st[0].Unread)
	}
}

const approvalProject = `version: 1
project: gate
services:
  web: { image: gate/web:1, port: 8000 }
environments:
  production:
    listen: { port: 18081 }
    approval: { required: true, approvers: [release-manager] }
pipeline:
  stages:
    - name: gate
      actions:
        - { name: approve, kind: approval, environment: production }
`

// Approve and Reject are the one place approvals are decided, for the CLI
// and the API alike: a viewer token, an approver not named by the
// environment's approval, and the OS user not named are all refused with
// pipeline.ErrNotAllowed, and nothing is recorded; the named approver passes.
func TestApproveByTheWrongRoleIsRefused(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(approvalProject), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(filepath.Join(dir, "cutover.yaml")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := release.Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Store.CreateExecution(ctx, store.Execution{ID: "x-1", Project: "gate", Pipeline: "main", Trigger: "push", Branch: "main", Commit: strings.Repeat("a", 40), Status: store.ExecutionWaiting}); err != nil {
		t.Fatal(err)
	}
	if err := m.Store.RequestApproval(ctx, store.Approval{Execution: "x-1", Stage: "gate", Action: "approve", Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	refused := []auth.Identity{
		{Name: "release-manager", Role: auth.RoleViewer, Via: auth.ViaAPI}, // named, but a viewer
		{Name: "someone", Role: auth.RoleApprover, Via: auth.ViaAPI},       // an approver not named
		{Name: "someone", Role: auth.RoleAdmin, Via: auth.ViaCLI},          // the machine's user, not named
	}
	for _, who := range refused {
		for _, decide := range []func(context.Context, string, release.Decision) (store.Approval, error){m.Approve, m.Reject} {
			if _, err := decide(ctx, "x-1", release.Decision{Who: who, Comment: "ok"}); !errors.Is(err, pipeline.ErrNotAllowed) {
				t.Errorf("%s (%s) decided: %v, want ErrNotAllowed", who.Name, who.Role, err)
			}
		}
	}
	pending, err := m.Store.PendingApprovals(ctx, "gate")
	if err != nil || len(pending) != 1 {
		t.Fatalf("after refused decisions the approval is not pending any more: %+v %v", pending, err)
	}
	a, err := m.Approve(ctx, "x-1", release.Decision{Who: auth.Identity{Name: "release-manager", Role: auth.RoleApprover, Via: auth.ViaAPI}, Comment: "ship it"})
	if err != nil || a.Status != store.ApprovalApproved || a.DecidedBy != "release-manager" {
		t.Fatalf("the named approver: %+v %v", a, err)
	}
	// An execution of another project is not found, whoever asks.
	if _, err := m.Cancel(ctx, "x-nowhere"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel of an unknown execution: %v", err)
	}
}
