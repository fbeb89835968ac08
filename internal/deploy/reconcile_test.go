package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
)

// orphan records a deployment of r-2 into green, left in phase by a
// controller that died (its lease is gone), with blue running r-1 and
// green running r-2 as the platform shows them.
func (h *harness) orphan(strategy, phase string, routing map[string]int) store.Deployment {
	h.t.Helper()
	h.revision("r-1")
	h.revision("r-2")
	h.fake.seedSet("blue", "r-1", h.fake.Desired())
	h.fake.seedSet("green", "r-2", h.fake.Desired())
	h.fake.setRouting(routing)
	seq, err := h.store.AppendEvent(h.ctx, store.Event{Project: testProject, Environment: testEnv, Kind: "deployment.requested"})
	if err != nil {
		h.t.Fatal(err)
	}
	st := State{OldColor: "blue", NewColor: "green", PhaseStarted: time.Now().UTC(), RequestSeq: seq}
	d := store.Deployment{ID: "d-orphan", Project: testProject, Environment: testEnv, Revision: "r-2", PreviousRevision: "r-1",
		Strategy: strategy, Phase: phase, Status: store.DeploymentInProgress, Data: mustJSON(st), Owner: "host-4242-1"}
	if err := h.store.CreateDeployment(h.ctx, d); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) reconcile(rollback bool) store.Deployment {
	h.t.Helper()
	d, err := h.ctrl.Reconcile(h.ctx, rollback)
	if err != nil {
		h.t.Fatalf("Reconcile: %v", err)
	}
	if d == nil {
		h.t.Fatal("Reconcile found nothing to do")
	}
	stored, err := h.store.GetDeployment(h.ctx, d.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return stored
}

func TestReconcileNothingToDo(t *testing.T) {
	h := newHarness(t, 1, "    strategy: {type: blue_green}")
	d, err := h.ctrl.Reconcile(h.ctx, false)
	if d != nil || err != nil {
		t.Fatalf("Reconcile on an idle environment = %v, %v; want nil, nil", d, err)
	}
	if calls := h.fake.recorded(); len(calls) != 0 {
		t.Errorf("platform calls on an idle environment:%s", dumpCalls(calls))
	}
}

func TestReconcileRollsBackInterruptedDeployment(t *testing.T) {
	for _, phase := range []string{"Install", "AfterAllowTestTraffic", "Shifting", "Baking", "RollingBack"} {
		t.Run(phase, func(t *testing.T) {
			h := newHarness(t, 2, "    strategy: {type: blue_green}")
			h.orphan("blue_green", phase, map[string]int{"blue": 90, "green": 10})

			d := h.reconcile(false)

			wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
			calls := h.fake.recorded()
			if len(calls) != 2 || !isRoute(map[string]int{"blue": 100})(calls[0]) || !isScale("green", 0)(calls[1]) {
				t.Fatalf("want the flip to blue, then green scaled to zero:%s", dumpCalls(calls))
			}
			if calls[0].Phase != "RollingBack" {
				t.Errorf("flip made while the store says %s, want RollingBack", calls[0].Phase)
			}
			if phase != "RollingBack" {
				containsAll(t, "reason", d.Reason, "host-4242-1", "stopped during "+phase, "rolled back")
			}
			if h.envState().Revision != "r-1" {
				t.Errorf("serving %q, want r-1", h.envState().Revision)
			}
			if _, err := h.lastEvent("deployment.reconciled"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestReconcileFinishesTerminationWait(t *testing.T) {
	h := newHarness(t, 2, "    strategy: {type: blue_green, termination_wait: 1h}")
	h.orphan("blue_green", "TerminationWait", map[string]int{"green": 100, "blue": 0})
	// A request sent to the dead controller is void: it must not roll back now.
	h.request(RequestRollback)

	d := h.reconcile(false)

	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	if got := h.phases(); len(got) != 1 || got[0] != "Terminating" {
		t.Errorf("phases %v, want straight to Terminating (the wait is not restarted)", got)
	}
	calls := h.fake.recorded()
	if len(calls) != 2 || !isRoute(map[string]int{"green": 100})(calls[0]) || !isScale("blue", 0)(calls[1]) {
		t.Fatalf("want green 100%% then blue stopped:%s", dumpCalls(calls))
	}
	containsAll(t, "reason", d.Reason, "stopped during TerminationWait", "finished by the next command")
	if es := h.envState(); es.Revision != "r-2" || es.Status != "up" {
		t.Errorf("environment state %q %q, want r-2 up", es.Revision, es.Status)
	}
}

func TestReconcileWithRollbackFlipsBackFromTerminationWait(t *testing.T) {
	h := newHarness(t, 2, "    strategy: {type: blue_green, termination_wait: 1h}")
	h.orphan("blue_green", "TerminationWait", map[string]int{"green": 100, "blue": 0})

	d := h.reconcile(true)

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	calls := h.fake.recorded()
	if len(calls) != 2 || !isRoute(map[string]int{"blue": 100})(calls[0]) || !isScale("green", 0)(calls[1]) {
		t.Fatalf("want the flip to blue first, then green stopped:%s", dumpCalls(calls))
	}
	if h.envState().Revision != "r-1" {
		t.Errorf("serving %q, want r-1", h.envState().Revision)
	}
}

func TestReconcileRollingRestoresDrainedOldSet(t *testing.T) {
	h := newHarness(t, 4, "    strategy: {type: rolling}")
	h.orphan("rolling", "Rolling", map[string]int{"green": 50, "blue": 50})
	h.fake.seedSet("blue", "r-1", map[string]int{"web": 2}) // half drained when the controller died

	d := h.reconcile(false)

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	calls := h.fake.recorded()
	restore := callIndex(calls, 0, func(c fakeCall) bool { return isScale("blue", 4)(c) && c.Rev == "r-1" })
	flip := callIndex(calls, restore, isRoute(map[string]int{"blue": 100}))
	stop := callIndex(calls, flip, isScale("green", 0))
	if restore != 0 || flip < 0 || stop < 0 {
		t.Fatalf("want blue back to 4 tasks of r-1 before the flip, then green removed:%s", dumpCalls(calls))
	}
	if calls[flip].After["blue"][1] != 4 {
		t.Errorf("traffic flipped to blue with %d healthy tasks, want 4", calls[flip].After["blue"][1])
	}
}

func TestLockSecondHolderFailsNamingTheHolder(t *testing.T) {
	h := newHarness(t, 1, "    strategy: {type: blue_green}")
	lctx, release, err := Lock(h.ctx, h.store, testProject, testEnv, "cutover deploy", false)
	if err != nil {
		t.Fatal(err)
	}

	_, _, err = Lock(h.ctx, h.store, testProject, testEnv, "cutover rollback", false)

	if !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("second Lock: %v, want ErrLeaseHeld", err)
	}
	containsAll(t, "error", err.Error(), fmt.Sprintf("pid %d", os.Getpid()), "(cutover deploy)", "shop/prod", "--wait", "cutover stop prod")
	if strings.Count(err.Error(), "\n") > 1 {
		t.Errorf("error has more than two lines: %q", err)
	}

	// With wait, it gives up when its context ends.
	wctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
	defer cancel()
	if _, _, err := Lock(wctx, h.store, testProject, testEnv, "cutover deploy", true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting Lock: %v, want the context's deadline", err)
	}

	release()
	if lctx.Err() == nil {
		t.Error("the lease context is not cancelled by release")
	}
	_, release2, err := Lock(h.ctx, h.store, testProject, testEnv, "cutover deploy", false)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	release2()
}

func TestLockTakesOverLeaseOfDeadProcess(t *testing.T) {
	h := newHarness(t, 1, "    strategy: {type: blue_green}")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil { // started and reaped: its PID is dead
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	host, _ := os.Hostname()
	if _, err := h.store.AcquireLease(h.ctx, LeaseKey(testProject, testEnv),
		store.Holder{ID: "dead-holder", PID: dead, Host: host, Command: "cutover deploy"}, LeaseTTL, nil); err != nil {
		t.Fatal(err)
	}

	_, release, err := Lock(h.ctx, h.store, testProject, testEnv, "cutover deploy", false)

	if err != nil {
		t.Fatalf("Lock over the lease of dead pid %d: %v", dead, err)
	}
	defer release()
	l, err := h.store.GetLease(h.ctx, LeaseKey(testProject, testEnv))
	if err != nil {
		t.Fatal(err)
	}
	if l.Holder.PID != os.Getpid() || l.Holder.ID == "dead-holder" {
		t.Errorf("lease holder %+v, want this process", l.Holder)
	}
}

func TestLockDoesNotTakeOverLiveHolderOnAnotherHost(t *testing.T) {
	h := newHarness(t, 1, "    strategy: {type: blue_green}")
	// A PID on another host cannot be checked from here: only the TTL frees it.
	if _, err := h.store.AcquireLease(h.ctx, LeaseKey(testProject, testEnv),
		store.Holder{ID: "elsewhere", PID: 1 << 30, Host: "some-other-host", Command: "cutover deploy"}, LeaseTTL, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Lock(h.ctx, h.store, testProject, testEnv, "cutover deploy", false); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("Lock: %v, want ErrLeaseHeld", err)
	}
}
