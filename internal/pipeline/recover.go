package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/store"
)

// workspace is where execution id checks out its commit.
func (e *Engine) workspace(id string) string { return filepath.Join(e.Home, "workspaces", id) }

// track records the process group a command of the execution runs in (the
// command was started with Setpgid, so its pid is the group id), for
// Recover; the returned func forgets it once the command ended.
func (r *run) track(pid int) func() {
	host, _ := os.Hostname()
	ctx := context.WithoutCancel(r.hard)
	p := store.Process{Execution: r.exec.ID, PGID: pid, StartTicks: proc.StartTime(pid), Host: host, StartedAt: time.Now()}
	if err := r.e.Store.AddProcess(ctx, p); err != nil {
		r.e.Log.Warn("recording a command's process group", "execution", r.exec.ID, "pgid", pid, "err", err)
	}
	return func() {
		if err := r.e.Store.RemoveProcess(ctx, r.exec.ID, pid); err != nil {
			r.e.Log.Warn("forgetting a command's process group", "execution", r.exec.ID, "pgid", pid, "err", err)
		}
	}
}

// OwnerAlive reports whether the process that owns execution x (Run
// records it) still runs: then nobody else may take x over. An owner on
// another host cannot be checked from here and counts as alive.
func OwnerAlive(x store.Execution) bool {
	if x.OwnerPID == 0 {
		return false // queued, or written before owners were recorded
	}
	host, _ := os.Hostname()
	if x.OwnerHost != host {
		return true
	}
	return x.OwnerPID != os.Getpid() && proc.Alive(x.OwnerPID)
}

// Recover ends what a dead owner left of execution x: it kills the process
// groups of its commands that still run on this host, removes its
// workspace, and marks it failed with reason (unless another process
// changed it meanwhile). The caller has checked !OwnerAlive(x).
func (e *Engine) Recover(ctx context.Context, x store.Execution, reason string) (killed int, err error) {
	host, _ := os.Hostname()
	procs, err := e.Store.Processes(ctx, x.ID)
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		if p.Host != host {
			continue
		}
		if proc.KillGroup(p.PGID, p.StartTicks) {
			killed++
		}
		if err := e.Store.RemoveProcess(ctx, x.ID, p.PGID); err != nil {
			return killed, err
		}
	}
	if err := os.RemoveAll(e.workspace(x.ID)); err != nil {
		return killed, fmt.Errorf("removing the workspace of execution %s: %w", x.ID, err)
	}
	x.Status, x.Error = store.ExecutionFailed, reason
	if _, err := e.Store.UpdateExecution(ctx, x, x.Generation); err != nil {
		return killed, err
	}
	return killed, nil
}
