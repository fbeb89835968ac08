package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/cutoverdev/cutover/internal/short"
)

// ErrNotOnBranch is wrapped when a commit is neither the head of a branch
// nor one of its ancestors.
var ErrNotOnBranch = errors.New("commit is not on the branch")

// OnBranch returns nil when commit (a full or abbreviated ID) is the head of
// branch in repo or an ancestor of that head (a retry or redeploy of an
// earlier commit), and an error wrapping ErrNotOnBranch that says so
// otherwise. A deploy branch runs only what was merged into it.
func OnBranch(ctx context.Context, repo, branch, commit string) error {
	repo, err := checkRepo(repo)
	if err != nil {
		return err
	}
	head, err := Resolve(ctx, repo, branch)
	if err != nil {
		return err
	}
	if commit == head {
		return nil
	}
	dir := repo
	if !isLocalPath(repo) {
		tmp, err := os.MkdirTemp("", "cutover-onbranch-")
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		defer os.RemoveAll(tmp)
		if _, err := git(ctx, "", "init", "--quiet", "--bare", tmp); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if _, err := git(ctx, tmp, "fetch", "--quiet", "--no-tags", repo, "+refs/heads/"+branch+":refs/heads/"+branch); err != nil {
			return fmt.Errorf("source: fetch branch %s of %s: %w", branch, redact(repo), err)
		}
		dir = tmp
	}
	if !isHex(strings.ToLower(commit)) {
		return fmt.Errorf("source: %q is not a commit ID: %w", commit, ErrNotOnBranch)
	}
	_, err = git(ctx, dir, "merge-base", "--is-ancestor", commit, head)
	if err == nil {
		return nil
	}
	var ge *gitError
	if errors.As(err, &ge) && (ge.code == 1 || ge.code == 128) {
		return fmt.Errorf("commit %s is not on branch %s (its head is %s, and %s is not an ancestor of it): "+
			"merge it into %s first, or run it as a pull request: %w", short.SHA(commit), branch, short.SHA(head), short.SHA(commit), branch, ErrNotOnBranch)
	}
	return fmt.Errorf("source: is %s on %s: %w", short.SHA(commit), branch, err)
}

// ReadFileAt returns the content of file (relative to the repository's
// root, slash-separated) at commit of repo, without a working tree. It is
// how a pull request's trusted pipeline definition is read from its base.
func ReadFileAt(ctx context.Context, repo, commit, file string) ([]byte, error) {
	repo, err := checkRepo(repo)
	if err != nil {
		return nil, err
	}
	file = path.Clean(strings.ReplaceAll(file, "\\", "/"))
	if file == "." || strings.HasPrefix(file, "../") || strings.HasPrefix(file, "/") {
		return nil, fmt.Errorf("source: %q is not a file inside the repository", file)
	}
	tmp, err := os.MkdirTemp("", "cutover-read-")
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := git(ctx, "", "init", "--quiet", "--bare", tmp); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	full, err := fetch(ctx, repo, commit, tmp)
	if err != nil {
		return nil, err
	}
	out, err := git(ctx, tmp, "cat-file", "blob", full+":"+file)
	if err != nil {
		return nil, fmt.Errorf("source: %s at %s of %s: %w", file, short.SHA(full), redact(repo), err)
	}
	return []byte(out), nil
}
