package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// A small repository: one service built FROM scratch (no base image can be
// pulled here), a test action with a JUnit report, a command that exports
// a variable, a deploy stage for develop only, and a secret.
const repoConfig = `version: 1
project: %s
services:
  hello:
    build: { context: hello, commands: ["echo \"built $CUTOVER_BUILD_ID\" > hello.txt"] }
    port: 8080
environments:
  staging: { branch: develop, listen: { port: 18080 } }
pipeline:
  secrets: { names: [API_TOKEN] }
  stages:
    - name: build
      actions:
        - { name: hello, kind: build, service: hello, commands: ["echo lint ok"] }
        - name: unit
          kind: test
          commands: ["echo using $API_TOKEN", "echo found cutover_Q7ZQ7ZQ7ZQ7ZQ7ZQ in a file", "mkdir -p reports && printf '<testsuite name=\"unit\"><testcase name=\"a\"/><testcase name=\"b\"><skipped/></testcase></testsuite>' > reports/unit.xml"]
          reports: ["reports/*.xml"]
        - { name: version, kind: command, run_order: 2, commands: ["echo VERSION=1.2.$CUTOVER_SHORT_SHA >> $CUTOVER_EXPORT"], export: [VERSION] }
    - name: deploy-staging
      branches: [develop]
      actions:
        - { name: deploy, kind: deploy, environment: staging }
`

func gitRepo(t *testing.T, project string) (dir, commit string) {
	t.Helper()
	return testenv.GitRepo(t, "develop", map[string]string{
		"cutover.yaml":     strings.Replace(repoConfig, "%s", project, 1),
		"hello/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
	})
}

type deployCall struct {
	env    string
	images map[string]string
	owner  string // what a Deployer records as the deployment's owner (DeployOwner)
}

func newEngine(t *testing.T) (*Engine, *[]deployCall, *testenv.Buffer) {
	testenv.RequireDocker(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	var calls []deployCall
	var mu sync.Mutex
	out := &testenv.Buffer{}
	e := &Engine{
		Store: st, Runtime: rt, Home: t.TempDir(), Poll: 20 * time.Millisecond,
		Output: out,
		Getenv: func(k string) string {
			if k == "API_TOKEN" {
				return "s3cr3t-value"
			}
			return os.Getenv(k)
		},
		// The deployment controller is tested on its own and end to end with
		// the real platform; here a recorder stands in for it, to test the
		// pipeline's decisions (what deploys, with which images).
		Deploy: func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, deployCall{env, images, DeployOwner(ctx, "root (pid 42 on vm)")})
			return store.Deployment{ID: "d-test", Status: "succeeded"}, nil
		},
	}
	return e, &calls, out
}

func removeImages(t *testing.T, project string) {
	t.Cleanup(func() { testenv.RemoveProject(project) })
}

func TestPushToDevelopBuildsTestsAndDeploysWithSecretsMasked(t *testing.T) {
	e, calls, out := newEngine(t)
	project := "pl-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, commit := gitRepo(t, project)
	exec, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit, Author: "octocat"})
	if err != nil {
		t.Fatal(err)
	}
	if exec.Status != "succeeded" {
		t.Fatalf("execution %s: %s\n%s", exec.Status, exec.Error, out)
	}
	// The webhook's sender, not the daemon's OS user, is the deployment's actor.
	if want := "octocat (pid 42 on vm as root, push), execution " + exec.ID; len(*calls) != 1 || (*calls)[0].owner != want {
		t.Fatalf("deployment owner %+v, want %q", *calls, want)
	}
	var stages []StageState
	if err := json.Unmarshal(exec.Stages, &stages); err != nil {
		t.Fatal(err)
	}
	unit := stages[0].Actions[1]
	if unit.Status != StatusSucceeded || unit.Summary != "1 passed, 0 failed, 1 skipped in 1 suites" {
		t.Fatalf("unit action %+v", unit)
	}
	if v := stages[0].Actions[2].Outputs["VERSION"]; v != "1.2."+commit[:7] {
		t.Fatalf("exported VERSION = %q", v)
	}
	if len(*calls) != 1 || (*calls)[0].env != "staging" || !strings.HasPrefix((*calls)[0].images["hello"], "sha256:") {
		t.Fatalf("deploy calls %+v", *calls)
	}
	logs, err := e.Store.ListLogs(context.Background(), exec.ID, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, l := range logs {
		all += l.Line + "\n"
	}
	if strings.Contains(all, "s3cr3t-value") || strings.Contains(out.String(), "s3cr3t-value") {
		t.Fatal("a secret value reached the log")
	}
	if !strings.Contains(all, "using ***") {
		t.Fatalf("masked secret line missing from the log:\n%s", all)
	}
	// A credential no secret names (a cutover token) is stored masked too.
	if strings.Contains(all, "Q7ZQ7ZQ7") || !strings.Contains(all, "found cutover_*** in a file") {
		t.Fatalf("a cutover token in a command's output was stored as it was:\n%s", all)
	}
	if _, err := os.Stat(filepath.Join(e.Home, "workspaces", exec.ID)); !os.IsNotExist(err) {
		t.Fatalf("workspace not removed: %v", err)
	}
}

