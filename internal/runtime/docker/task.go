package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/short"
)

// TaskSpec describes a task to start.
type TaskSpec struct {
	Name          string // container name; optional
	Image         string // image ID sha256:... (deploy by digest, never a mutable tag)
	Labels        Labels
	Env           map[string]string
	ContainerPort int      // published as ContainerPort/tcp on 127.0.0.1; 0 publishes nothing
	Cmd           []string // overrides the image's CMD when set
	StopTimeout   time.Duration
	HostPort      int // 0 = a free port picked at start, kept across restarts
}

// Task is a container as cutover sees it.
type Task struct {
	ID, Name     string
	HostPort     int // the 127.0.0.1 port the container port is published on; 0 if none
	Labels       Labels
	State        string // created|running|paused|restarting|removing|exited|dead
	Running      bool
	ExitCode     int
	StartedAt    time.Time
	FinishedAt   time.Time
	OOMKilled    bool
	RestartCount int
	Error        string // the engine's error starting the process, if any
}

// loopback is where task ports are published: never on all interfaces.
var loopback = netip.MustParseAddr("127.0.0.1")

// StartTask creates and starts a container with no restart policy (the
// controller decides what to do with a task that exits, until KeepRunning).
// Whatever fails after the container is created, the container is removed
// again.
//
// Without a HostPort, a free 127.0.0.1 port is picked here rather than by the
// engine: an engine-chosen port changes each time the container restarts,
// and a restarted task must come back where the load balancer sends it. A
// port taken between the pick and the start is picked again.
func (r *Runtime) StartTask(ctx context.Context, spec TaskSpec) (Task, error) {
	if spec.HostPort != 0 || spec.ContainerPort <= 0 {
		return r.startTask(ctx, spec)
	}
	for attempt := 1; ; attempt++ {
		port, err := freeLoopbackPort()
		if err != nil {
			return Task{}, fmt.Errorf("start %s: no free port on 127.0.0.1: %v", taskWhat(spec), err)
		}
		picked := spec
		picked.HostPort = port
		t, err := r.startTask(ctx, picked)
		var inUse portInUseError
		if err == nil || !errors.As(err, &inUse) || attempt == 5 {
			return t, err
		}
		r.log.Debug("picked host port was taken, picking another", "port", port)
	}
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portInUseError is StartTask's error when the host port was taken.
type portInUseError string

func (e portInUseError) Error() string { return string(e) }

// KeepRunning gives a task the restart policy unless-stopped: the engine
// restarts it (on the same host port) when its process exits or the engine
// restarts, until cutover stops it. The controller calls it on the set that
// serves once a deployment is over; before that, an exit is a failure to
// report, not to hide.
func (r *Runtime) KeepRunning(ctx context.Context, id string) error {
	_, err := r.client.ContainerUpdate(ctx, id, client.ContainerUpdateOptions{
		RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	})
	if err != nil {
		return fmt.Errorf("keep task %s running: %s", short.ID(id), engineMessage(err))
	}
	return nil
}

func (r *Runtime) startTask(ctx context.Context, spec TaskSpec) (Task, error) {
	what := taskWhat(spec)
	if spec.Image == "" {
		return Task{}, fmt.Errorf("start %s: no image given", what)
	}
	if spec.ContainerPort < 0 || spec.ContainerPort > 65535 {
		return Task{}, fmt.Errorf("start %s: container port %d is out of range (use 1-65535)", what, spec.ContainerPort)
	}
	if spec.HostPort < 0 || spec.HostPort > 65535 {
		return Task{}, fmt.Errorf("start %s: host port %d is out of range (use 1-65535, or 0 for any free port)", what, spec.HostPort)
	}

	cfg := &container.Config{
		Image:  spec.Image,
		Env:    envList(spec.Env),
		Labels: r.containerLabels(spec.Labels),
		Cmd:    spec.Cmd,
	}
	if spec.StopTimeout > 0 {
		secs := int(math.Ceil(spec.StopTimeout.Seconds()))
		cfg.StopTimeout = &secs
	}
	host := &container.HostConfig{}
	if spec.ContainerPort > 0 {
		port, _ := network.PortFrom(uint16(spec.ContainerPort), network.TCP)
		cfg.ExposedPorts = network.PortSet{port: {}}
		binding := network.PortBinding{HostIP: loopback}
		if spec.HostPort > 0 {
			binding.HostPort = strconv.Itoa(spec.HostPort)
		}
		host.PortBindings = network.PortMap{port: {binding}}
	}

	created, err := r.client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spec.Name, Config: cfg, HostConfig: host})
	if err != nil {
		switch {
		case cerrdefs.IsNotFound(err):
			return Task{}, fmt.Errorf("start %s: image %s not found locally (build it first)", what, spec.Image)
		case cerrdefs.IsConflict(err):
			return Task{}, fmt.Errorf("start %s: a container named %s already exists (remove it with `docker rm -f %s`)", what, spec.Name, spec.Name)
		}
		return Task{}, fmt.Errorf("start %s: %s", what, engineMessage(err))
	}
	cleanup := func() {
		// The caller's context may be what failed; removal must still happen.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := r.RemoveTask(rctx, created.ID); err != nil {
			r.log.Warn("removing a task that failed to start", "task", what, "id", short.ID(created.ID), "err", err)
		}
	}

	if _, err := r.client.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		cleanup()
		if portInUse(err) {
			return Task{}, portInUseError(fmt.Sprintf("start %s: host port 127.0.0.1:%d is already in use (stop what listens there, or choose another port)", what, spec.HostPort))
		}
		return Task{}, fmt.Errorf("start %s: %s", what, engineMessage(err))
	}
	t, err := r.Inspect(ctx, created.ID)
	if err != nil {
		cleanup()
		return Task{}, fmt.Errorf("start %s: %w", what, err)
	}
	r.log.Debug("started task", "task", t.Name, "id", short.ID(t.ID), "host_port", t.HostPort)
	return t, nil
}

