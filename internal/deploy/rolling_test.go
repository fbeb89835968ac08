package deploy

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

func TestRollingBatchesRespectMaximumAndMinimumHealthy(t *testing.T) {
	h := newHarness(t, 4, `    strategy:
      type: rolling
      maximum_percent: 150
      minimum_healthy_percent: 100`)
	h.serving("blue", "r-1")
	h.fake.behave = func(string, string) taskScript { return taskScript{healthyAfter: 2} }

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	if got := h.phases(); !slices.Equal(got, []string{"Rolling"}) {
		t.Errorf("phases %v, want [Rolling]", got)
	}
	calls := h.fake.recorded()
	var batches []int
	for _, c := range calls {
		if c.Op == "scale" && c.Color == "green" {
			if n := c.Counts["web"]; len(batches) == 0 || batches[len(batches)-1] != n {
				batches = append(batches, n)
			}
			if c.Rev != "r-2" {
				t.Errorf("new tasks started with revision %q", c.Rev)
			}
		}
		// maximum 150% of 4: never more than 6 tasks; minimum healthy 100%: never fewer than 4 healthy.
		if total := c.After["blue"][0] + c.After["green"][0]; total > 6 {
			t.Errorf("%d tasks after %s, maximum is 6%s", total, c, dumpCalls(calls))
		}
		if healthy := c.After["blue"][1] + c.After["green"][1]; healthy < 4 {
			t.Errorf("%d healthy tasks after %s, minimum is 4%s", healthy, c, dumpCalls(calls))
		}
	}
	if !slices.Equal(batches, []int{2, 4}) {
		t.Errorf("new set sizes %v, want batches of 2: [2 4]%s", batches, dumpCalls(calls))
	}
	routes := h.fake.routes()
	if len(routes) == 0 || !mapsEqual(routes[0], map[string]int{"green": 50, "blue": 50}) || !mapsEqual(routes[len(routes)-1], map[string]int{"green": 100}) {
		t.Errorf("routes %v: want traffic to follow the counts (50/50), then all on green", routes)
	}
	if n, _ := h.fake.running("blue"); n != 0 {
		t.Errorf("%d old tasks left", n)
	}
	if h.envState().Revision != "r-2" {
		t.Errorf("serving %q, want r-2", h.envState().Revision)
	}
}

// failingTasks makes every task of the green set fail at its first poll.
func failingTasks(color, rev string) taskScript {
	if color != "green" {
		return taskScript{}
	}
	code := 1
	return taskScript{failAfter: 1, failure: TaskFailure{Reason: "exited with code 1", ExitCode: &code}}
}

func TestRollingCircuitBreakerTripsAtThresholdAndRestoresOldSet(t *testing.T) {
	// desired 1: threshold clamp(ceil(0.5), 3, 200) = 3. Maximum 100% and
	// minimum healthy 0% drain the old task before the first new one starts,
	// so the rollback has to bring it back.
	h := newHarness(t, 1, `    strategy:
      type: rolling
      maximum_percent: 100
      minimum_healthy_percent: 0`)
	h.serving("blue", "r-1")
	h.fake.behave = failingTasks

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	containsAll(t, "reason", d.Reason, "circuit breaker tripped", "3 tasks failed", "threshold 3", "web: exited with code 1")
	var ev struct {
		Failures  []TaskFailure `json:"failures"`
		Threshold int           `json:"threshold"`
	}
	if err := json.Unmarshal(d.Evidence, &ev); err != nil || ev.Threshold != 3 || len(ev.Failures) != 3 {
		t.Errorf("evidence %s (%v): want 3 failures and threshold 3", d.Evidence, err)
	}
	calls := h.fake.recorded()
	started := 0
	for _, c := range calls {
		if isScale("green", 1)(c) {
			started++
		}
	}
	if started != 3 {
		t.Errorf("green started (or replaced) %d times, want 3: trip at the third failure%s", started, dumpCalls(calls))
	}
	restore := callIndex(calls, 0, func(c fakeCall) bool { return isScale("blue", 1)(c) && c.Rev == "r-1" && c.Phase == "RollingBack" })
	flip := callIndex(calls, restore, isRoute(map[string]int{"blue": 100}))
	stop := callIndex(calls, flip, isScale("green", 0))
	if restore < 0 || flip < 0 || stop < 0 {
		t.Fatalf("want blue restored with r-1, traffic to blue, then green removed:%s", dumpCalls(calls))
	}
	if n, healthy := h.fake.running("blue"); n != 1 || healthy != 1 || h.fake.revOf("blue") != "r-1" {
		t.Errorf("blue runs %d tasks (%d healthy) of %q, want 1 healthy of r-1", n, healthy, h.fake.revOf("blue"))
	}
	if h.envState().Revision != "r-1" {
		t.Errorf("serving %q, want r-1", h.envState().Revision)
	}
}

func TestRollingCircuitBreakerWithoutRollbackFails(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: rolling
      circuit_breaker: {enable: true, rollback: false}`)
	h.serving("blue", "r-1")
	h.fake.behave = failingTasks

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentFailed, "Failed")
	containsAll(t, "reason", d.Reason, "circuit breaker tripped")
	for _, c := range h.fake.recorded() {
		if c.Phase == "RollingBack" {
			t.Errorf("rolled back although circuit_breaker.rollback is false: %s", c)
		}
	}
	// Maximum 200% left the old task running: it still serves.
	if n, _ := h.fake.running("blue"); n != 1 {
		t.Errorf("blue runs %d tasks, want 1", n)
	}
}

func TestCircuitBreakerThreshold(t *testing.T) {
	for desired, want := range map[int]int{1: 3, 4: 3, 6: 3, 7: 4, 10: 5, 400: 200, 1000: 200} {
		if got := config.CircuitBreakerThreshold(desired); got != want {
			t.Errorf("threshold for %d = %d, want %d", desired, got, want)
		}
	}
}
