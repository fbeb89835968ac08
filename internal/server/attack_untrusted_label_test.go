package server

import (
	"context"
	"testing"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// Attack (a viewer reads the queue): a push to a branch outside
// pipeline.trusted_branches shows as "untrusted push" (the dashboard's chip,
// `cutover executions`) only once a runner has claimed it, for only
// Engine.Run records untrusted_branch in its trigger. Queued, it showed as
// any push of a trusted branch; and one that never ran (superseded by a
// newer push of its branch while queued) showed so for good. The daemon
// knows at once: its own cutover.yaml decides, as it does for the run.
func TestAttackQueuedUntrustedBranchRunShowsAsTrusted(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	d.cfg.Pipeline.TrustedBranches = []string{"main"}
	s := d.server()
	first, err := s.Enqueue(ctx, pipeline.Trigger{Kind: pipeline.TriggerPush, Branch: "develop"}, store.Delivery{})
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := s.Enqueue(ctx, pipeline.Trigger{Kind: pipeline.TriggerPush, Branch: "main"}, store.Delivery{})
	if err != nil {
		t.Fatal(err)
	}
	label := func(id string) string {
		x, err := d.store.GetExecution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return pipeline.TriggerLabel(x)
	}
	if got := label(first); got != "untrusted push" {
		t.Errorf("a queued push of develop (trusted_branches: [main]) shows as %q, want \"untrusted push\"", got)
	}
	if got := label(trusted); got != "push" {
		t.Errorf("a queued push of main shows as %q, want \"push\"", got)
	}
	if _, err := s.Enqueue(ctx, pipeline.Trigger{Kind: pipeline.TriggerPush, Branch: "develop"}, store.Delivery{}); err != nil {
		t.Fatal(err)
	}
	if st := d.status(first); st != store.ExecutionSuperseded {
		t.Fatalf("the first push of develop is %s, want superseded", st)
	}
	if got := label(first); got != "untrusted push" {
		t.Errorf("a push of develop superseded before it ran shows as %q for good, want \"untrusted push\"", got)
	}
}
