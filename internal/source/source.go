// Package source gives a pipeline execution its code: it resolves a branch of
// a git repository to a commit, and checks that exact commit out into a fresh
// workspace that the execution owns and removes when it ends.
//
// A repository is a local path or any URL git understands (https, ssh, file).
// Everything goes through the git executable, so the user's credential
// helpers, ssh keys and proxies apply; git never prompts (a repository that
// needs credentials the environment lacks fails at once), and every command is
// bounded by CommandTimeout and the caller's context. Credentials embedded in
// URLs (https://TOKEN@host/...) never appear in errors.
//
// Contract for the pipeline executor:
//
//   - Resolve(repo, branch) → commit, when the trigger names a branch only.
//   - Checkout(repo, commit, dir) → Workspace, once per execution, into a dir
//     that does not exist yet (one per execution ID). It fetches only that
//     commit and its parents, so it is cheap for large histories, and works
//     for commits that are no branch head.
//   - Workspace.Remove() when the execution ends, whatever the outcome; it may
//     be called again.
//
// All functions are safe for concurrent use with distinct dirs.
package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/short"
)

// ErrNotFound is wrapped when the repository has no such branch or commit.
var ErrNotFound = errors.New("not found")

// Workspace is a checkout of one commit, in detached HEAD state.
type Workspace struct {
	// Dir is the absolute path of the working tree.
	Dir string `json:"dir"`
	// Repo is the repository it came from, with any credentials redacted.
	Repo string `json:"repo"`
	// Commit is the full commit ID; ShortSHA its first 7 hex digits, as git
	// abbreviates it by default (image tags, display).
	Commit   string `json:"commit"`
	ShortSHA string `json:"short_sha"`
	// Branch is the branch Checkout was given by name, or else the only
	// branch whose head is Commit; empty when that is ambiguous or none is.
	// A caller that knows the trigger's branch sets it itself.
	Branch string `json:"branch,omitempty"`
	// Message is the full commit message: subject, blank line, body.
	Message string `json:"message"`
	// Author is "Name <email>".
	Author string `json:"author"`
	// CommittedAt is the committer date.
	CommittedAt time.Time `json:"committed_at"`
	// ChangedFiles are the paths changed against the first parent (for a
	// merge: what the merge brought in), or all files of a root commit,
	// sorted. A rename lists both the old and the new path.
	ChangedFiles []string `json:"changed_files"`
}

// Subject returns the first line of the commit message.
func (w Workspace) Subject() string {
	subject, _, _ := strings.Cut(w.Message, "\n")
	return subject
}

// Remove deletes the workspace. Removing one already gone is not an error.
func (w Workspace) Remove() error {
	if w.Dir == "" {
		return nil
	}
	if err := os.RemoveAll(w.Dir); err != nil {
		return fmt.Errorf("source: remove workspace %s: %w", w.Dir, err)
	}
	return nil
}

// Resolve returns the commit at the head of branch in repo. branch is a
// branch name ("main"), a full ref ("refs/heads/main", "refs/tags/v1") or
// empty for the repository's default branch (HEAD).
func Resolve(ctx context.Context, repo, branch string) (string, error) {
	repo, err := checkRepo(repo)
	if err != nil {
		return "", err
	}
	refs, err := lsRemote(ctx, repo)
	if err != nil {
		return "", err
	}
	want := "refs/heads/" + branch
	switch {
	case branch == "":
		want = "HEAD"
	case strings.HasPrefix(branch, "refs/"):
		want = branch
	}
	for _, r := range refs {
		if r.name == want {
			return r.commit, nil
		}
	}
	if want == "HEAD" {
		return "", fmt.Errorf("source: repository %s has no default branch (HEAD); name a branch: %w", redact(repo), ErrNotFound)
	}
	return "", fmt.Errorf("source: branch %s not found in %s (branches: %s); push it first or check the name: %w",
		branch, redact(repo), branchList(refs), ErrNotFound)
}

// Checkout fetches commit from repo into dir, which must not exist yet (its
// parent is created if needed), and checks it out. commit is a full or
// abbreviated commit ID, or a branch name (then Branch is set to it). On
// error nothing is left at dir.
func Checkout(ctx context.Context, repo, commit, dir string) (ws Workspace, err error) {
	if repo, err = checkRepo(repo); err != nil {
		return Workspace{}, err
	}
	switch {
	case commit == "":
		return Workspace{}, fmt.Errorf("source: no commit given to check out of %s; pass a commit ID or a branch", redact(repo))
	case dir == "":
		return Workspace{}, errors.New("source: no workspace directory given")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return Workspace{}, fmt.Errorf("source: workspace %s: %w", dir, err)
	}
	if _, err := os.Lstat(dir); err == nil {
		return Workspace{}, fmt.Errorf("source: workspace %s already exists; use a new directory per execution", dir)
	}
	refs, err := lsRemote(ctx, repo)
	if err != nil {
		return Workspace{}, err
	}
	ws = Workspace{Dir: dir, Repo: redact(repo)}
	target := strings.ToLower(commit)
	if sha, ok := lookupBranch(refs, commit); ok {
		target, ws.Branch = sha, commit
	} else if !isHex(target) || len(target) < 4 {
		return Workspace{}, fmt.Errorf("source: %q is neither a commit ID nor a branch of %s (branches: %s): %w",
			commit, ws.Repo, branchList(refs), ErrNotFound)
	}

	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Workspace{}, fmt.Errorf("source: create workspace %s: %w", dir, err)
	}
	if _, err := git(ctx, "", "init", "--quiet", dir); err != nil {
		os.RemoveAll(dir)
		return Workspace{}, fmt.Errorf("source: create workspace %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if ws.Commit, err = fetch(ctx, repo, target, dir); err != nil {
		return Workspace{}, err
	}
	if _, err := git(ctx, dir, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", ws.Commit); err != nil {
		return Workspace{}, fmt.Errorf("source: check out %s of %s in %s: %w", ws.Commit, ws.Repo, dir, err)
	}
	if err := describe(ctx, &ws); err != nil {
		return Workspace{}, err
	}
	if ws.Branch == "" {
		ws.Branch = onlyBranchAt(refs, ws.Commit)
	}
	return ws, nil
}

