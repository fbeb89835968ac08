package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// Bad releases roll back by themselves with the reason stated, while the
// original set keeps serving production.
func TestBadReleasesRollBackAutomatically(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	const strategy = `{ type: blue_green, canary: { percent: 10, interval: 4s }, bake: 2s, termination_wait: 3s,
      alarms: [ { metric: error_rate, threshold: 1%, period: 1s, datapoints: 1 of 1 },
                { metric: p95_latency, threshold: 300ms, period: 1s, datapoints: 2 of 3 } ] }`
	e.write(spec{Release: a, Strategy: strategy})
	e.deploy(true)

	cases := []struct {
		name, fault, hooks string
		reason             []string
		failedShare        float64 // requests that may fail: the canary's share while the alarm detects
		load               loadgen.Options
	}{
		{name: "ExitsAtStart", fault: "exit", reason: []string{"exited with code 1"}},
		{name: "ListensOnWrongPort", fault: "port=5201", reason: []string{"nothing is listening on container port 3001; the process listens on 5201"}},
		{name: "HTTPHookFails", reason: []string{"AfterAllowTestTraffic", "e2e-body-check"},
			hooks: `{ after_allow_test_traffic: [ { name: e2e-body-check, http: { path: /api/health, expect_body: "no such text" } } ] }`},
		{name: "CommandHookFails", reason: []string{"BeforeAllowTraffic", "e2e-exit-3"},
			hooks: `{ before_allow_traffic: [ { name: e2e-exit-3, command: ["sh", "-c", "exit 3"] } ] }`},
		{name: "Returns500DuringCanary", fault: "error500", reason: []string{"error_rate"}, failedShare: 0.15},
		{name: "SlowResponses", fault: "slow=800ms", reason: []string{"p95"},
			load: loadgen.Options{Concurrency: 32, Rate: 150}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer e.sub(t)()
			e.write(spec{Release: b, Fault: c.fault, Hooks: c.hooks, Strategy: strategy})
			l := e.startLoad(c.load)
			stderr, took := e.deploy(false)
			res := l.stop()
			d := e.last()
			t.Logf("%s: deploy start to rollback complete %s; reason: %s", c.name, took.Round(time.Millisecond), d.Reason)
			if c.failedShare == 0 {
				wantNoFailures(t, c.name, res)
			} else {
				t.Logf("%s: %s, versions %v", c.name, res, res.Header)
				if limit := int(c.failedShare * float64(res.Requests)); res.Failed > limit || res.Requests < 100 {
					t.Errorf("%s: %d of %d requests failed; want at most %d (the canary's share during detection)", c.name, res.Failed, res.Requests, limit)
				}
			}
			if d.Status != "rolled_back" {
				t.Errorf("deployment %s: status %s, want rolled_back\n%s", d.ID, d.Status, stderr)
			}
			for _, want := range c.reason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q does not contain %q", d.Reason, want)
				}
			}
			e.wantServing(a)
			e.wantOneSet(3)
		})
	}
}
