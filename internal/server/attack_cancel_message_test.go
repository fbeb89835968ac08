package server

import (
	"context"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// Attack (an execution resumed twice, a misleading refusal): X was
// resumed as R1, and R1, interrupted in its turn, as R2. `cutover cancel X`
// answered "it was resumed as execution R1: cancel that one (cutover cancel
// R1)", R1 being failed itself: the command it gave was refused in its turn.
// And once the resumption had ended, the refusal still told to cancel it.
// The refusal names the resumption that runs, or says the last one ended.
func TestAttackCancelOfATwiceResumedExecutionNamesTheLiveResumption(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	x, rec, r1 := d.resumptionQueued(t)
	if err := d.eng.MarkResumed(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// R1 ran to production's approval, and its daemon died there.
	q, err := d.store.GetExecution(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	w := d.waitingAtApproval(t, q.Commit, deadPID(t))
	q.Status, q.Stages, q.OwnerPID, q.OwnerHost = w.Status, w.Stages, w.OwnerPID, w.OwnerHost
	if _, err := d.store.UpdateExecution(ctx, q, q.Generation); err != nil {
		t.Fatal(err)
	}
	if q, err = d.store.GetExecution(ctx, r1); err != nil {
		t.Fatal(err)
	}
	rec1, err := d.eng.Recover(ctx, q)
	if err != nil || rec1.Resume == nil {
		t.Fatalf("Recover of R1: %+v, %v", rec1, err)
	}
	r2, err := d.server().Enqueue(ctx, *rec1.Resume, store.Delivery{Source: pipeline.ResumeSource, ID: r1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.eng.MarkResumed(ctx, rec1); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.RequestCancel(ctx, d.store, x.ID, "alice")
	if err == nil || !strings.Contains(err.Error(), "cutover cancel "+r2) {
		t.Errorf("cancelling %s, resumed as %s, itself resumed as %s (queued): %v; want %s named as the one to cancel", x.ID, r1, r2, err, r2)
	}
	if _, err := pipeline.RequestCancel(ctx, d.store, r2, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.RequestCancel(ctx, d.store, x.ID, "bob")
	if err == nil || strings.Contains(err.Error(), "cancel that one") {
		t.Errorf("cancelling %s once its resumptions all ended: %v; want no resumption to cancel offered", x.ID, err)
	}
}
