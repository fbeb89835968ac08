package local

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// startedTask is a task of the new set, with what the wait needs to judge it.
type startedTask struct {
	Service string
	Task    docker.Task
	Group   string
}

// TaskFailure says, in plain words, why a task of a release will never serve.
type TaskFailure struct {
	Service string
	TaskID  string
	Reason  string
	Logs    []string
}

func (f *TaskFailure) Error() string {
	msg := f.Service + ": " + f.Reason
	if len(f.Logs) > 0 {
		msg += fmt.Sprintf(" (last log line: %q)", f.Logs[len(f.Logs)-1])
	}
	return msg
}

// waitHealthy waits until the proxy reports every task healthy. It watches
// the containers too, so a task that exits, or that never listens on its
// configured port, fails the wait within seconds instead of at the timeout.
func waitHealthy(ctx context.Context, rt *docker.Runtime, pc *proxy.Client, cfg *config.Config, tasks []startedTask, timeout time.Duration, progress func(healthy, total int)) error {
	if len(tasks) == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	started := time.Now()
	portChecked := map[string]bool{}
	lastHealthy := -1
	for {
		targets, err := pc.Targets(ctx)
		if err != nil {
			return err
		}
		state := map[string]proxy.TargetStatus{}
		for _, t := range targets {
			state[t.Group+"|"+t.ID] = t
		}
		healthy := 0
		for _, st := range tasks {
			ts, ok := state[st.Group+"|"+st.Task.ID]
			if ok && ts.State == "healthy" {
				healthy++
				continue
			}
			if err := checkTask(ctx, rt, cfg, st, time.Since(started), portChecked); err != nil {
				return err
			}
		}
		if healthy != lastHealthy && progress != nil {
			progress(healthy, len(tasks))
			lastHealthy = healthy
		}
		if healthy == len(tasks) {
			return nil
		}
		if time.Now().After(deadline) {
			return timeoutError(tasks, state, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// checkTask returns a TaskFailure when the container has exited, or when,
// after the time a healthy task needs to pass its checks, nothing listens on
// the configured container port.
func checkTask(ctx context.Context, rt *docker.Runtime, cfg *config.Config, st startedTask, elapsed time.Duration, portChecked map[string]bool) error {
	t, err := rt.Inspect(ctx, st.Task.ID)
	if err != nil {
		return &TaskFailure{Service: st.Service, TaskID: st.Task.ID, Reason: "task disappeared: " + err.Error()}
	}
	if !t.Running {
		logs, _ := rt.LastLogLines(context.WithoutCancel(ctx), st.Task.ID, 5)
		reason := fmt.Sprintf("task %s exited with code %d", t.Name, t.ExitCode)
		if t.OOMKilled {
			reason += " (killed: out of memory)"
		}
		if len(logs) > 0 {
			reason += fmt.Sprintf(": %q", logs[len(logs)-1])
			logs = nil
		}
		return &TaskFailure{Service: st.Service, TaskID: st.Task.ID, Reason: reason, Logs: logs}
	}
	svc := cfg.Services[st.Service]
	h := svc.Health
	// A healthy task passes HealthyThreshold checks one interval apart after the grace period;
	// give it that plus two intervals before looking for a port mismatch.
	expected := h.GracePeriod.Std() + time.Duration(h.HealthyThreshold+2)*h.Interval.Std()
	if elapsed < expected || portChecked[st.Task.ID] {
		return nil
	}
	portChecked[st.Task.ID] = true
	ports, err := rt.ListeningPorts(ctx, st.Task.ID)
	if err != nil || slices.Contains(ports, svc.Port) {
		return nil // can't see, or the port is right and the health check itself fails: wait for the timeout
	}
	reason := fmt.Sprintf("nothing is listening on container port %d", svc.Port)
	if len(ports) > 0 {
		reason += "; the process listens on " + joinInts(ports)
	}
	reason += fmt.Sprintf(" (fix services.%s.port or the application's port)", st.Service)
	return &TaskFailure{Service: st.Service, TaskID: st.Task.ID, Reason: reason}
}

func timeoutError(tasks []startedTask, state map[string]proxy.TargetStatus, timeout time.Duration) error {
	var waiting []string
	for _, st := range tasks {
		ts := state[st.Group+"|"+st.Task.ID]
		if ts.State == "healthy" {
			continue
		}
		s := fmt.Sprintf("%s task %s is %s", st.Service, st.Task.Name, orDefault(ts.State, "not registered"))
		if ts.Reason != "" {
			s += " (" + ts.Reason + ")"
		}
		waiting = append(waiting, s)
	}
	return fmt.Errorf("tasks not healthy after %s: %s (check the health check path and port, or raise --timeout)", timeout, strings.Join(waiting, "; "))
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
