package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cutoverdev/cutover/internal/integration"
	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
)

// integrationProject names the compose project of execution id's
// integration actions (its containers, networks and volumes carry it).
func integrationProject(id string) string { return "cutover-it-" + id }

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

// Orphaned reports whether x runs or waits with no process left to move it
// on: its owner (a `cutover run`, or a daemon killed and not started since)
// is gone. Queued executions have no owner yet; this process's own are not.
func Orphaned(x store.Execution) bool {
	return store.ExecutionActive(x.Status) && x.Status != store.ExecutionQueued && x.OwnerPID != 0 &&
		x.OwnerPID != os.Getpid() && !OwnerAlive(x)
}

// Cancel is RequestCancel, and more for a running or waiting execution
// whose owner is gone (a `cutover run` killed, or a daemon killed and not
// started since): no runner will ever read its cancel, so it is ended here
// as a recovering daemon ends it (Recover: the process groups of its
// commands killed, its containers and workspace removed, recorded
// cancelled). Before, such an execution stayed running for good, and
// `cutover cancel` answered that it had asked. An execution this process
// owns (the daemon's own) is left to its runner.
func (e *Engine) Cancel(ctx context.Context, id, who string) (store.Execution, error) {
	x, err := RequestCancel(ctx, e.Store, id, who)
	if err != nil || !Orphaned(x) { // x as read before the cancel: still active
		return x, err
	}
	if _, err := e.Recover(ctx, x); err != nil {
		return x, fmt.Errorf("execution %s: the process that ran it (pid %d) is gone, and ending what it left failed: %w (run `cutover cancel %s` again)", x.ID, x.OwnerPID, err, x.ID)
	}
	return e.Store.GetExecution(ctx, id)
}

// Recovery is what Recover did with an interrupted execution.
type Recovery struct {
	Killed int // process groups of its commands, and integration containers, that were still running
	// Requeued: it had not entered a stage yet, so it is queued again as
	// it was (same ID). Otherwise it is to be failed (MarkResumed), and Resume is the retry
	// that runs its commit again from the stage it was in, reusing the
	// images its earlier stages built; nil when it was cancelled.
	Requeued bool
	Resume   *Trigger
	// failed is x as MarkResumed records it, once Resume is queued, at
	// generation gen.
	failed store.Execution
	gen    int64
}

// MarkResumed records the execution Recover resumed as failed, pointing at
// its resumption. Call it once the resumption is queued (with a delivery
// naming the execution, so a second recovery queues nothing twice): marked
// first, a kill -9 before the queueing lost the execution, its record
// saying it was resumed. A cancel asked after Recover looked ends the
// execution cancelled and is passed on to its resumption, in the same
// transaction (RequestCancel asks in one too): the cancel is never lost.
func (e *Engine) MarkResumed(ctx context.Context, rec Recovery) error {
	if rec.Resume == nil {
		return nil
	}
	return e.Store.Tx(ctx, func(tx *store.Tx) error {
		ev, err := cancelEvent(ctx, tx.ListEvents, rec.failed.Project, rec.failed.ID)
		if err != nil {
			return err
		}
		if ev != nil {
			return endCancelled(ctx, tx, rec.failed, rec.gen, *ev)
		}
		_, err = tx.UpdateExecution(ctx, rec.failed, rec.gen)
		return err
	})
}

// Recover ends what a dead owner left of execution x: it kills the process
// groups of its commands that still run on this host, tears down the
// compose project of an integration it was in, and removes its workspace; then it queues x again if it never entered a stage, or
// returns the trigger that resumes it, for the caller to queue and then
// record x failed with MarkResumed; one whose cancel was
// asked for ends cancelled (or superseded) instead. The caller has
// checked !OwnerAlive(x). An execution another process changed meanwhile
// is left to that process (the error wraps store.ErrConflict).
func (e *Engine) Recover(ctx context.Context, x store.Execution) (Recovery, error) {
	var rec Recovery
	t, err := QueuedTrigger(x)
	if err != nil {
		return rec, err
	}
	host, _ := os.Hostname()
	procs, err := e.Store.Processes(ctx, x.ID)
	if err != nil {
		return rec, err
	}
	for _, p := range procs {
		if p.Host != host {
			continue
		}
		if proc.KillGroup(p.PGID, p.StartTicks) {
			rec.Killed++
		}
		if err := e.Store.RemoveProcess(ctx, x.ID, p.PGID); err != nil {
			return rec, err
		}
	}
	if e.Runtime != nil { // the compose project of an integration action it was in
		rm, err := integration.Teardown(ctx, e.Runtime, integrationProject(x.ID))
		if err != nil {
			return rec, err
		}
		rec.Killed += rm.Containers
		// and the containers its commands ran in (a pull request's, or an action's image)
		n, err := e.Runtime.RemoveTasks(ctx, docker.Labels{Project: x.Project, Execution: x.ID}, 0)
		if err != nil {
			return rec, err
		}
		rec.Killed += n
	}
	if err := os.RemoveAll(e.workspace(x.ID)); err != nil {
		return rec, fmt.Errorf("removing the workspace of execution %s: %w", x.ID, err)
	}
	var stages []StageState
	_ = json.Unmarshal(x.Stages, &stages)
	from, entered := "", false
	for _, st := range stages {
		entered = entered || st.Started != nil || (st.Status != StatusPending && st.Status != StatusSkipped)
		if from == "" && (st.Status == StatusRunning || st.Status == StatusWaiting || st.Status == StatusPending) {
			from = st.Name
		}
	}
	gen := x.Generation
	ev, err := cancelEvent(ctx, e.Store.ListEvents, x.Project, x.ID)
	if err != nil {
		return rec, err
	}
	if ev != nil {
		// Cancelled (or superseded) while its process was gone: it ends so,
		// and so does a resumption a daemon killed before MarkResumed queued.
		return rec, e.Store.Tx(ctx, func(tx *store.Tx) error { return endCancelled(ctx, tx, x, gen, *ev) })
	}
	if !entered {
		x.Status, x.Stages, x.Error, x.OwnerPID, x.OwnerHost = store.ExecutionQueued, nil, "", 0, ""
		_, err := e.Store.UpdateExecution(ctx, x, gen)
		return Recovery{Killed: rec.Killed, Requeued: true}, err
	}
	x.Status = store.ExecutionFailed
	x.Error = fmt.Sprintf("interrupted: its process (pid %d) stopped while it ran; resumed as a new execution from stage %s", x.OwnerPID, from)
	rec.failed, rec.gen = x, gen
	// The resumption keeps the kind of what it resumes (a pull request stays
	// one), and points at it.
	if t.Kind == TriggerRetry && t.RetriedFrom == "" {
		t.RetriedFrom = t.RetryOf
	}
	if t.Kind != TriggerRetry {
		t.RetriedFrom = x.ID
	}
	t.RetryOf, t.FromStage, t.Execution = x.ID, from, ""
	rec.Resume = &t
	return rec, nil
}