// checkRepo refuses what git would misread, and makes a local path absolute:
// git runs in the workspace, where a relative path means something else.
func checkRepo(repo string) (string, error) {
	switch {
	case repo == "":
		return "", errors.New("source: no repository given; set the repository path or URL")
	case strings.HasPrefix(repo, "-"):
		// git would read it as an option (--upload-pack=...).
		return "", fmt.Errorf("source: repository %q starts with '-'; write a local path as ./%s", redact(repo), redact(repo))
	case !isLocalPath(repo):
		return repo, nil
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", fmt.Errorf("source: repository %s: %w", repo, err)
	}
	return abs, nil
}

// fetch brings commit (a full or abbreviated ID) with its parents into the
// repository at dir and returns the full ID. A full ID is fetched directly:
// servers allow that for any reachable commit (protocol v2, GitHub, GitLab,
// local paths). An abbreviated one, or a server that refuses ("not our ref"),
// needs the branches and tags fetched whole to find it among them.
func fetch(ctx context.Context, repo, commit, dir string) (string, error) {
	if isFullSHA(commit) {
		// Depth 2: the commit and its parents, for ChangedFiles.
		_, err := git(ctx, dir, "fetch", "--quiet", "--no-tags", "--depth", "2", repo, commit)
		if err == nil {
			return commit, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("source: fetch %s from %s: %w", commit, redact(repo), err)
		}
	}
	_, err := git(ctx, dir, "fetch", "--quiet", "--no-tags", repo,
		"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
	if err != nil {
		return "", fmt.Errorf("source: fetch %s from %s: %w", commit, redact(repo), err)
	}
	out, err := git(ctx, dir, "rev-parse", "--quiet", "--verify", commit+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("source: commit %s not found in %s (not on any branch or tag, or ambiguous); "+
			"push it, or check the ID with `git log`: %w", commit, redact(repo), ErrNotFound)
	}
	return strings.TrimSpace(out), nil
}

// describe fills in what the commit says about itself.
func describe(ctx context.Context, ws *Workspace) error {
	// NUL never occurs in a commit's header fields or message.
	out, err := git(ctx, ws.Dir, "log", "-1", "--format=%H%x00%P%x00%an <%ae>%x00%cI%x00%B", ws.Commit)
	if err != nil {
		return fmt.Errorf("source: read commit %s of %s: %w", ws.Commit, ws.Repo, err)
	}
	f := strings.SplitN(out, "\x00", 5)
	if len(f) != 5 {
		return fmt.Errorf("source: read commit %s of %s: unexpected git log output %q", ws.Commit, ws.Repo, out)
	}
	ws.Commit, ws.Author, ws.Message = f[0], f[2], strings.TrimRight(f[4], "\n")
	ws.ShortSHA = short.SHA(ws.Commit)
	if ws.CommittedAt, err = time.Parse(time.RFC3339, f[3]); err != nil {
		return fmt.Errorf("source: read commit %s of %s: date %q: %w", ws.Commit, ws.Repo, f[3], err)
	}
	var files string
	if parents := strings.Fields(f[1]); len(parents) > 0 {
		files, err = git(ctx, ws.Dir, "diff-tree", "-r", "-z", "--name-only", "--no-commit-id", "--no-renames",
			parents[0], ws.Commit)
	} else {
		files, err = git(ctx, ws.Dir, "ls-tree", "-r", "-z", "--name-only", ws.Commit)
	}
	if err != nil {
		return fmt.Errorf("source: list files changed by %s of %s: %w", ws.Commit, ws.Repo, err)
	}
	ws.ChangedFiles = []string{}
	for name := range strings.SplitSeq(files, "\x00") {
		if name != "" {
			ws.ChangedFiles = append(ws.ChangedFiles, name)
		}
	}
	slices.Sort(ws.ChangedFiles)
	return nil
}

// DefaultHead returns the commit at the head of repo's default branch
// (HEAD) and the branches whose head is that commit, read at once: whoever
// may push one of them chose that commit.
func DefaultHead(ctx context.Context, repo string) (commit string, branches []string, err error) {
	repo, err = checkRepo(repo)
	if err != nil {
		return "", nil, err
	}
	refs, err := lsRemote(ctx, repo)
	if err != nil {
		return "", nil, err
	}
	for _, r := range refs {
		if r.name == "HEAD" {
			commit = r.commit
		}
	}
	if commit == "" {
		return "", nil, fmt.Errorf("source: repository %s has no default branch (HEAD); name a branch: %w", redact(repo), ErrNotFound)
	}
	for _, r := range refs {
		if name, ok := strings.CutPrefix(r.name, "refs/heads/"); ok && r.commit == commit {
			branches = append(branches, name)
		}
	}
	return commit, branches, nil
}
