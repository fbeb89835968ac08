package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// The trusted definition on main: build, a command that runs the
// repository's ci.sh (code the pull request controls), and a production
// deploy for pushes to main.
const trustedConfig = `version: 1
project: %s
services:
  hello:
    build: { context: hello }
    port: 8080
environments:
  production: { branch: main, listen: { port: 18480 } }
pipeline:
  secrets: { names: [API_TOKEN] }
  stages:
    - name: build
      actions:
        - { name: hello, kind: build, service: hello }
        - { name: ci, kind: command, commands: ["sh ci.sh"] }
    - name: production
      branches: [main]
      actions:
        - { name: deploy, kind: deploy, environment: production }
`

// The pull request's own cutover.yaml: it prints the secret, and adds a
// stage that deploys production for every branch.
const hostileConfig = `version: 1
project: %s
services:
  hello:
    build: { context: hello }
    port: 8080
environments:
  production: { branch: main, listen: { port: 18480 } }
pipeline:
  secrets: { names: [API_TOKEN] }
  stages:
    - name: steal
      actions:
        - { name: print, kind: command, commands: ["echo stolen=$API_TOKEN", "echo $API_TOKEN | base64"] }
    - name: ship-it
      actions:
        - { name: deploy, kind: deploy, environment: production }
`

// hostileCI is the pull request's ci.sh: it looks for the secret and the
// daemon's environment, tries the host's network and the Docker socket,
// and leaves a process behind.
const hostileCI = `echo "token=[$API_TOKEN]"
echo "daemon=[$CUTOVER_TEST_DAEMON_SECRET]"
env | sort | sed 's/^/env: /'
if wget -q -T 3 -O- http://127.0.0.1:%d/steal >/dev/null 2>&1; then echo NET-REACHED; else echo NET-BLOCKED; fi
if [ -S /var/run/docker.sock ] || [ -S /run/docker.sock ]; then echo SOCKET-FOUND; else echo SOCKET-ABSENT; fi
sleep 300 &
echo "left pid $!"
`

const prToken = "pr-secret-Zz9+/Yy8=="

type prFixture struct {
	e        *Engine
	calls    *[]deployCall
	out      *testenv.Buffer
	project  string
	repo     string
	main, pr string // commits
	hits     *atomic.Int64
	pushes   *pushRecorder
}

func newPRFixture(t *testing.T) prFixture {
	e, calls, out := newEngine(t)
	e.Getenv = func(k string) string { return map[string]string{"API_TOKEN": prToken}[k] }
	t.Setenv("CUTOVER_TEST_DAEMON_SECRET", "daemon-only-value-4711")
	pushes := &pushRecorder{}
	e.Registry, e.Pusher = "127.0.0.1:1", pushes
	f := prFixture{e: e, calls: calls, out: out, pushes: pushes, hits: &atomic.Int64{},
		project: "un-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")}
	removeImages(t, f.project)

	// A real server on the host's loopback, which the pull request tries to reach.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.hits.Add(1) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	f.repo, f.main = testenv.GitRepo(t, "main", map[string]string{
		"cutover.yaml":     fmt.Sprintf(trustedConfig, f.project),
		"ci.sh":            "echo trusted ci\n",
		"hello/Dockerfile": "FROM scratch\nCOPY Dockerfile /\n",
	})
	testenv.Git(t, f.repo, "checkout", "-qb", "feature")
	_ = os.WriteFile(filepath.Join(f.repo, "cutover.yaml"), []byte(fmt.Sprintf(hostileConfig, f.project)), 0o644)
	_ = os.WriteFile(filepath.Join(f.repo, "ci.sh"), []byte(fmt.Sprintf(hostileCI, port)), 0o644)
	testenv.Git(t, f.repo, "commit", "-qam", "innocent change")
	f.pr = testenv.Git(t, f.repo, "rev-parse", "HEAD")
	testenv.Git(t, f.repo, "checkout", "-q", "main")
	return f
}

