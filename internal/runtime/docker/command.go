package docker

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// CommandSpec is a one-off command in a container: a pipeline action's
// commands run "inside a container image" with the workspace mounted.
type CommandSpec struct {
	Image   string
	Cmd     []string
	Env     []string          // KEY=value
	Mounts  map[string]string // host directory -> container directory (read-write)
	WorkDir string            // inside the container
	Labels  Labels
	Output  io.Writer // combined stdout and stderr, as it comes
	// ReadOnly mounts host directories read-only: host directory -> container directory.
	ReadOnly map[string]string
	// Confined runs untrusted code: no network at all (not even the
	// host's loopback), as User (uid:gid) with every capability dropped,
	// no privilege escalation and a bounded number of processes. Nothing
	// but the mounts is shared with the host; the Docker socket never is.
	Confined bool
	User     string
}

// RunCommand runs spec to its end and returns the exit code. The container
// is always removed, also when ctx ends (the command is then killed).
func (r *Runtime) RunCommand(ctx context.Context, spec CommandSpec) (int, error) {
	var binds []string
	for host, dir := range spec.Mounts {
		binds = append(binds, host+":"+dir)
	}
	for host, dir := range spec.ReadOnly {
		binds = append(binds, host+":"+dir+":ro")
	}
	// Host networking: trusted commands reach 127.0.0.1 services as the host does.
	hc := &container.HostConfig{Binds: binds, NetworkMode: "host"}
	cfg := &container.Config{Image: spec.Image, Cmd: spec.Cmd, Env: spec.Env, WorkingDir: spec.WorkDir, Labels: r.containerLabels(spec.Labels)}
	if spec.Confined {
		pids := int64(512)
		hc.NetworkMode, hc.CapDrop, hc.SecurityOpt = "none", []string{"ALL"}, []string{"no-new-privileges"}
		hc.Resources.PidsLimit = &pids
		cfg.User = spec.User
	}
	created, err := r.client.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc})
	if err != nil {
		return -1, fmt.Errorf("run in image %s: %s (is the image on this machine? images cannot be pulled here: build it first)", spec.Image, engineMessage(err))
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.RemoveTask(rctx, created.ID)
	}()
	wait := r.client.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := r.client.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return -1, fmt.Errorf("run in image %s: %s", spec.Image, engineMessage(err))
	}
	if spec.Output != nil {
		logs, err := r.client.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
		if err == nil {
			_, _ = stdcopy.StdCopy(spec.Output, spec.Output, logs)
			logs.Close()
		}
	}
	select {
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), fmt.Errorf("run in image %s: %s", spec.Image, res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-wait.Error:
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, fmt.Errorf("run in image %s: %s", spec.Image, engineMessage(err))
	}
}
