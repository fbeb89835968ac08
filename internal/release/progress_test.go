package release

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/store"
)

// progressOf places an active deployment in its strategy from the
// persisted controller state alone: step N of M and the timed waits left.
func TestProgressOfAnActiveDeployment(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	strategy := config.Strategy{Type: config.StrategyBlueGreen, Linear: &config.Step{Percent: 25, Interval: config.Duration(10 * time.Minute)},
		Bake: config.Duration(5 * time.Minute), TerminationWait: config.Duration(time.Hour), ReadyWait: config.Duration(2 * time.Minute)}
	at := func(phase string, step int, started time.Duration) store.Deployment {
		raw, _ := json.Marshal(deploy.State{NewColor: "green", OldColor: "blue", Step: step, PhaseStarted: now.Add(-started)})
		return store.Deployment{Phase: phase, Status: store.DeploymentInProgress, Data: raw}
	}
	steps := int(deploy.PhaseTerminating-deploy.PhasePending) + 1
	cases := []struct {
		name            string
		d               store.Deployment
		step            int
		phaseLeft, left time.Duration
	}{
		// Linear 25%: four steps; the last has no wait, so 3 × 10m of shifting.
		{"ready wait", at("ReadyWait", 0, 30*time.Second), int(deploy.PhaseReadyWait) + 1, 90 * time.Second, 90*time.Second + 30*time.Minute + 5*time.Minute + time.Hour},
		{"second step", at("Shifting", 1, 4*time.Minute), int(deploy.PhaseShifting) + 1, 6 * time.Minute, 6*time.Minute + 10*time.Minute + 5*time.Minute + time.Hour},
		{"termination wait", at("TerminationWait", 0, 59*time.Minute), int(deploy.PhaseTerminationWait) + 1, time.Minute, time.Minute},
		{"overdue", at("Baking", 0, time.Hour), int(deploy.PhaseBaking) + 1, 0, time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := progressOf(strategy, c.d, now)
			if p == nil || p.Step != c.step || p.Steps != steps || p.PhaseLeft != c.phaseLeft || p.Left != c.left {
				t.Fatalf("got %+v, want step %d of %d, %s left in the phase, %s in all", p, c.step, steps, c.phaseLeft, c.left)
			}
		})
	}
	if p := progressOf(strategy, store.Deployment{Phase: "deploying"}, now); p != nil {
		t.Errorf("a phase the controller does not know: %+v, want none", p)
	}
	if p := progressOf(config.Strategy{Type: config.StrategyRolling}, store.Deployment{Phase: "Rolling"}, now); p == nil || p.Step != 1 || p.Steps != 1 {
		t.Errorf("rolling: %+v, want step 1 of 1", p)
	}
}

// On ECS the waits are those AWS's deployment configuration reported, not
// the local strategy's: a CodeDeploy linear 10%/1m deployment with a 5
// minute termination wait, of the first of two services, at 30%.
func TestProgressOfAnECSDeployment(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	// The local strategy says otherwise: it must not be used.
	strategy := config.Strategy{Type: config.StrategyBlueGreen, Linear: &config.Step{Percent: 25, Interval: config.Duration(10 * time.Minute)},
		TerminationWait: config.Duration(time.Hour)}
	var steps []deploy.Step
	for p := 10; p < 100; p += 10 {
		steps = append(steps, deploy.Step{Percent: p, Wait: time.Minute})
	}
	sc := &deploy.Schedule{Steps: append(steps, deploy.Step{Percent: 100}), TerminationWait: 5 * time.Minute}
	at := func(phase string, traffic int, sc *deploy.Schedule, done ...string) store.Deployment {
		raw, _ := json.Marshal(deploy.State{NewColor: "new", PhaseStarted: now.Add(-20 * time.Second),
			Cloud: &deploy.CloudState{Services: []string{"backend", "frontend"}, Done: done, Schedule: sc}})
		return store.Deployment{Phase: phase, Status: store.DeploymentInProgress, TrafficPercent: traffic, Data: raw}
	}
	whole := 9*time.Minute + 5*time.Minute // one service's deployment: 9 steps of 1m, then 5m
	cases := []struct {
		name            string
		d               store.Deployment
		phaseLeft, left time.Duration
	}{
		// At 30% (the third step): 40s of its minute, six more steps, the termination wait, then the frontend's whole deployment.
		{"first service shifting", at("Shifting", 30, sc), 40 * time.Second, 40*time.Second + 6*time.Minute + 5*time.Minute + whole},
		{"last service in its termination wait", at("TerminationWait", 100, sc, "backend"), 4*time.Minute + 40*time.Second, 4*time.Minute + 40*time.Second},
		{"not reported yet", at("Install", 0, nil), 0, 0},
		// ECS-native reports no weights while it shifts: the 9 minutes of steps count from the shift's start.
		{"shifting without weights", at("Shifting", 0, sc), 9*time.Minute - 20*time.Second, 9*time.Minute - 20*time.Second + 5*time.Minute + whole},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := progressOf(strategy, c.d, now)
			if p == nil || p.PhaseLeft != c.phaseLeft || p.Left != c.left {
				t.Fatalf("got %+v, want %s left in the phase, %s in all", p, c.phaseLeft, c.left)
			}
		})
	}
}

// The production split and target health are read per scope: another
// environment's (or project's) groups are not counted.
func TestTrafficAndHealthOfOneScope(t *testing.T) {
	st := proxy.State{Listeners: []proxy.Listener{
		{Name: "shop.production/production", Rules: []proxy.Rule{{Forward: []proxy.WeightedTarget{{TargetGroup: "shop.production/web/blue", Weight: 90}, {TargetGroup: "shop.production/web/green", Weight: 10}}}}},
		{Name: "shop.staging/production", Rules: []proxy.Rule{{Forward: []proxy.WeightedTarget{{TargetGroup: "shop.staging/web/blue", Weight: 100}}}}},
	}}
	if got := productionTraffic(st, "shop.production/"); got["blue"] != 90 || got["green"] != 10 || len(got) != 2 {
		t.Errorf("traffic: %v", got)
	}
	targets := []proxy.TargetStatus{
		{Group: "shop.production/web/green", State: "healthy"}, {Group: "shop.production/web/green", State: "unhealthy"},
		{Group: "shop.production/web/blue", State: "draining"}, {Group: "shop.staging/web/blue", State: "healthy"},
	}
	got := targetHealth(targets, "shop.production/")
	want := []TargetHealth{{Service: "web", Color: "green", Healthy: 1, Unhealthy: 1}, {Service: "web", Color: "blue", Other: 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("health: %+v, want %+v", got, want)
	}
}
