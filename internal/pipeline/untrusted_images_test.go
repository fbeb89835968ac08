package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// Two services: a's image holds what its trusted build fetched (here a
// file); b is built after it.
const twoServicesConfig = `version: 1
project: %s
services:
  a: { build: { context: a }, port: 8080, route: { path_prefix: /a } }
  b: { build: { context: b }, port: 8081, route: { path_prefix: /b } }
environments:
  production: { branch: main, listen: { port: 18481 } }
pipeline:
  stages:
    - name: first
      actions: [{ name: a, kind: build, service: a }]
    - name: second
      actions: [{ name: b, kind: build, service: b }]
`

// A trusted push to main builds cutover/PROJECT-a:latest, whose build
// copied a private file. A pull request changes b's Dockerfile to build FROM
// that image (or to COPY from it): the engine's classic builder takes it,
// and b's image (which the pull request's later steps may print) held main's
// file. The pull request's build of b is refused, naming the file and line;
// a pull request whose b builds FROM the image its own run built of a
// (pr-N) builds.
func TestAttackPullRequestReadsTheTrustedRunsImage(t *testing.T) {
	e, _, out := newEngine(t)
	project := "im-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	t.Cleanup(func() {
		// b's images are children of a's, and the builder labels an image
		// a step at a time: remove the intermediate images too, children
		// first, before removeImages.
		for range 5 {
			out, _ := exec.Command("docker", "image", "ls", "-aq", "--filter", "label=dev.cutover.project="+project).Output()
			ids := strings.Fields(string(out))
			if len(ids) == 0 {
				return
			}
			testenv.RemoveImages(ids...)
		}
	})
	repo, main := testenv.GitRepo(t, "main", map[string]string{
		"cutover.yaml":   fmt.Sprintf(twoServicesConfig, project),
		"a/Dockerfile":   "FROM scratch\nCOPY private /private\n",
		"a/private":      "fetched-with-credentials-" + project + "\n",
		"b/Dockerfile":   "FROM scratch\nCOPY Dockerfile /\n",
		"b/.placeholder": "\n",
	})
	ctx := context.Background()
	x, err := e.Run(ctx, Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: main})
	if err != nil || x.Status != "succeeded" {
		t.Fatalf("trusted push: %v %s %s\n%s", err, x.Status, x.Error, out)
	}
	trusted := "cutover/" + project + "-a:latest"

	const ownPR = 42
	for i, c := range []struct {
		name, dockerfile, want string
	}{
		{"FROM the trusted image", "FROM " + trusted + "\n",
			"b/Dockerfile line 1: FROM " + trusted + ": the image was built by cutover (project " + project + ")"},
		{"COPY --from the trusted image", "FROM scratch\nCOPY --from=" + trusted + " /private /stolen\n",
			"b/Dockerfile line 2: COPY --from=" + trusted + ": the image was built by cutover (project " + project + ")"},
		{"FROM its own image", "FROM cutover/" + project + "-a:pr-" + fmt.Sprint(ownPR) + "\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			branch := fmt.Sprintf("pr-%d", i)
			testenv.Git(t, repo, "checkout", "-qb", branch, main)
			if err := os.WriteFile(filepath.Join(repo, "b", "Dockerfile"), []byte(c.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			testenv.Git(t, repo, "commit", "-qam", c.name)
			pr := testenv.Git(t, repo, "rev-parse", "HEAD")
			testenv.Git(t, repo, "checkout", "-q", "main")
			x, err := e.Run(ctx, Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: branch, Base: "main", Commit: pr, PR: 40 + i})
			if err != nil {
				t.Fatal(err)
			}
			var stages []StageState
			_ = json.Unmarshal(x.Stages, &stages)
			if c.want == "" {
				if x.Status != "succeeded" {
					t.Fatalf("pull request: %s %s\n%s", x.Status, x.Error, out)
				}
				return
			}
			if x.Status != "failed" || len(stages) != 2 || stages[0].Status != StatusSucceeded || !strings.Contains(stages[1].Actions[0].Summary, c.want) {
				t.Fatalf("pull request: %s %s, stages %+v\nwant b's build refused with %q", x.Status, x.Error, stages, c.want)
			}
		})
	}
}

