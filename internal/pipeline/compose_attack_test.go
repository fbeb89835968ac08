package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// The trusted definition: the repository's ci.sh (code a pull request
// controls), then integration on the base's docker-compose.yml, then a
// command that shows what the workspace holds.
const composeTrustedConfig = `version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  production: { branch: main, listen: { port: 18481 } }
pipeline:
  stages:
    - name: test
      actions:
        - { name: ci, kind: command, commands: ["sh ci.sh"] }
    - name: integration
      actions:
        - { name: compose, kind: integration, compose: docker-compose.yml, exit_code_from: tester }
    - name: after
      actions:
        - { name: show, kind: command, commands: ["cat loot/fetched.txt 2>/dev/null || echo NO-LOOT"] }
`

// The base's tester reads the workspace through a relative bind mount: it
// passes only if the compose file is resolved in the workspace.
const composeBase = `services:
  tester:
    image: cutover/sandbox:busybox
    command: ["sh", "-c", "grep -q 'from the workspace' /data/hello.txt"]
    volumes: ["./data:/data:ro"]
`

// The pull request's ci.sh rewrites docker-compose.yml in the workspace:
// its tester runs an image a trusted build made and copies what that build
// put in it into the workspace.
const composeHostileCI = `mkdir -p loot && chmod 777 loot
cat > docker-compose.yml <<'Y'
services:
  tester:
    image: %s
    command: ["sh", "-c", "cp /fetched.txt /loot/"]
    volumes: ["./loot:/loot"]
Y
echo rewrote the compose file
`

// A pull request's integration runs the base branch's compose file: the
// workspace's copy is replaced by the base's when the run starts. But the
// pull request's own code runs before integration (ci.sh here; a build's
// commands, npm test) in the same workspace and wrote its own compose file,
// which integration then read: it ran an image of a trusted build (what it
// fetched with the network and credentials a pull request has not) and
// copied its content out. Integration reads the base's compose file, not
// the workspace's copy.
func TestAttackPullRequestRewritesTheComposeFileBeforeIntegration(t *testing.T) {
	e, _, _ := newEngine(t)
	ctx := context.Background()
	project := "cx-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	if _, err := (&run{e: e}).sandbox(ctx); err != nil {
		t.Fatal(err)
	}
	// An image of a trusted build of this project, holding what it fetched.
	trusted := "cutover/" + project + "-backend:latest"
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "fetched.txt"), []byte("trusted-fetched-4711\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM cutover/sandbox:busybox\nCOPY fetched.txt /fetched.txt\nLABEL dev.cutover.project="+project+"\n"), 0o644))
	if out, err := exec.Command("docker", "build", "-q", "-t", trusted, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}

	repo, _ := testenv.GitRepo(t, "main", map[string]string{
		"cutover.yaml":       fmt.Sprintf(composeTrustedConfig, project),
		"ci.sh":              "echo trusted ci\n",
		"docker-compose.yml": composeBase,
		"data/hello.txt":     "hello from the workspace\n",
	})
	testenv.Git(t, repo, "checkout", "-qb", "feature")
	must(os.WriteFile(filepath.Join(repo, "ci.sh"), []byte(fmt.Sprintf(composeHostileCI, trusted)), 0o644))
	testenv.Git(t, repo, "commit", "-qam", "innocent change")
	pr := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-q", "main")

	x, err := e.Run(ctx, Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "feature", Base: "main", Commit: pr, PR: 5})
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := e.Store.ListLogs(ctx, x.ID, "", 0, 0)
	var b strings.Builder
	for _, l := range logs {
		b.WriteString(l.Action + " " + l.Line + "\n")
	}
	text := b.String()
	if strings.Contains(text, "trusted-fetched-4711") || !strings.Contains(text, "NO-LOOT") {
		t.Fatalf("the pull request's own compose file ran the trusted build's image (%s %s):\n%s", x.Status, x.Error, text)
	}
	if x.Status != "succeeded" || !strings.Contains(text, "rewrote the compose file") {
		t.Fatalf("execution %s %s:\n%s", x.Status, x.Error, text)
	}
}
