package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// An untrusted run (an untrusted branch's push, a pull request into an
// untrusted base) takes the default branch's definition, which the daemon
// acts on in part (pipeline.commit_status: the URL it sends a variable of
// its own environment to as a token). When pipeline.trusted_branches
// leaves the default branch out (main and develop trusted, the repository's default
// branch dev), that definition is anyone's who may push dev: its
// commit_status named their server and the daemon's webhook secret, and
// the daemon sent it there.
func TestAttackUntrustedDefaultBranchDefinitionIsNotTrusted(t *testing.T) {
	good, attacker := newStatusServer(t), newStatusServer(t)
	project := "cs-default"
	mainYAML := fmt.Sprintf(statusProject, project, good.URL, "true")
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": mainYAML})
	testenv.Git(t, repo, "checkout", "-qb", "dev") // HEAD: the default branch is dev
	testenv.Replace(t, filepath.Join(repo, "cutover.yaml"), good.URL, attacker.URL,
		"target_url:", "token_env: CUTOVER_GITHUB_WEBHOOK_SECRET, target_url:")
	testenv.Git(t, repo, "commit", "-qam", "report elsewhere, with the daemon's webhook secret")
	head := testenv.Git(t, repo, "rev-parse", "HEAD")

	trusted, err := config.Parse("cutover.yaml", []byte(mainYAML+"  trusted_branches: [main, develop]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := statusEngine(t)
	e.Trusted = trusted
	e.Getenv = daemonEnv
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "dev", Base: "dev", Commit: head, PR: 7})
	t.Logf("execution %s: %s (%v)", x.Status, x.Error, err)
	if got := attacker.requests(); len(got) != 0 {
		t.Fatalf("the untrusted default branch's commit_status received %d statuses: %+v", len(got), got)
	}
	// With a trusted default branch, its definition is taken as before.
	testenv.Git(t, repo, "checkout", "-q", "main")
	x, err = e.Run(context.Background(), Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "dev", Base: "dev", Commit: head, PR: 8})
	t.Logf("execution %s: %s (%v)", x.Status, x.Error, err)
	if got := good.requests(); len(got) == 0 || got[0]["auth"] != "Bearer ghp_statusToken123" || len(attacker.requests()) != 0 {
		t.Fatalf("with main the default branch: statuses %+v on main's API, %d on the attacker's", got, len(attacker.requests()))
	}
}
