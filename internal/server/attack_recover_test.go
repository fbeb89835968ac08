package server

import (
	"context"
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
