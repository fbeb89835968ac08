package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/short"
)

// teardownTimeout bounds teardown, which runs on a context detached from the caller's.
const teardownTimeout = 2 * time.Minute

// Removed counts the engine objects a teardown removed.
type Removed struct {
	Containers, Networks, Volumes, Images int
}

// Teardown removes every container (with its anonymous volumes), network,
// volume and image (the test services it built) labelled dev.cutover.integration=<project>. Run calls it itself;
// call it directly only to clean up after a process that died mid-run.
// Removing what is already gone is not an error, so it is idempotent.
func Teardown(ctx context.Context, rt *docker.Runtime, project string) (Removed, error) {
	var (
		engine  = rt.EngineClient()
		filters = make(client.Filters).Add("label", Label+"="+project)
		rm      Removed
		errs    []error
	)
	if project == "" {
		return rm, errors.New("integration teardown: no project name given")
	}
	cs, err := engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return rm, fmt.Errorf("integration teardown %s: list containers: %s", project, engineMessage(err))
	}
	for _, c := range cs.Items {
		_, err := engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			rm.Containers++
		case !gone(err):
			errs = append(errs, fmt.Errorf("remove container %s: %s", c.ID[:12], engineMessage(err)))
		}
	}
	// Networks and volumes go after the containers that use them.
	ns, err := engine.NetworkList(ctx, client.NetworkListOptions{Filters: filters})
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %s", engineMessage(err)))
	} else {
		for _, n := range ns.Items {
			_, err := engine.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			switch {
			case err == nil:
				rm.Networks++
			case !gone(err):
				errs = append(errs, fmt.Errorf("remove network %s: %s", n.Name, engineMessage(err)))
			}
		}
	}
	vs, err := engine.VolumeList(ctx, client.VolumeListOptions{Filters: filters})
	if err != nil {
		errs = append(errs, fmt.Errorf("list volumes: %s", engineMessage(err)))
	} else {
		for _, v := range vs.Items {
			_, err := engine.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
			switch {
			case err == nil:
				rm.Volumes++
			case !gone(err):
				errs = append(errs, fmt.Errorf("remove volume %s: %s", v.Name, engineMessage(err)))
			}
		}
	}
	is, err := engine.ImageList(ctx, client.ImageListOptions{Filters: filters})
	if err != nil {
		errs = append(errs, fmt.Errorf("list images: %s", engineMessage(err)))
	} else {
		for _, im := range is.Items {
			// Through the runtime, which waits for builds in progress: a
			// build may be reusing this image's cached steps.
			removed, err := rt.RemoveImage(ctx, im.ID)
			if removed {
				rm.Images++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rm, fmt.Errorf("integration teardown %s (remove the rest with `docker rm -f`, `docker network rm`, `docker volume rm` on objects labelled %s=%s): %w", project, Label, project, err)
	}
	return rm, nil
}

// gone says the object is already removed, or being removed by someone else.
func gone(err error) bool {
	return cerrdefs.IsNotFound(err) || (cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"))
}

// collectLogs keeps each started service's last log lines for the Result.
func (r *run) collectLogs(ctx context.Context) {
	r.mu.Lock()
	ids := map[string]string{}
	for name, s := range r.services {
		if s.id != "" {
			ids[name] = s.id
		}
	}
	r.mu.Unlock()
	for name, id := range ids {
		lines, err := r.rt.LastLogLines(ctx, id, logLines)
		if err != nil {
			r.log.Debug("reading a service's logs", "service", name, "err", err)
			continue
		}
		r.mu.Lock()
		r.services[name].logs = lines
		r.mu.Unlock()
	}
}

func (r *run) teardown(ctx context.Context) error {
	rm, err := Teardown(ctx, r.rt, r.o.Project)
	r.progress("torn down: removed %s, %s, %s", short.Count(rm.Containers, "container"), short.Count(rm.Networks, "network"), short.Count(rm.Volumes, "volume"))
	if err != nil {
		r.log.Warn("integration teardown incomplete", "err", err)
	}
	return err
}