func portInUse(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "address already in use") || strings.Contains(msg, "port is already allocated")
}

// Inspect returns the task's current state.
func (r *Runtime) Inspect(ctx context.Context, id string) (Task, error) {
	res, err := r.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Task{}, taskError("inspect", id, err)
	}
	return taskFromInspect(res.Container), nil
}

func taskFromInspect(c container.InspectResponse) Task {
	t := Task{
		ID:           c.ID,
		Name:         strings.TrimPrefix(c.Name, "/"),
		RestartCount: c.RestartCount,
	}
	if c.Config != nil {
		t.Labels = labelsFromMap(c.Config.Labels)
	}
	if s := c.State; s != nil {
		t.State = string(s.Status)
		t.Running = s.Running
		t.ExitCode = s.ExitCode
		t.OOMKilled = s.OOMKilled
		t.Error = s.Error
		t.StartedAt = parseTime(s.StartedAt)
		t.FinishedAt = parseTime(s.FinishedAt)
	}
	if c.NetworkSettings != nil {
		t.HostPort = publishedPort(c.NetworkSettings.Ports)
	}
	return t
}

// publishedPort is the lowest host port a TCP container port is published on;
// cutover publishes one port per task.
func publishedPort(ports network.PortMap) int {
	var found []int
	for port, bindings := range ports {
		if port.Proto() != network.TCP {
			continue
		}
		for _, b := range bindings {
			if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
				found = append(found, p)
			}
		}
	}
	if len(found) == 0 {
		return 0
	}
	return slices.Min(found)
}

// parseTime reads the engine's RFC 3339 times; its "never" (year 1) is the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// StopTask sends SIGTERM, waits up to grace (rounded up to whole seconds,
// the engine's unit), then SIGKILL. A negative grace uses the task's own
// StopTimeout. Stopping a stopped or removed task is not an error.
func (r *Runtime) StopTask(ctx context.Context, id string, grace time.Duration) error {
	var timeout *int
	if grace >= 0 {
		secs := int(math.Ceil(grace.Seconds()))
		timeout = &secs
	}
	_, err := r.client.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: timeout})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return taskError("stop", id, err)
	}
	return nil
}

// RemoveTask removes the task, killing it if it runs. Removing a task that
// does not exist is not an error.
func (r *Runtime) RemoveTask(ctx context.Context, id string) error {
	_, err := r.client.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress") {
		return nil
	}
	return taskError("remove", id, err)
}

// ListTasks returns all managed tasks matching filter, running or not,
// ordered by name.
func (r *Runtime) ListTasks(ctx context.Context, filter Labels) ([]Task, error) {
	res, err := r.client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter.filters()})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %s", engineMessage(err))
	}
	tasks := make([]Task, 0, len(res.Items))
	for _, s := range res.Items {
		if r.foreign(s.Labels) {
			continue // another CUTOVER_HOME's, of a project of the same name
		}
		// The list summary lacks exit code and times; inspect gives the full picture.
		t, err := r.Inspect(ctx, s.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
	slices.SortFunc(tasks, func(a, b Task) int { return strings.Compare(a.Name, b.Name) })
	return tasks, nil
}

// RemoveTasks stops (all at once, each with the given grace) and removes
// every managed task matching filter, and returns how many it removed.
func (r *Runtime) RemoveTasks(ctx context.Context, filter Labels, grace time.Duration) (int, error) {
	tasks, err := r.ListTasks(ctx, filter)
	if err != nil {
		return 0, err
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		removed int
	)
	for _, t := range tasks {
		wg.Go(func() {
			err := r.StopTask(ctx, t.ID, grace)
			if err == nil {
				err = r.RemoveTask(ctx, t.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			removed++
		})
	}
	wg.Wait()
	return removed, errors.Join(errs...)
}

// taskError names the operation and task in a short message and keeps the
// engine's error as the cause, so cerrdefs.IsNotFound still works on it.
func taskError(op, id string, err error) error {
	msg := engineMessage(err)
	if cerrdefs.IsNotFound(err) {
		msg = "no such task (it was removed)"
	}
	return &opError{msg: fmt.Sprintf("%s task %s: %s", op, short.ID(id), msg), err: err}
}

type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

func taskWhat(spec TaskSpec) string {
	switch {
	case spec.Name != "":
		return "task " + spec.Name
	case spec.Labels.Service != "":
		return "task of service " + spec.Labels.Service
	}
	return "task"
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	slices.Sort(list) // stable container config, easier to diff
	return list
}
