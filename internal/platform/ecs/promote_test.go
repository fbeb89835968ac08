package ecs

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// TestCodeDeployPromote: `cutover promote` while CodeDeploy shifts traffic
// linearly cannot skip its steps (AWS has no API for it); the controller
// keeps the request and, once the deployment reaches its termination wait,
// ends it with ContinueDeployment TERMINATION_WAIT: the deployment
// succeeds at 11 minutes instead of 16, without a stop or rollback.
func TestCodeDeployPromote(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sim := &linearDeployment{clock: clock, start: clock.Now()}
	h, s, _ := linearController(t, sim)
	progress, asked := h.c.Progress, false
	h.c.Progress = func(e deploy.Event) {
		progress(e)
		if e.Kind == deploy.KindNews && strings.Contains(e.Message, " 30% of traffic") && !asked {
			asked = true
			if _, err := deploy.Request(h.ctx, h.store, "bluemed", "production", deploy.RequestPromote, "dave"); err != nil {
				t.Error(err)
			}
		}
	}
	got := h.deploy(rev("9"))
	h.wantReadable(got)
	if got.Status != store.DeploymentSucceeded || got.TrafficPercent != 100 || s.called("StopDeployment") != 0 {
		t.Fatalf("deployment %s %s (%s), StopDeployment calls %d", got.Status, got.Phase, got.Reason, s.called("StopDeployment"))
	}
	if len(sim.continues) != 1 || !strings.HasPrefix(sim.continues[0], "TERMINATION_WAIT at 11") {
		t.Errorf("ContinueDeployment calls %v, want one TERMINATION_WAIT once the termination wait began (minute 11)", sim.continues)
	}
	if took := clock.Now().Sub(sim.start); took >= 13*time.Minute {
		t.Errorf("a promoted deployment was followed for %s: its termination wait was not ended", took)
	}
	if !slices.ContainsFunc(h.events("request"), func(m string) bool { return strings.Contains(m, "promoted: AWS ends the TerminationWait") }) {
		t.Errorf("requests told %q", h.events("request"))
	}
}

// TestNativePromote: `cutover promote` on an ECS-native deployment with a
// pause before production traffic continues it (ContinueServiceDeployment
// on the PAUSE hook); ECS has no API to end the bake time, which runs as
// configured and is said to.
func TestNativePromote(t *testing.T) {
	n, s, p := nativePlatform(t)
	h := newCtrl(t, nil, []string{"backend"}, "    strategy: { type: blue_green, manual_continue: true, ready_wait: 30m, bake: 10m } # ecs-native\n")
	d, err := p.Driven(DrivenOptionsFor("production", h.c.Config.Environments["production"], []string{"backend"}))
	if err != nil {
		t.Fatal(err)
	}
	h.c.Driven = d
	asked := false
	n.onStage = func(stage string, _ bool) {
		if stage == "SCALE_UP" && !asked {
			asked = true
			if _, err := deploy.Request(h.ctx, h.store, "bluemed", "production", deploy.RequestPromote, "erin"); err != nil {
				t.Error(err)
			}
		}
	}
	got := h.deploy(rev("9"))
	h.wantReadable(got)
	if got.Status != store.DeploymentSucceeded || !n.continued || s.called("ContinueServiceDeployment") != 1 || s.called("StopServiceDeployment") != 0 {
		t.Fatalf("deployment %s %s (%s); continued %v, ContinueServiceDeployment %d, StopServiceDeployment %d",
			got.Status, got.Phase, got.Reason, n.continued, s.called("ContinueServiceDeployment"), s.called("StopServiceDeployment"))
	}
	if !slices.ContainsFunc(h.events("request"), func(m string) bool {
		return strings.Contains(m, "promote in TerminationWait") && strings.Contains(m, "no API to end a bake time early")
	}) {
		t.Errorf("the bake time that cannot be ended is not told: %q", h.events("request"))
	}
}
