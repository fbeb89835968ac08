package deploy

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
)

// A promote during the first linear step skips the remaining steps, the
// bake and the termination wait: the next route puts 100% on the new set
// and the deployment succeeds long before its schedule (hours) would end.
func TestPromoteSkipsRemainingStepsAndWaits(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      linear: {percent: 10, interval: 1h}
      bake: 1h
      termination_wait: 1h`)
	h.serving("blue", "r-1")
	var wg sync.WaitGroup
	h.onPhase = func(p string) {
		if p != "Shifting" {
			return
		}
		wg.Go(func() {
			time.Sleep(100 * time.Millisecond) // many ticks into the first step
			h.request(RequestPromote)
		})
	}
	start := time.Now()
	d := h.deploy(h.revision("r-2"))
	wg.Wait()

	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a promoted deployment took %s", took)
	}
	var got []int
	for _, c := range h.fake.recorded() {
		if c.Op == "route" {
			got = append(got, c.Routing.Production["green"])
		}
	}
	// test traffic (0), the first step (10), then straight to 100, then the old set deregistered.
	if want := []int{0, 10, 100, 100}; !slices.Equal(got, want) {
		t.Errorf("percent on the new set: got %v, want %v%s", got, want, dumpCalls(h.fake.recorded()))
	}
	if d.TrafficPercent != 100 {
		t.Errorf("traffic on the new revision %d%%, want 100", d.TrafficPercent)
	}
	// The phases it passed through say they were skipped, not that the old
	// set stays alive for an hour with a rollback being a traffic flip.
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs := map[string]string{}
	for _, ev := range h.events {
		if ev.Kind == "phase" {
			msgs[ev.Phase] = ev.Message
		}
	}
	for phase, want := range map[string]string{
		"Baking":          "bake time skipped (promoted)",
		"TerminationWait": "termination wait skipped (promoted): the blue set is stopped now",
	} {
		if msgs[phase] != want {
			t.Errorf("%s after a promote says %q, want %q", phase, msgs[phase], want)
		}
	}
}

// Promote does not skip the wait for the new set's health: a set that
// never becomes healthy is rolled back as without it.
func TestPromoteDuringInstallStillWaitsForHealth(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      termination_wait: 0s`)
	h.ctrl.Timeout = 300 * time.Millisecond
	h.serving("blue", "r-1")
	h.fake.behave = func(color, rev string) taskScript { return taskScript{healthyAfter: 1 << 30} }
	h.onPhase = func(p string) {
		if p == "Install" {
			go h.request(RequestPromote)
		}
	}

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	for _, c := range h.fake.recorded() {
		if c.Op == "route" && c.Routing.Production["green"] > 0 {
			t.Errorf("production traffic reached an unhealthy set after a promote: %s", c)
		}
	}
}