// pushRecorder stands in for the Docker push to the registry (tested with
// the real registry in internal/runtime/docker) to count what is pushed.
type pushRecorder struct {
	mu   sync.Mutex
	refs []string
}

func (p *pushRecorder) Push(ctx context.Context, ref string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refs = append(p.refs, ref)
	return "sha256:" + strings.Repeat("0", 64), nil
}

func TestPullRequestNeverDeploysAndFailedTestStopsBeforeDeploy(t *testing.T) {
	e, calls, out := newEngine(t)
	pushes := &pushRecorder{}
	e.Registry, e.Pusher = "127.0.0.1:1", pushes
	project := "pr-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, commit := gitRepo(t, project)
	exec, err := e.Run(context.Background(), Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "develop", Commit: commit, PR: 7})
	if err != nil {
		t.Fatal(err)
	}
	if exec.Status != "succeeded" || len(*calls) != 0 {
		t.Fatalf("pull request: %s %s, deploys %v\n%s", exec.Status, exec.Error, *calls, out)
	}
	pushed := len(pushes.refs)
	if pushed == 0 {
		t.Fatal("a successful build stage pushes its images")
	}

	// A failing unit test fails the execution and nothing deploys.
	cfg, _ := os.ReadFile(filepath.Join(repo, "cutover.yaml"))
	bad := strings.Replace(string(cfg), `commands: ["echo using $API_TOKEN",`, `commands: ["echo failing; exit 3",`, 1)
	_ = os.WriteFile(filepath.Join(repo, "cutover.yaml"), []byte(bad), 0o644)
	testenv.Git(t, repo, "commit", "-qam", "break the tests")
	exec, err = e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: testenv.Git(t, repo, "rev-parse", "HEAD")})
	if err != nil {
		t.Fatal(err)
	}
	if exec.Status != "failed" || !strings.Contains(exec.Error, "exit code 3") || len(*calls) != 0 {
		t.Fatalf("failing test: %s %q, deploys %v", exec.Status, exec.Error, *calls)
	}
	if len(pushes.refs) != pushed {
		t.Fatalf("a failing unit test must stop before any push, but %v were pushed", pushes.refs[pushed:])
	}
}

// busyboxImage builds a FROM scratch image with Debian's static busybox as
// its shell (no image can be pulled here).
func busyboxImage(t *testing.T, rt *docker.Runtime) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed for this test (apt-get install busybox-static): %v", err)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"), 0o644)
	tag := "cutover-test/busybox:" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	img, err := rt.Build(context.Background(), docker.BuildRequest{ContextDir: dir, Tags: []string{tag}, Labels: map[string]string{"dev.cutover.project": "cutover-test-busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveImages(img.ID) })
	return tag
}

func TestCommandsRunInsideAContainerImage(t *testing.T) {
	e, _, out := newEngine(t)
	image := busyboxImage(t, e.Runtime)
	project := "im-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, _ := gitRepo(t, project)
	cfg, _ := os.ReadFile(filepath.Join(repo, "cutover.yaml"))
	y := strings.Replace(string(cfg), `        - { name: version, kind: command, run_order: 2, commands: ["echo VERSION=1.2.$CUTOVER_SHORT_SHA >> $CUTOVER_EXPORT"], export: [VERSION] }`,
		`        - { name: version, kind: command, run_order: 2, image: `+image+`, commands: ["echo inside $(uname -s) at $(pwd) as $CUTOVER_SHORT_SHA", "echo VERSION=9.$CUTOVER_SHORT_SHA >> $CUTOVER_EXPORT"], export: [VERSION] }`, 1)
	_ = os.WriteFile(filepath.Join(repo, "cutover.yaml"), []byte(y), 0o644)
	testenv.Git(t, repo, "commit", "-qam", "in a container")
	commit := testenv.Git(t, repo, "rev-parse", "HEAD")
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "develop", Commit: commit})
	if err != nil || x.Status != "succeeded" {
		t.Fatalf("%v %s %s\n%s", err, x.Status, x.Error, out)
	}
	if !strings.Contains(out.String(), "inside Linux at /workspace as "+commit[:7]) {
		t.Fatalf("the command did not run in the image's container:\n%s", out)
	}
	var stages []StageState
	_ = json.Unmarshal(x.Stages, &stages)
	if v := stages[0].Actions[2].Outputs["VERSION"]; v != "9."+commit[:7] {
		t.Fatalf("export from the container: %q", v)
	}
}
