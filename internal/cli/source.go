package cli

import (
	"context"
	"path/filepath"
	"strings"
)

// workingTreeSource says where a build from the working tree at dir came from, for
// the revision's source: "commit abc123def456" in a clean git checkout, with
// " + uncommitted changes" when files differ from it, or "working tree" outside git.
func workingTreeSource(ctx context.Context, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "working tree"
	}
	commit, err := gitOut(ctx, abs, "rev-parse", "--short=12", "HEAD")
	if err != nil || commit == "" {
		return "working tree"
	}
	src := "commit " + commit
	if changes, err := gitOut(ctx, abs, "status", "--porcelain", "--untracked-files=no", "--", "."); err != nil || changes != "" {
		src += " + uncommitted changes"
	}
	return src
}

// actorOf returns who a deployment was made by, from its owner as whoAmI writes
// it ("alice (pid 12 on vm)"), or the owner itself when it names no user.
func actorOf(owner string) string {
	if name, _, ok := strings.Cut(owner, " (pid "); ok {
		return name
	}
	return owner
}
