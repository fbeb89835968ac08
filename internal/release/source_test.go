package release

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestWorkingTreeSourceNamesTheCommit: a revision built from a git checkout
// names its commit, and says so when files were changed since.
func TestWorkingTreeSourceNamesTheCommit(t *testing.T) {
	ctx := context.Background()
	if got := WorkingTreeSource(ctx, t.TempDir()); got != "working tree" {
		t.Errorf("outside git: %q", got)
	}
	dir, commit := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": "a\n"})
	if got := WorkingTreeSource(ctx, dir); got != "commit "+commit[:12] {
		t.Errorf("clean checkout: %q, want commit %s", got, commit[:12])
	}
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := WorkingTreeSource(ctx, dir); got != "commit "+commit[:12]+" + uncommitted changes" {
		t.Errorf("changed checkout: %q", got)
	}
}

// `cutover run` in a repository without a commit says so, not that the
// repository is on a detached HEAD (found by a newcomer's audit).
func TestLocalTriggerBeforeTheFirstCommit(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("git", "-C", dir, "init", "-q", "-b", "main").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	file := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(file, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LocalTrigger(context.Background(), file, TriggerOptions{Kind: pipeline.TriggerManual})
	if err == nil || !strings.Contains(err.Error(), "has no commit yet") {
		t.Fatalf("a run before the first commit: %v", err)
	}
}
