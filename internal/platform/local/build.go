package local

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/short"
)

// NewBuildID returns an identifier unique to one build, baked into the
// images (CUTOVER_BUILD_ID) so two builds answer differently.
func NewBuildID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// BuildImages builds every service's image in parallel and returns service → image ID.
// A service with `image:` is resolved to its local image ID instead; so is
// a service named in overrides (service → image reference, from --image),
// before any build starts, so a reference that does not resolve fails with
// nothing built.
// Each built image is labelled with the project, service, build ID and
// storeID (docker.LabelStore), the ID of the store whose revisions will name
// it: only that store's Prune removes it.
func BuildImages(ctx context.Context, rt *docker.Runtime, cfg *config.Config, buildID, storeID string, overrides map[string]string, progress io.Writer) (map[string]string, error) {
	if storeID == "" {
		return nil, fmt.Errorf("build: no store ID to label the images with")
	}
	names := cfg.ServiceNames()
	ids := make([]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	var mu sync.Mutex // serialises progress lines
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(progress, format+"\n", a...)
	}
	// The images given (--image, or a service's image:) are resolved before
	// anything is built: a wrong reference fails the command before it runs
	// a build command or makes an image.
	for i, name := range names {
		if ref := cmp.Or(overrides[name], cfg.Services[name].Image); ref != "" {
			id, err := rt.ImageID(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", name, err)
			}
			say("%s: using image %s (%s)", name, ref, short.ID(id))
			ids[i] = id
		}
	}
	for i, name := range names {
		if ids[i] != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = buildService(ctx, rt, cfg, name, buildID, storeID, say)
		}()
	}
	wg.Wait()
	out := map[string]string{}
	for i, name := range names {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[name] = ids[i]
	}
	return out, nil
}

// buildService runs a service's build commands and builds its image.
func buildService(ctx context.Context, rt *docker.Runtime, cfg *config.Config, name, buildID, storeID string, say func(string, ...any)) (string, error) {
	svc := cfg.Services[name]
	dir := filepath.Join(cfg.Dir(), svc.Build.Context)
	if err := RunBuildCommands(ctx, cfg, name, buildID, say); err != nil {
		return "", err
	}
	say("%s: building image from %s", name, filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
	img, err := rt.Build(ctx, docker.BuildRequest{
		ContextDir: dir,
		Dockerfile: svc.Build.Dockerfile,
		Tags:       []string{fmt.Sprintf("cutover/%s-%s:%s", cfg.Project, name, buildID)},
		BuildArgs:  svc.Build.Args,
		Labels: map[string]string{docker.LabelProject: cfg.Project, docker.LabelService: name, docker.LabelBuild: buildID,
			docker.LabelStore: storeID},
	})
	if err != nil {
		return "", fmt.Errorf("service %s: %w", name, err)
	}
	say("%s: built %s", name, short.ID(img.ID))
	return img.ID, nil
}

// RunBuildCommands runs a service's build.commands on this machine, one
// after the other, in its build context (the files of a static service on
// ECS are built this way too, with no image after them).
func RunBuildCommands(ctx context.Context, cfg *config.Config, name, buildID string, say func(string, ...any)) error {
	svc := cfg.Services[name]
	if svc == nil || svc.Build == nil {
		return fmt.Errorf("service %s has no build section", name)
	}
	dir := filepath.Join(cfg.Dir(), svc.Build.Context)
	for _, command := range svc.Build.Commands {
		say("%s: running %s", name, command)
		if err := runBuildCommand(ctx, dir, command, buildID, name); err != nil {
			return err
		}
	}
	return nil
}

// runBuildCommand runs one build command through the shell in the service's
// build context, with CUTOVER_BUILD_ID and CUTOVER_SERVICE set.
func runBuildCommand(ctx context.Context, dir, command, buildID, service string) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CUTOVER_BUILD_ID="+buildID, "CUTOVER_SERVICE="+service)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			// Killed because the command was interrupted (Ctrl-C, SIGTERM, a
			// timeout), not a failure of the build command.
			return fmt.Errorf("service %s: build command %q interrupted: %w", service, command, context.Cause(ctx))
		}
		return fmt.Errorf("service %s: build command %q failed (%v): %s (fix the command in services.%s.build.commands)",
			service, command, err, short.TailOf(out.String()), service)
	}
	return nil
}
