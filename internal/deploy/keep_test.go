package deploy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/cutoverdev/cutover/internal/store"
)

// keeperPlatform is the fake with deploy.Keeper: each KeepRunning is
// recorded with the deployment phase stored at the time, and onKeep runs
// first (a test kills the controller there).
type keeperPlatform struct {
	*fakePlatform
	mu     sync.Mutex
	kept   []string // "color in phase"
	onKeep func()
}

func (p *keeperPlatform) KeepRunning(ctx context.Context, color string) error {
	phase := p.phase()
	p.mu.Lock()
	p.kept = append(p.kept, color+" in "+phase)
	f := p.onKeep
	p.mu.Unlock()
	if f != nil {
		f()
	}
	return ctx.Err()
}

// A controller killed while it gives the new serving set its restart
// policy leaves the deployment in progress, so the next command finishes
// it and gives the policy again. Before, the end was recorded first: killed
// at that moment, the deployment said succeeded and no command ever asked
// for the policy, so the serving tasks were not restarted when they crashed.
func TestKilledWhileKeepingTheServingSetTheNextCommandKeepsIt(t *testing.T) {
	h := newHarness(t, 1, `    strategy: { type: blue_green, termination_wait: 0s }`)
	h.serving("blue", "r-1")
	kp := &keeperPlatform{fakePlatform: h.fake}
	h.ctrl.Platform = kp
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	kp.onKeep = cancel // the controller dies as it asks

	d, err := h.ctrl.Deploy(ctx, h.revision("r-2"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Deploy: %v, want interrupted", err)
	}
	stored, err := h.store.GetDeployment(h.ctx, d.ID)
	if err != nil || stored.Status != store.DeploymentInProgress {
		t.Fatalf("after the kill while keeping the serving set: %s in %s (%v), want still in progress", stored.Status, stored.Phase, err)
	}

	kp.onKeep = nil
	next := *h.ctrl // the next command's controller
	h.ctrl = &next
	r := h.reconcile(false)
	wantStatus(t, r, store.DeploymentSucceeded, "Succeeded")
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if len(kp.kept) != 2 || !strings.HasPrefix(kp.kept[1], "green in ") || strings.HasSuffix(kp.kept[1], "Succeeded") {
		t.Errorf("KeepRunning calls %q: want green asked again by the next command, before the end is recorded", kp.kept)
	}
}