// A retry from a later stage builds nothing before it: the images its
// skipped stages built in the retried execution are its own. A pull
// request whose b builds FROM its own a (pr-N) built; retried from b's
// stage, b's build was refused, a's image counting as another run's. Now it
// builds. The images of a run that was trusted stay foreign to a retry that
// runs untrusted (main no longer among pipeline.trusted_branches): b FROM
// main's a is refused, as in a pull request.
func TestRetryFromALaterStageReadsItsOwnImages(t *testing.T) {
	e, _, out := newEngine(t)
	project := "ri-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	const pr = 43
	ownA := "cutover/" + project + "-a:pr-" + fmt.Sprint(pr)
	repo, main := testenv.GitRepo(t, "main", map[string]string{
		"cutover.yaml":   fmt.Sprintf(twoServicesConfig, project),
		"a/Dockerfile":   "FROM scratch\nCOPY private /private\n",
		"a/private":      "fetched-with-credentials-" + project + "\n",
		"b/Dockerfile":   "FROM " + ownA + "\n",
		"b/.placeholder": "\n",
	})
	ctx := context.Background()
	run := func(what string, tr Trigger) store.Execution {
		t.Helper()
		x, err := e.Run(ctx, tr)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return x
	}
	x := run("pull request", Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "feature", Base: "main", Commit: main, PR: pr})
	if x.Status != "succeeded" {
		t.Fatalf("pull request: %s %s\n%s", x.Status, x.Error, out)
	}
	rt, err := RetryTrigger(x, "second")
	if err != nil {
		t.Fatal(err)
	}
	if y := run("retry", rt); y.Status != "succeeded" {
		t.Fatalf("the pull request's retry from stage second: %s %s; want b built FROM its own run's %s\n%s", y.Status, y.Error, ownA, out)
	}

	// main's trusted push, then retried from stage second once main is no
	// longer trusted: b FROM main's own a is another run's image.
	testenv.Git(t, repo, "checkout", "-q", "main")
	if err := os.WriteFile(filepath.Join(repo, "b", "Dockerfile"), []byte("FROM cutover/"+project+"-a:latest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo, "commit", "-qam", "b from main's a")
	head := testenv.Git(t, repo, "rev-parse", "HEAD")
	x = run("push", Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: head})
	if x.Status != "succeeded" {
		t.Fatalf("trusted push: %s %s\n%s", x.Status, x.Error, out)
	}
	// release, the trusted branch, is at main's head: the definition an
	// untrusted run takes (the default branch's) is a trusted branch's.
	testenv.Git(t, repo, "branch", "release", head)
	daemons := strings.Replace(fmt.Sprintf(twoServicesConfig, project), "branch: main", "branch: release", 1) + "  trusted_branches: [release]\n"
	trusted, err := config.Parse("cutover.yaml", []byte(daemons))
	if err != nil {
		t.Fatal(err)
	}
	e.Trusted = trusted
	if rt, err = RetryTrigger(x, "second"); err != nil {
		t.Fatal(err)
	}
	y := run("untrusted retry", rt)
	var stages []StageState
	_ = json.Unmarshal(y.Stages, &stages)
	want := "b/Dockerfile line 1: FROM cutover/" + project + "-a:latest: the image was built by cutover (project " + project + ")"
	if y.Status != "failed" || len(stages) != 2 || !strings.Contains(stages[1].Actions[0].Summary, want) {
		t.Fatalf("retry of main's trusted run once main is untrusted: %s %s, stages %+v\nwant b's build refused with %q", y.Status, y.Error, stages, want)
	}
}
