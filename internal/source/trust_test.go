package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestOnBranchAcceptsTheHeadAndItsAncestorsOnly(t *testing.T) {
	ctx := context.Background()
	repo, first := testenv.GitRepo(t, "main", map[string]string{"a.txt": "1"})
	_ = os.WriteFile(filepath.Join(repo, "a.txt"), []byte("2"), 0o644)
	testenv.Git(t, repo, "commit", "-qam", "second")
	head := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-qb", "feature")
	_ = os.WriteFile(filepath.Join(repo, "a.txt"), []byte("feature"), 0o644)
	testenv.Git(t, repo, "commit", "-qam", "unmerged")
	feature := testenv.Git(t, repo, "rev-parse", "HEAD")
	for _, repoAddr := range []string{repo, "file://" + repo} { // a local path, and through git's transport as for a remote
		for _, ok := range []string{head, first, first[:10]} {
			if err := OnBranch(ctx, repoAddr, "main", ok); err != nil {
				t.Errorf("%s: %s is on main: %v", repoAddr, ok, err)
			}
		}
		err := OnBranch(ctx, repoAddr, "main", feature)
		if !errors.Is(err, ErrNotOnBranch) || !strings.Contains(err.Error(), "not on branch main") {
			t.Errorf("%s: an unmerged feature commit must be refused, got %v", repoAddr, err)
		}
		if err := OnBranch(ctx, repoAddr, "main", strings.Repeat("ab", 20)); !errors.Is(err, ErrNotOnBranch) {
			t.Errorf("%s: a commit that does not exist must be refused, got %v", repoAddr, err)
		}
	}
	if err := OnBranch(ctx, repo, "nope", head); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing branch: %v", err)
	}
}

func TestReadFileAtReadsOneCommitsVersion(t *testing.T) {
	ctx := context.Background()
	repo, first := testenv.GitRepo(t, "main", map[string]string{"dir/cutover.yaml": "trusted\n"})
	_ = os.WriteFile(filepath.Join(repo, "dir", "cutover.yaml"), []byte("changed\n"), 0o644)
	testenv.Git(t, repo, "commit", "-qam", "change")
	got, err := ReadFileAt(ctx, repo, first, "dir/cutover.yaml")
	if err != nil || string(got) != "trusted\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := ReadFileAt(ctx, repo, first, "../etc/passwd"); err == nil {
		t.Fatal("a path out of the repository must be refused")
	}
	if _, err := ReadFileAt(ctx, repo, first, "missing.yaml"); err == nil {
		t.Fatal("a missing file must be an error")
	}
}
