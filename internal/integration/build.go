package integration

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// errOutsideRoot: a build context or Dockerfile resolves outside Options.Root.
var errOutsideRoot = errors.New("outside the workspace")

// build builds a compose service that has a build section (a test runner,
// typically) from its context, after checking that the context and the
// Dockerfile resolve inside Options.Root: a repository cannot make the
// pipeline read files elsewhere on the host through `context: ../..` or a
// symlink.
func (r *run) build(ctx context.Context, s types.ServiceConfig) (string, error) {
	b := s.Build
	if b.DockerfileInline != "" {
		return "", fmt.Errorf("build.dockerfile_inline is not supported in integration runs (put the Dockerfile in the repository)")
	}
	if len(b.AdditionalContexts) > 0 || len(b.Secrets) > 0 || len(b.SSH) > 0 {
		return "", fmt.Errorf("build: additional_contexts, secrets and ssh are not supported in integration runs (remove them from the test service)")
	}
	dir, err := inside(r.o.Root, b.Context)
	if err != nil {
		return "", fmt.Errorf("build.context %s: %w", b.Context, err)
	}
	dockerfile := b.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(dir, dockerfile)
	}
	if _, err := inside(dir, dockerfile); err != nil {
		return "", fmt.Errorf("build.dockerfile %s: %w of the build context", b.Dockerfile, err)
	}
	args := map[string]string{}
	for k, v := range b.Args {
		if v != nil {
			args[k] = *v
		}
	}
	r.progress("building service %s from %s", s.Name, relTo(r.o.Root, dir))
	r.mu.Lock()
	own := append(slices.Clone(r.o.OwnImages), r.built...)
	r.mu.Unlock()
	img, err := r.rt.Build(ctx, docker.BuildRequest{
		ContextDir: dir,
		Dockerfile: dockerfile,
		Tags:       []string{"cutover-it/" + r.o.Project + "-" + s.Name + ":latest"},
		BuildArgs:  args,
		Labels:     map[string]string{Label: r.o.Project},
		Output:     r.out,
		NoNetwork:  r.o.Untrusted,
		OwnImages:  own,
	})
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.built = append(r.built, img.ID)
	r.mu.Unlock()
	return img.ID, nil
}

// inside resolves p (symlinks included) and checks that it is root or below it.
func inside(root, p string) (string, error) {
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("workspace %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("cannot be read (%w)", errors.Unwrap(err))
	}
	rel, err := filepath.Rel(rootReal, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("resolves to %s, %w %s (keep it inside the repository)", real, errOutsideRoot, rootReal)
	}
	return real, nil
}

func relTo(root, p string) string {
	if rel, err := filepath.Rel(root, p); err == nil {
		return rel
	}
	return p
}
