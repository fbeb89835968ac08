package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

const trustProject = `version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18281 } }
  production: { branch: main, listen: { port: 18283 }, approval: { required: true } }
pipeline:
  stages:
    - name: build
      actions: [{ name: compile, kind: command, commands: ["true"] }]
%s`

// A branch that is not an environment's cannot deploy it by editing its
// own cutover.yaml: the daemon's (trusted) configuration says which branch
// deploys which environment. Refs that are not branches, and an older
// commit of a branch pushed again, are refused before anything runs.
func TestOnlyTheEnvironmentsBranchDeploysIt(t *testing.T) {
	project := "bt-" + strings.ReplaceAll(strings.ToLower(t.Name()[:6]), "_", "")
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": fmt.Sprintf(trustProject, project, "")})
	trusted, err := config.Load(filepath.Join(repo, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	old := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "commit", "-q", "--allow-empty", "-m", "newer")
	// The attacker's branch: a stage with no branches that deploys
	// production straight away, and production said to deploy from it.
	testenv.Git(t, repo, "checkout", "-qb", "feature")
	testenv.Replace(t, filepath.Join(repo, "cutover.yaml"),
		"production: { branch: main,", "production: { branch: feature,",
		`commands: ["true"] }]`, "commands: [\"true\"] }]\n    - name: ship\n      actions: [{ name: go, kind: deploy, environment: production }]")
	testenv.Git(t, repo, "commit", "-qam", "ship myself")
	feature := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-q", "main")

	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	var deployed []string
	e := &Engine{Store: st, Home: t.TempDir(), Trusted: trusted, Getenv: func(string) string { return "" },
		Deploy: func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error) {
			mu.Lock()
			defer mu.Unlock()
			deployed = append(deployed, env)
			return store.Deployment{ID: "d-test", Status: "succeeded"}, nil
		}}
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "feature", Commit: feature})
	if err != nil {
		t.Fatal(err)
	}
	if len(deployed) != 0 || x.Status != store.ExecutionFailed || !strings.Contains(x.Error, "environment production deploys from branch main (the daemon's cutover.yaml); this execution is of branch feature") {
		t.Fatalf("feature's push: %s (%s), deployed %v", x.Status, x.Error, deployed)
	}

	for _, tc := range []struct {
		name string
		t    Trigger
		want string
	}{
		{"pull ref", Trigger{Kind: TriggerManual, Branch: "refs/pull/7/head", Commit: feature}, `"refs/pull/7/head" is not a branch`},
		{"old push", Trigger{Kind: TriggerPush, Branch: "main", Commit: old}, "is not the head of branch main"},
	} {
		tc.t.Project, tc.t.Repo = project, repo
		_, err := e.Run(context.Background(), tc.t)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}
	if xs, _ := st.ListExecutions(context.Background(), project, 10); len(xs) != 1 {
		t.Errorf("refused triggers were recorded: %d executions", len(xs))
	}
}
