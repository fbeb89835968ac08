package release

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
