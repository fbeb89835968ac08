package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

type ref struct{ name, commit string }

// lsRemote lists the repository's HEAD, branches and tags (peeled: a tag's
// commit, not the tag object). It is also where an unusable repository is
// reported, because every operation starts with it.
func lsRemote(ctx context.Context, repo string) ([]ref, error) {
	if isLocalPath(repo) {
		if _, err := os.Stat(repo); err != nil {
			return nil, fmt.Errorf("source: repository %s does not exist; give the path of a git repository or a URL", repo)
		}
	}
	out, err := git(ctx, "", "ls-remote", "--", repo)
	if err != nil {
		var ge *gitError
		if errors.As(err, &ge) && (strings.Contains(ge.stderr, "does not appear to be a git repository") ||
			strings.Contains(ge.stderr, "not a git repository")) {
			if isLocalPath(repo) {
				if top, err := git(ctx, repo, "rev-parse", "--show-toplevel"); err == nil {
					return nil, fmt.Errorf("source: %s is not a git repository but a directory inside %s; give that path",
						repo, strings.TrimSpace(top))
				}
			}
			return nil, fmt.Errorf("source: %s is not a git repository; give the path of a clone (the directory holding .git) or a URL",
				redact(repo))
		}
		return nil, fmt.Errorf("source: read branches of %s: %w; check the address and your access to it", redact(repo), err)
	}
	var refs []ref
	peeled := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		commit, name, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if tag, ok := strings.CutSuffix(name, "^{}"); ok {
			peeled[tag] = commit
			continue
		}
		refs = append(refs, ref{name: name, commit: commit})
	}
	for i, r := range refs {
		if c, ok := peeled[r.name]; ok {
			refs[i].commit = c
		}
	}
	return refs, nil
}

// isLocalPath reports whether git would read repo as a path rather than a URL
// or an scp-like address (host:path), following git's own rule: a colon
// before any slash makes it remote.
func isLocalPath(repo string) bool {
	if strings.Contains(repo, "://") {
		return false
	}
	colon := strings.IndexByte(repo, ':')
	slash := strings.IndexByte(repo, '/')
	return colon < 0 || (slash >= 0 && slash < colon)
}

func lookupBranch(refs []ref, name string) (string, bool) {
	for _, r := range refs {
		if r.name == "refs/heads/"+name {
			return r.commit, true
		}
	}
	return "", false
}

// onlyBranchAt returns the branch whose head is commit, or "" when none or
// several are.
func onlyBranchAt(refs []ref, commit string) string {
	found := ""
	for _, r := range refs {
		name, ok := strings.CutPrefix(r.name, "refs/heads/")
		if !ok || r.commit != commit {
			continue
		}
		if found != "" {
			return ""
		}
		found = name
	}
	return found
}

// branchList names the branches for an error message, a few at most.
func branchList(refs []ref) string {
	const most = 10
	var names []string
	for _, r := range refs {
		if name, ok := strings.CutPrefix(r.name, "refs/heads/"); ok {
			names = append(names, name)
		}
	}
	switch {
	case len(names) == 0:
		return "none"
	case len(names) > most:
		return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
	}
	return strings.Join(names, ", ")
}
