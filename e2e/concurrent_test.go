package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// Two deploys to one environment: the second is refused at once, naming
// the lease holder; with --wait it waits for the first and then deploys.
func TestConcurrentDeploysOneWinsOtherWaits(t *testing.T) {
	e := newEnv(t)
	a, b := releases(t)
	const strategy = "{ type: blue_green, bake: 3s, termination_wait: 3s }"
	e.write(spec{Release: a, Strategy: strategy})
	e.deploy(true)

	e.write(spec{Release: b, Strategy: strategy})
	l := e.startLoad(loadgen.Options{})
	first := e.start("deploy", envName)
	first.waitPhase(t, "Install", "", 30*time.Second)

	out, errOut, took, err := e.run("deploy", envName)
	t.Logf("second deploy refused after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(errOut))
	holder := fmt.Sprintf("is being deployed by pid %d", first.cmd.Process.Pid)
	if err == nil || !strings.Contains(errOut, holder) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
		t.Errorf("want exit 1 and one or two lines containing %q, got %v:\nstdout: %s\nstderr: %s", holder, err, out, errOut)
	}

	// With --wait the next deploy (release A again) queues behind the first.
	e.write(spec{Release: a, Strategy: strategy})
	waiter := e.start("deploy", envName, "--wait")
	if err := first.wait(); err != nil {
		t.Fatalf("first deploy: %v\n%s", err, first.output())
	}
	firstTook := time.Since(first.start)
	if err := waiter.wait(); err != nil {
		t.Fatalf("deploy --wait: %v\n%s", err, waiter.output())
	}
	res := l.stop()
	t.Logf("first deploy took %s; deploy --wait ended %s after it started (it waited for the first)",
		firstTook.Round(time.Millisecond), time.Since(waiter.start).Round(time.Millisecond))
	wantNoFailures(t, "concurrent deploys", res)
	h := e.history()
	if len(h.Deployments) != 3 || h.Deployments[0].Status != "succeeded" || h.Deployments[1].Status != "succeeded" ||
		h.Deployments[0].CreatedAt.Before(h.Deployments[1].UpdatedAt.Add(-time.Second)) {
		t.Errorf("want the waiting deploy to start after the first ended, both succeeded; history: %+v", h.Deployments)
	}
	e.wantServing(a)
	e.wantOneSet(3)
}
