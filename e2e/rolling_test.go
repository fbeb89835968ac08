package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// A rolling deployment of a crash-looping release: failed tasks are
// replaced until the circuit breaker trips, then the deployment rolls back
// and the previous revision keeps serving.
func TestRollingCrashLoopTripsCircuitBreaker(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	const strategy = "{ type: rolling }"
	for _, c := range []struct {
		count int
		fault string
	}{{1, "exit"}, {3, "exit"}} {
		t.Run(fmt.Sprintf("DesiredCount%d/%s", c.count, c.fault), func(t *testing.T) {
			defer e.sub(t)()
			e.write(spec{Release: a, BackendCount: c.count, Strategy: strategy})
			e.deploy(true)
			e.wantOneSet(c.count + 1)

			e.write(spec{Release: b, Fault: c.fault, BackendCount: c.count, Strategy: strategy})
			l := e.startLoad(loadgen.Options{})
			stderr, took := e.deploy(false)
			res := l.stop()
			d := e.last()
			t.Logf("rolling crash loop (%s, backend desired %d): deploy start to rollback complete %s; reason: %s", c.fault, c.count, took.Round(time.Millisecond), d.Reason)
			wantNoFailures(t, "rolling crash loop", res)
			if d.Status != "rolled_back" || !strings.Contains(d.Reason, "circuit breaker") {
				t.Errorf("deployment %s: status %s, reason %q; want rolled_back by the circuit breaker\n%s", d.ID, d.Status, d.Reason, stderr)
			}
			e.wantServing(a)
			e.wantOneSet(c.count + 1)
		})
	}
}

// A release that passes its health checks and then crashes (crashafter=3s)
// must not be declared a success: a batch must stay healthy for a settle
// time before the old tasks drain, and crashes in it count toward the
// circuit breaker (ECS would declare this deployment complete).
func TestRollingReleaseThatCrashesAfterHealthyRollsBack(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	const strategy = "{ type: rolling }"
	e.write(spec{Release: a, BackendCount: 1, Strategy: strategy})
	e.deploy(true)
	e.write(spec{Release: b, Fault: "crashafter=3s", BackendCount: 1, Strategy: strategy})
	l := e.startLoad(loadgen.Options{})
	_, errOut, took, err := e.run("deploy", envName, "--timeout", "60s")
	time.Sleep(4 * time.Second) // past the crash
	res := l.stop()
	d := e.last()
	t.Logf("rolling release crashing 3s after start: deploy exit %v after %s, status %s, reason %q", err, took.Round(time.Millisecond), d.Status, d.Reason)
	t.Logf("load: %s, errors %v, versions %v", res, res.Errors, res.Header)
	t.Logf("containers by color afterwards: %v", e.containers())
	if d.Status != "rolled_back" || res.Failed != 0 {
		t.Errorf("want the crash caught and rolled back with no failed request; got status %s, %d of %d requests failed\n%s", d.Status, res.Failed, res.Requests, errOut)
	}
}
