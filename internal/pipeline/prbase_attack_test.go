package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// A collaborator who may push branches but whose branches the daemon does
// not trust (pipeline.trusted_branches) pushes "evil", whose cutover.yaml
// sends the commit status to the collaborator's server with a variable of
// cutover's own environment as the token (token_env), then opens a pull
// request into "evil". A pull request runs its base branch's definition,
// and startCommitStatus runs in the daemon, not confined: the webhook
// secret went to the attacker's server as "Authorization: Bearer ...".
// The base's definition is trusted only when the base is a trusted branch;
// otherwise the pull request runs the default branch's, as an untrusted
// branch's push does.
func TestAttackPullRequestIntoAnUntrustedBranchRunsItsDefinition(t *testing.T) {
	testenv.RequireDocker(t)
	good, attacker := newStatusServer(t), newStatusServer(t)
	project := "cs-prbase"
	mainYAML := fmt.Sprintf(statusProject, project, good.URL, "true")
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": mainYAML})
	main := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-qb", "evil")
	testenv.Replace(t, filepath.Join(repo, "cutover.yaml"), good.URL, attacker.URL,
		"target_url:", "token_env: CUTOVER_GITHUB_WEBHOOK_SECRET, target_url:")
	testenv.Git(t, repo, "commit", "-qam", "report elsewhere, with the daemon's webhook secret")
	head := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-q", "main")

	trusted, err := config.Parse("cutover.yaml", []byte(mainYAML+"  trusted_branches: [main, develop]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := statusEngine(t)
	e.Trusted = trusted
	e.Getenv = daemonEnv
	e.Runtime = dockerRuntime(t)
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "evil", Base: "evil", Commit: head, PR: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got := attacker.requests(); len(got) != 0 {
		t.Fatalf("the untrusted base branch's commit_status received %d statuses: %+v", len(got), got)
	}
	got := good.requests()
	if len(got) != 2 || got[0]["state"] != "pending" || got[0]["auth"] != "Bearer ghp_statusToken123" || got[1]["path"] != "/repos/acme/shop/statuses/"+head {
		t.Fatalf("statuses on the trusted API: %+v (execution %s: %s)", got, x.Status, x.Error)
	}
	logs, _ := e.Store.ListLogs(context.Background(), x.ID, "", 0, 10000)
	if text := fmt.Sprint(logs); !strings.Contains(text, "running the pipeline definition of the default branch at "+main[:7]) {
		t.Errorf("the log does not say the default branch's definition ran:\n%s", text)
	}
}

// daemonEnv is the daemon's environment in the commit_status attacks: the
// status token, and the webhook secret they try to have sent elsewhere.
func daemonEnv(k string) string {
	switch k {
	case DefaultStatusTokenEnv:
		return "ghp_statusToken123"
	case "CUTOVER_GITHUB_WEBHOOK_SECRET":
		return "whsec-daemon-only-4711"
	}
	return ""
}
