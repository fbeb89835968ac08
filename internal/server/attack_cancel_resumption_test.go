package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

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