func (f prFixture) storedText(t *testing.T, x store.Execution) string {
	t.Helper()
	logs, err := f.e.Store.ListLogs(context.Background(), x.ID, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range logs {
		b.WriteString(l.Action + " " + l.Line + "\n")
	}
	whole, _ := json.Marshal(x)
	b.Write(whole)
	return b.String()
}

// A fork's pull request, its head branch named main, attacks every
// boundary at once: its cutover.yaml prints the secret and deploys
// production; its ci.sh (run by the trusted definition) looks for secrets
// and the daemon's environment, calls the host's network and the Docker
// socket and leaves a process behind. None of it works; a retry of it is
// still a pull request.
func TestPullRequestRunsConfinedWithTheBaseDefinition(t *testing.T) {
	f := newPRFixture(t)
	ctx := context.Background()
	x, err := f.e.Run(ctx, Trigger{Kind: TriggerPullRequest, Project: f.project, Repo: f.repo, Branch: "main", Base: "main", Commit: f.pr, PR: 7})
	if err != nil {
		t.Fatal(err)
	}
	text := f.storedText(t, x)
	if x.Status != "succeeded" || x.Trigger != TriggerPullRequest {
		t.Fatalf("pull request: %s %s (%s)\n%s", x.Status, x.Error, x.Trigger, f.out)
	}
	var stages []StageState
	_ = json.Unmarshal(x.Stages, &stages)
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"build", "production"}) || stages[1].Status != StatusSkipped {
		t.Fatalf("the base's stages must run, not the pull request's: %v", stages)
	}
	if len(*f.calls) != 0 {
		t.Fatalf("a pull request deployed: %v", *f.calls)
	}
	for _, want := range []string{"pipeline definition of main at " + f.main[:7], "token=[]", "daemon=[]", "NET-BLOCKED", "SOCKET-ABSENT", "left pid", "env: HOME=/workspace", "env: CI=true", "env: CUTOVER_PR=7"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, bad := range []string{"stolen", "NET-REACHED", "SOCKET-FOUND", "daemon-only-value-4711", "env: CUTOVER_TEST_DAEMON_SECRET"} {
		if strings.Contains(text, bad) {
			t.Errorf("log holds %q", bad)
		}
	}
	if l := leaks(text, prToken); len(l) > 0 {
		t.Errorf("the secret leaked: %v", l)
	}
	if f.hits.Load() != 0 {
		t.Errorf("the pull request reached the host's network: %d requests", f.hits.Load())
	}
	if t.Failed() {
		t.Fatalf("stored:\n%s", text)
	}
	// The process it left ended with the run: no container of the project remains.
	if out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=dev.cutover.project="+f.project).Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("containers left after the run: %q %v", out, err)
	}
	// Its images carry pr-7 and the commit behind pr-7-, never the commit
	// alone (a trusted run's tag, whose short form a pull request can
	// collide with), latest nor the name of a deploy branch.
	out, err := exec.Command("docker", "images", "--format", "{{.Tag}}", "--filter", "label=dev.cutover.project="+f.project).Output()
	if err != nil {
		t.Fatal(err)
	}
	tags := strings.Fields(string(out))
	if !slices.Contains(tags, "pr-7") || !slices.Contains(tags, "pr-7-"+f.pr) || slices.Contains(tags, "latest") || slices.Contains(tags, "main") ||
		slices.Contains(tags, f.pr) || slices.Contains(tags, short.SHA(f.pr)) {
		t.Fatalf("pull request image tags %v", tags)
	}
	for _, ref := range f.pushes.refs {
		if strings.HasSuffix(ref, ":latest") || strings.HasSuffix(ref, ":main") || strings.HasSuffix(ref, ":"+f.pr) || strings.HasSuffix(ref, ":"+short.SHA(f.pr)) {
			t.Fatalf("pushed %s", ref)
		}
	}
	if len(f.pushes.refs) == 0 {
		t.Fatal("nothing pushed: the check above checked nothing")
	}

	// Retried (as `cutover retry` and a resumed daemon do), it is still a pull request.
	rt, err := RetryTrigger(x, "")
	if err != nil {
		t.Fatal(err)
	}
	resumed := Trigger{Kind: TriggerRetry, Project: f.project, Repo: f.repo, Branch: "main", Commit: f.pr, RetryOf: x.ID, FromStage: "production"}
	for _, tr := range []Trigger{rt, resumed} {
		y, err := f.e.Run(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		if y.Trigger != TriggerPullRequest || y.Status != "succeeded" || len(*f.calls) != 0 {
			t.Fatalf("retry of a pull request: kind %s, %s %s, deploys %v", y.Trigger, y.Status, y.Error, *f.calls)
		}
	}
}

