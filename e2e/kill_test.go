package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// SIGKILL of `cutover deploy` in each phase: the proxy keeps serving, and
// the next command for the environment (`cutover status` here) reconciles:
// a deployment killed before its termination wait rolls back, one killed in
// it is finished. Nothing stays in progress and no orphan container remains.
func TestKilledDeployIsReconciledInEachPhase(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	const strategy = "{ type: blue_green, canary: { percent: 10, interval: 4s }, bake: 3s, termination_wait: 4s }"
	// A hook that takes a while, so the kill lands while it runs (the
	// orphaned sleep ends by itself).
	const hooks = `{ after_allow_test_traffic: [ { name: e2e-pause, command: ["sleep", "2"] } ] }`
	e.write(spec{Release: a, Strategy: strategy, Hooks: hooks})
	e.deploy(true)

	serving, other := a, b
	// The kill comes on the first line of the phase that contains marker:
	// in Shifting, once the canary's weights are live.
	for _, k := range []struct{ phase, marker string }{
		{"Install", ""}, {"AfterAllowTestTraffic", ""}, {"Shifting", "production traffic:"}, {"Baking", ""}, {"TerminationWait", ""},
	} {
		phase := k.phase
		t.Run(phase, func(t *testing.T) {
			defer e.sub(t)()
			e.write(spec{Release: other, Strategy: strategy, Hooks: hooks})
			l := e.startLoad(loadgen.Options{})
			p := e.start("deploy", envName, "--timeout", "60s")
			line := p.waitPhase(t, phase, k.marker, 60*time.Second)
			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = p.wait() // reaped: the lease's holder is dead
			killedAt := time.Since(p.start)
			time.Sleep(500 * time.Millisecond) // the proxy serves alone for a moment

			_, errOut, took, err := e.run("status", envName)
			if err != nil {
				t.Fatalf("cutover status: %v\n%s", err, errOut)
			}
			res := l.stop()
			d := e.last()
			t.Logf("killed %s after %s at %q; `cutover status` reconciled in %s: %s (%s)",
				phase, killedAt.Round(time.Millisecond), strings.TrimSpace(line), took.Round(time.Millisecond), d.Status, d.Reason)
			wantNoFailures(t, "killed in "+phase, res)
			if !strings.Contains(errOut, "reconciled deployment "+d.ID) {
				t.Errorf("cutover status did not say it reconciled %s:\n%s", d.ID, errOut)
			}
			want, wantStatus := serving, "rolled_back"
			if phase == "TerminationWait" {
				want, wantStatus = other, "succeeded"
			}
			if d.Status != wantStatus || !strings.Contains(d.Reason, "stopped during") {
				t.Errorf("deployment %s: status %s, reason %q; want %s after the controller stopped", d.ID, d.Status, d.Reason, wantStatus)
			}
			e.wantServing(want)
			e.wantOneSet(3)
			if want == other {
				serving, other = other, serving
			}
		})
	}
}
