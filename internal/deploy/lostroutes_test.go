package deploy

import (
	"testing"

	"github.com/cutoverdev/cutover/internal/store"
)

// The load balancer lost its routes (its state file removed, as its error
// asks when the file is damaged) while green serves, as the store records:
// the next deployment takes green as the original set, so green's routes
// come back, the deployment has a previous revision, and green is stopped
// at the end. Before, green was taken for none: the deployment went into
// blue with no previous revision, and green ran on beside it, unrouted.
func TestDeployWithLostRoutesTakesTheRecordedSetAsTheOriginal(t *testing.T) {
	h := newHarness(t, 1, `    strategy: { type: blue_green, termination_wait: 0s }`)
	h.serving("green", "r-1")
	if _, err := h.store.PutEnvState(h.ctx, store.EnvState{Project: testProject, Environment: testEnv, Revision: "r-1", Status: "up",
		Details: []byte(`{"color":"green","deployment":"d-1"}`)}, store.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	h.fake.setRouting(map[string]int{}) // the routes are gone

	d := h.deploy(h.revision("r-2"))
	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	if d.PreviousRevision != "r-1" {
		t.Errorf("previous revision %q, want r-1 (what the store says served)", d.PreviousRevision)
	}
	if n, _ := h.fake.running("green"); n != 0 {
		t.Errorf("%d tasks of the original green set still run after the deployment, unrouted\n%s", n, dumpCalls(h.fake.recorded()))
	}
	if n, _ := h.fake.running("blue"); n != 1 {
		t.Errorf("%d tasks of blue run, want 1", n)
	}
}