// A manual or push trigger of main runs only what is on main: an unmerged
// feature commit is refused with the reason, and nothing is recorded.
func TestDeployBranchRunsOnlyItsOwnCommits(t *testing.T) {
	f := newPRFixture(t)
	ctx := context.Background()
	for _, kind := range []string{TriggerManual, TriggerPush} {
		_, err := f.e.Run(ctx, Trigger{Kind: kind, Project: f.project, Repo: f.repo, Branch: "main", Commit: f.pr})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "is not on branch main") {
			t.Fatalf("%s of an unmerged commit as main: %v", kind, err)
		}
	}
	if xs, _ := f.e.Store.ListExecutions(ctx, f.project, 10); len(xs) != 0 || len(*f.calls) != 0 {
		t.Fatalf("a refused trigger recorded %d executions, deployed %v", len(xs), *f.calls)
	}
	// Its own head runs, and deploys.
	x, err := f.e.Run(ctx, Trigger{Kind: TriggerManual, Project: f.project, Repo: f.repo, Branch: "main", Commit: f.main})
	if err != nil || x.Status != "succeeded" || len(*f.calls) != 1 {
		t.Fatalf("main at its head: %v %s %s, deploys %v\n%s", err, x.Status, x.Error, *f.calls, f.out)
	}
}

