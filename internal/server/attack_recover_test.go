package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// Attack (kill -9 at the worst moment): a daemon recovering an execution
// whose owner died marked it failed ("resumed as a new execution"), then
// queued the resumption in a second transaction; killed between the two,
// it lost the execution for good: the next start found nothing active.
// Now the resumption is queued first, once per interrupted execution, and
// the execution marked after. Here the daemon that recovers dies right
// after Recover (nothing queued, nothing marked), and the next start
// resumes the execution once.
func TestAttackKillBetweenRecoverAndEnqueueLosesNothing(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	x := d.waitingAtApproval(t, testenv.Git(t, d.repo, "rev-parse", "main"), deadPID(t))
	stored, err := d.store.GetExecution(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.eng.Recover(ctx, stored); err != nil { // a daemon recovers it, and dies before it queues
		t.Fatal(err)
	}
	start(t, d.server()) // the next start
	waitFor(t, "the interrupted execution to be resumed", func() bool {
		_, ok := d.find(func(e store.Execution) bool { return e.ID != x.ID })
		return ok
	})
	time.Sleep(300 * time.Millisecond)
	old, _ := d.store.GetExecution(ctx, x.ID)
	if n := len(d.executions()); n != 2 || old.Status != store.ExecutionFailed {
		t.Errorf("%d executions, the interrupted one %s (%s): want it failed and resumed once", n, old.Status, old.Error)
	}
}

// Attack (found by a review of the change above): the resumption of main's
// older commit A, waiting at its approval when the daemon died, superseded
// main's newer commit B, queued meanwhile: the branch's head never ran. A
// resumption supersedes nothing.
func TestAttackResumptionSupersedesNoNewerQueuedCommit(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	a := testenv.Git(t, d.repo, "rev-parse", "main")
	testenv.Git(t, d.repo, "commit", "--allow-empty", "-m", "B")
	b := testenv.Git(t, d.repo, "rev-parse", "main")
	x := d.waitingAtApproval(t, a, deadPID(t))
	time.Sleep(5 * time.Millisecond)
	y := pipeline.QueuedExecution(pipeline.Trigger{Kind: pipeline.TriggerPush, Project: d.cfg.Project, Repo: d.repo, Branch: "main",
		Commit: b, ConfigPath: "cutover.yaml"}, time.Now())
	if err := d.store.CreateExecution(ctx, y); err != nil {
		t.Fatal(err)
	}
	start(t, d.server())
	waitFor(t, "the interrupted execution to be resumed", func() bool {
		_, ok := d.find(func(e store.Execution) bool { return e.ID != x.ID && e.ID != y.ID })
		return ok
	})
	time.Sleep(500 * time.Millisecond)
	if st := d.status(y.ID); st == store.ExecutionSuperseded {
		t.Fatalf("main's head %.7s (queued) was superseded by the resumption of the older %.7s", b, a)
	}
}

// Attack (a cancel at the worst moment): a recovering daemon read the
// cancels of an interrupted execution (Recover), queued its resumption,
// and then marked it failed (MarkResumed). A `cutover cancel` of the
// execution in between was accepted and lost: the execution was marked
// failed over it and its resumption ran to production's approval. Now
// MarkResumed reads the cancels in the transaction that ends the
// execution and passes one on to the resumption.
func TestAttackCancelBetweenResumptionAndMarkIsNotLost(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	x, rec, id := d.resumptionQueued(t)
	if _, err := pipeline.RequestCancel(ctx, d.store, x.ID, "alice"); err != nil {
		t.Fatalf("a cancel of the execution before it is marked: %v", err)
	}
	if err := d.eng.MarkResumed(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got := d.status(x.ID); got != store.ExecutionCancelled {
		t.Errorf("the interrupted execution whose cancel was asked: %s, want cancelled", got)
	}
	r, err := d.store.GetExecution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.ExecutionCancelled || !strings.Contains(r.Error, "alice") {
		t.Fatalf("its resumption: %s (%s), want cancelled by alice", r.Status, r.Error)
	}
	// A cancel after the mark names the resumption, the one to cancel.
	if _, err := pipeline.RequestCancel(ctx, d.store, x.ID, "bob"); err == nil || !strings.Contains(err.Error(), "resumed as execution "+id) {
		t.Fatalf("cancelling a resumed execution: %v, want its resumption %s named", err, id)
	}
}

// Attack (kill -9, then a cancel): a daemon queued an interrupted
// execution's resumption and was killed before it marked the execution;
// the execution, still waiting in the store, was then cancelled. The next
// start ended the execution cancelled but left its resumption queued,
// which ran the cancelled work. Now the cancel reaches the resumption.
func TestAttackCancelAfterAKilledResumptionStopsIt(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	x, _, id := d.resumptionQueued(t) // killed here, before MarkResumed
	if _, err := pipeline.RequestCancel(ctx, d.store, x.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	start(t, d.server())
	waitFor(t, "the resumption and the execution to end", func() bool {
		return !store.ExecutionActive(d.status(id)) && !store.ExecutionActive(d.status(x.ID))
	})
	if got := d.status(id); got != store.ExecutionCancelled {
		t.Fatalf("the resumption of a cancelled execution: %s, want cancelled", got)
	}
	if got := d.status(x.ID); got != store.ExecutionCancelled {
		t.Fatalf("the interrupted execution: %s, want cancelled", got)
	}
}

// resumptionQueued leaves an execution waiting at its approval with a dead
// owner, recovered and its resumption queued, as a recovering daemon does
// before MarkResumed.
func (d *daemon) resumptionQueued(t *testing.T) (store.Execution, pipeline.Recovery, string) {
	t.Helper()
	ctx := context.Background()
	x := d.waitingAtApproval(t, testenv.Git(t, d.repo, "rev-parse", "main"), deadPID(t))
	stored, err := d.store.GetExecution(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := d.eng.Recover(ctx, stored)
	if err != nil || rec.Resume == nil {
		t.Fatalf("Recover: %+v, %v", rec, err)
	}
	id, err := d.server().Enqueue(ctx, *rec.Resume, store.Delivery{Source: pipeline.ResumeSource, ID: x.ID})
	if err != nil {
		t.Fatal(err)
	}
	return x, rec, id
}

// Attack (kill -9 between the queueing and the mark, another daemon up): a
// daemon recovering an interrupted execution X queued its resumption R and
// was killed before it marked X (MarkResumed). Another daemon on the same
// store (the one whose work loop is up; resumeInterrupted runs only at a
// start) claimed R and ran it. X, still waiting in the store, was then
// cancelled: `cutover cancel X` was accepted ("cancel": X), but the cancel
// went only to X, which nothing runs, and R ran on to production's approval
// and waited there to deploy the cancelled work, until some daemon's next
// start recovered X. RequestCancel knows X's resumption (the delivery
// resume+X) in the transaction that asks: it must pass the cancel on, as
// MarkResumed and Recover do.
func TestAttackCancelOfAnExecutionWhoseResumptionRunsElsewhereStopsIt(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	start(t, d.server())              // daemon B: its work loop runs whatever is queued
	x, _, id := d.resumptionQueued(t) // daemon A: Recover, Enqueue, killed before MarkResumed
	waitFor(t, "daemon B to run the resumption", func() bool { return d.status(id) != store.ExecutionQueued })
	if _, err := pipeline.RequestCancel(ctx, d.store, x.ID, "alice"); err != nil {
		t.Fatalf("cancelling the interrupted execution: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for store.ExecutionActive(d.status(id)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	r, err := d.store.GetExecution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.ExecutionCancelled || !strings.Contains(r.Error, "alice") {
		t.Fatalf("the cancel of %s was accepted, and its resumption %s is %s (%s): want it cancelled by alice", x.ID, id, r.Status, r.Error)
	}
}
