package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// A good release under steady load, with each way of moving traffic: no
// request fails, all traffic ends on the new release, and the old set is
// gone once the termination wait is over.
func TestBlueGreenGoodDeployEachTrafficConfig(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	e.write(spec{Release: a, Strategy: "{ type: blue_green, termination_wait: 3s }"})
	_, took := e.deploy(true)
	t.Logf("first deployment (no original set): %s", took.Round(time.Millisecond))
	e.wantServing(a)

	cases := []struct {
		name, strategy string
		to             release
	}{
		{"AllAtOnce", "{ type: blue_green, traffic: AllAtOnce, bake: 2s, termination_wait: 3s }", b},
		{"Canary10Percent3s", "{ type: blue_green, canary: { percent: 10, interval: 3s }, bake: 2s, termination_wait: 3s }", a},
		{"Linear34PercentEvery2s", "{ type: blue_green, linear: { percent: 34, interval: 2s }, bake: 2s, termination_wait: 3s }", b},
	}
	from := a
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer e.sub(t)()
			e.write(spec{Release: c.to, Strategy: c.strategy})
			l := e.startLoad(loadgen.Options{})
			_, took := e.deploy(true)
			res := l.stop()
			t.Logf("%s deploy %s -> %s took %s", c.name, from.Version, c.to.Version, took.Round(time.Millisecond))
			wantNoFailures(t, c.name, res)
			if res.Header[c.to.Version] == 0 || res.Header[from.Version] == 0 {
				t.Errorf("both releases should have answered during the deploy: %v", res.Header)
			}
			e.wantServing(c.to)
			e.wantOneSet(3)
			if d := e.last(); d.Status != "succeeded" || d.TrafficPercent != 100 {
				t.Errorf("deployment %s: status %s, %d%% traffic; want succeeded, 100%%", d.ID, d.Status, d.TrafficPercent)
			}
			from = c.to
		})
	}
}

// `cutover rollback` during the termination wait flips production back to
// the original set, which is still alive, and removes the new set.
func TestRollbackDuringTerminationWaitFlipsBack(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	strategy := "{ type: blue_green, termination_wait: 60s }"
	e.write(spec{Release: a, Strategy: strategy})
	e.deploy(true)

	e.write(spec{Release: b, Strategy: strategy})
	l := e.startLoad(loadgen.Options{})
	p := e.start("deploy", envName)
	p.waitPhase(t, "TerminationWait", "", 60*time.Second)
	e.wantServing(b)
	if n := e.containers(); len(n) != 2 {
		t.Fatalf("during the termination wait both sets should run, found %v", n)
	}

	// Watch for the moment answers come from A again, while rollback runs.
	flipped := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		for time.Since(start) < 30*time.Second {
			if v := e.versionOnce(); v == a.Version {
				flipped <- time.Since(start)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		flipped <- -1
	}()
	out, errOut, took, err := e.run("rollback", envName)
	if err != nil {
		t.Fatalf("cutover rollback: %v\n%s%s", err, out, errOut)
	}
	flip := <-flipped
	derr := p.wait()
	res := l.stop()
	t.Logf("rollback during the termination wait: traffic back on %s after %s; the rollback command took %s; deploy ended: %v",
		a.Version, flip.Round(time.Millisecond), took.Round(time.Millisecond), derr)
	wantNoFailures(t, "rollback", res)
	if flip < 0 {
		t.Errorf("traffic never came back to %s", a.Version)
	}
	if derr == nil {
		t.Errorf("the rolled back deploy exited 0; want 1")
	}
	e.wantServing(a)
	e.wantOneSet(3)
	d := e.last()
	if d.Status != "rolled_back" || !strings.Contains(d.Reason, "rollback requested") {
		t.Errorf("deployment %s: status %s, reason %q; want rolled_back because a rollback was requested", d.ID, d.Status, d.Reason)
	}
}

// versionOnce returns the version one backend request answers with, or "".
func (e *env) versionOnce() string {
	resp, err := httpClient.Get(e.url("/api/version"))
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("X-Bluemed-Version")
}