// A trusted command's background process is ended when the command ends:
// the whole process group goes.
func TestHostCommandLeavesNoProcessBehind(t *testing.T) {
	e, _, out := newEngine(t)
	project := "bg-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	pidFile := filepath.Join(t.TempDir(), "bg.pid")
	yaml := fmt.Sprintf(`version: 1
project: %s
services:
  hello: { build: { context: hello }, port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18490 } }
pipeline:
  stages:
    - name: bg
      actions:
        - { name: leave, kind: command, commands: ["sleep 300 & echo $! > %s; echo left"] }
`, project, pidFile)
	repo, commit := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": yaml, "hello/Dockerfile": "FROM scratch\n"})
	start := time.Now()
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit})
	if err != nil || x.Status != "succeeded" {
		t.Fatalf("%v %s %s\n%s", err, x.Status, x.Error, out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the run waited %s for its background process", d)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !proc.Alive(pid) {
			return // gone, or a zombie waiting for its reaper
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background process %d still runs after the execution ended", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A push to a branch that the daemon's pipeline.trusted_branches leaves out
// (a collaborator's feature branch) is the pull request's attack again: its
// cutover.yaml prints the secret and deploys, its ci.sh looks for secrets,
// the host's network and the Docker socket. It runs as a pull request does:
// under the default branch's definition, confined, without secrets, never
// deploying. Without trusted_branches the same push is trusted, and its own
// definition runs: the setting is what stops it.
func TestPushToAnUntrustedBranchRunsLikeAPullRequest(t *testing.T) {
	f := newPRFixture(t)
	ctx := context.Background()
	trusted, err := config.Parse("cutover.yaml", []byte(fmt.Sprintf(trustedConfig, f.project)+"  trusted_branches: [main, \"release/*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.e.Trusted = trusted
	x, err := f.e.Run(ctx, Trigger{Kind: TriggerPush, Project: f.project, Repo: f.repo, Branch: "feature", Commit: f.pr})
	if err != nil {
		t.Fatal(err)
	}
	text := f.storedText(t, x)
	if x.Status != "succeeded" || x.Trigger != TriggerPush {
		t.Fatalf("push to feature: %s %s (%s)\n%s", x.Status, x.Error, x.Trigger, f.out)
	}
	var stages []StageState
	_ = json.Unmarshal(x.Stages, &stages)
	if len(stages) != 2 || stages[0].Name != "build" || stages[1].Name != "production" || stages[1].Status != StatusSkipped ||
		stages[1].Reason != "untrusted branch feature does not deploy (it is not among pipeline.trusted_branches)" {
		t.Fatalf("the default branch's stages must run, production skipped: %+v", stages)
	}
	if len(*f.calls) != 0 {
		t.Fatalf("an untrusted branch deployed: %v", *f.calls)
	}
	for _, want := range []string{"untrusted branch feature: running the pipeline definition of the default branch at " + f.main[:7], "token=[]", "daemon=[]", "NET-BLOCKED", "SOCKET-ABSENT"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, bad := range []string{"stolen", "NET-REACHED", "SOCKET-FOUND", "daemon-only-value-4711"} {
		if strings.Contains(text, bad) {
			t.Errorf("log holds %q", bad)
		}
	}
	if l := leaks(text, prToken); len(l) > 0 {
		t.Errorf("the secret leaked: %v", l)
	}
	if f.hits.Load() != 0 {
		t.Errorf("the untrusted branch reached the host's network: %d requests", f.hits.Load())
	}
	out, err := exec.Command("docker", "images", "--format", "{{.Tag}}", "--filter", "label=dev.cutover.project="+f.project).Output()
	if err != nil {
		t.Fatal(err)
	}
	if tags := strings.Fields(string(out)); slices.Contains(tags, "latest") || slices.Contains(tags, "feature") || slices.Contains(tags, f.pr) ||
		!slices.Contains(tags, "untrusted-"+f.pr) {
		t.Fatalf("untrusted branch image tags %v", tags)
	}
	if t.Failed() {
		t.Fatalf("stored:\n%s", text)
	}

	// main is trusted: its push deploys.
	if y, err := f.e.Run(ctx, Trigger{Kind: TriggerPush, Project: f.project, Repo: f.repo, Branch: "main", Commit: f.main}); err != nil || y.Status != "succeeded" || len(*f.calls) != 1 {
		t.Fatalf("push to main: %v %s %s, deploys %v", err, y.Status, y.Error, *f.calls)
	}

	// Without trusted_branches, the same push runs its own definition.
	trusted.Pipeline.TrustedBranches = nil
	z, err := f.e.Run(ctx, Trigger{Kind: TriggerManual, Project: f.project, Repo: f.repo, Branch: "feature", Commit: f.pr})
	if err != nil {
		t.Fatal(err)
	}
	if text := f.storedText(t, z); !strings.Contains(text, "stolen=") {
		t.Fatalf("with every branch trusted, the branch's own definition should have run (the test shows nothing otherwise):\n%s", text)
	}
}

// `cutover retry` of an untrusted branch's execution runs on an engine
// without the daemon's configuration (a foreground engine: no Trusted), so
// the branch was trusted again: its own cutover.yaml ran, printed the
// secret and deployed. A retried untrusted run stays untrusted, as a
// retried pull request stays a pull request.
func TestAttackRetryOfAnUntrustedBranchRunsTrusted(t *testing.T) {
	f := newPRFixture(t)
	ctx := context.Background()
	trusted, err := config.Parse("cutover.yaml", []byte(fmt.Sprintf(trustedConfig, f.project)+"  trusted_branches: [main]\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.e.Trusted = trusted
	x, err := f.e.Run(ctx, Trigger{Kind: TriggerPush, Project: f.project, Repo: f.repo, Branch: "feature", Commit: f.pr})
	if err != nil || x.Status != "succeeded" {
		t.Fatalf("push to feature: %v %s %s", err, x.Status, x.Error)
	}
	f.e.Trusted = nil // as release.Manager.Engine, which `cutover retry` runs on
	for _, stage := range []string{"", "build"} {
		rt, err := RetryTrigger(x, stage)
		if err != nil {
			t.Fatal(err)
		}
		y, err := f.e.Run(ctx, rt)
		if err != nil {
			t.Fatal(err)
		}
		text := f.storedText(t, y)
		if strings.Contains(text, "stolen") || len(*f.calls) != 0 || len(leaks(text, prToken)) > 0 {
			t.Fatalf("retry (stage %q) of the untrusted branch's execution ran trusted: deploys %v\n%s", stage, *f.calls, text)
		}
		if !strings.Contains(text, "untrusted branch feature: running the pipeline definition of the default branch") {
			t.Errorf("retry (stage %q): log lacks the untrusted reading:\n%s", stage, text)
		}
	}
}
