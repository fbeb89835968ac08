package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/store"
)

// The driver tests run whole deployments against the fake platform
// (fake_test.go) with a real store and a real parsed configuration.

func TestBlueGreenHappyPathPersistsEveryPhaseBeforeActing(t *testing.T) {
	h := newHarness(t, 2, `    strategy:
      type: blue_green
      bake: 20ms
      termination_wait: 20ms`)
	h.serving("blue", "r-1")
	h.fake.behave = func(string, string) taskScript { return taskScript{healthyAfter: 3} }
	var notPersisted []string
	h.onPhase = func(phase string) {
		if got := h.fake.phase(); got != phase {
			notPersisted = append(notPersisted, phase+" (store: "+got+")")
		}
	}

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	want := []string{"Pending", "BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic",
		"BeforeAllowTraffic", "ReadyWait", "Shifting", "AfterAllowTraffic", "Baking", "TerminationWait", "Terminating"}
	if got := h.phases(); !slices.Equal(got, want) {
		t.Fatalf("phases:\n got %v\nwant %v", got, want)
	}
	if len(notPersisted) > 0 {
		t.Errorf("phases started before they were stored: %v", notPersisted)
	}
	// One write per transition at least: a crash loses no phase.
	if d.Generation < int64(len(want)) {
		t.Errorf("generation %d: fewer writes than the %d transitions", d.Generation, len(want))
	}
	if d.TrafficPercent != 100 || d.PreviousRevision != "r-1" {
		t.Errorf("traffic %d%%, previous revision %q; want 100%% and r-1", d.TrafficPercent, d.PreviousRevision)
	}

	calls := h.fake.recorded()
	wantCalls := []struct {
		match func(fakeCall) bool
		phase string
	}{
		{func(c fakeCall) bool { return isScale("green", 2)(c) && c.Rev == "r-2" }, "Install"},
		{func(c fakeCall) bool {
			return isRoute(map[string]int{"blue": 100, "green": 0})(c) && c.Routing.Test == "green"
		}, "AllowTestTraffic"},
		{isRoute(map[string]int{"blue": 0, "green": 100}), "Shifting"},
		{isRoute(map[string]int{"green": 100}), "Terminating"},
		{isScale("blue", 0), "Terminating"},
	}
	if len(calls) != len(wantCalls) {
		t.Fatalf("platform calls:%s\nwant %d calls", dumpCalls(calls), len(wantCalls))
	}
	for i, w := range wantCalls {
		if !w.match(calls[i]) || calls[i].Phase != w.phase {
			t.Errorf("call %d is %s, want one in phase %s%s", i, calls[i], w.phase, dumpCalls(calls))
		}
	}

	es := h.envState()
	if es.Revision != "r-2" || es.Status != "up" {
		t.Errorf("environment state: revision %q status %q, want r-2 up", es.Revision, es.Status)
	}
	if e, err := h.lastEvent("deployment.succeeded"); err != nil {
		t.Error(err)
	} else {
		containsAll(t, "event", e.Message, d.ID, "r-2")
	}
}

func TestFirstDeploymentHasNoOldSet(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      canary: {percent: 10, interval: 1h}`)

	d := h.deploy(h.revision("r-1"))

	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	// Nothing else can serve: the canary schedule does not apply, and nothing is stopped.
	for _, r := range h.fake.routes() {
		if !mapsEqual(r, map[string]int{"blue": 100}) {
			t.Errorf("route %v on a first deployment, want only blue 100%%%s", r, dumpCalls(h.fake.recorded()))
		}
	}
	if d.PreviousRevision != "" || h.envState().Revision != "r-1" {
		t.Errorf("previous %q, serving %q", d.PreviousRevision, h.envState().Revision)
	}
}

func TestTrafficSchedules(t *testing.T) {
	cases := []struct {
		name, strategy string
		wantNew        []int // percent on green of each production route, in order
		wait           time.Duration
	}{
		{"canary", "canary: {percent: 10, interval: 30ms}", []int{0, 10, 100, 100}, 30 * time.Millisecond},
		{"linear", "linear: {percent: 25, interval: 10ms}", []int{0, 25, 50, 75, 100, 100}, 10 * time.Millisecond},
		{"all at once", "traffic: AllAtOnce", []int{0, 100, 100}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, 1, `    strategy:
      type: blue_green
      termination_wait: 0s
      `+c.strategy)
			h.serving("blue", "r-1")

			d := h.deploy(h.revision("r-2"))

			wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
			var got []int
			var shifts []fakeCall
			for _, call := range h.fake.recorded() {
				if call.Op != "route" {
					continue
				}
				got = append(got, call.Routing.Production["green"])
				if sum := call.Routing.Production["green"] + call.Routing.Production["blue"]; sum != 100 {
					t.Errorf("route %v does not sum to 100", call.Routing.Production)
				}
				if call.Phase == "Shifting" {
					shifts = append(shifts, call)
				}
			}
			if !slices.Equal(got, c.wantNew) {
				t.Fatalf("percent on the new set: got %v, want %v%s", got, c.wantNew, dumpCalls(h.fake.recorded()))
			}
			// Each step but the last holds for its interval (a lower bound only).
			for i := 1; i < len(shifts); i++ {
				if gap := shifts[i].At.Sub(shifts[i-1].At); gap < c.wait {
					t.Errorf("step %d came %v after the previous one, before the interval %v", i, gap, c.wait)
				}
			}
		})
	}
}

func TestTaskFailureDuringInstallRollsBackWithEvidence(t *testing.T) {
	h := newHarness(t, 2, `    strategy:
      type: blue_green`)
	h.serving("blue", "r-1")
	code := 3
	h.fake.behave = func(color, rev string) taskScript {
		return taskScript{healthyAfter: 100, failAfter: 2, failure: TaskFailure{
			Reason: "exited with code 3 before becoming healthy", ExitCode: &code, Logs: []string{"panic: DATABASE_URL is not set"}}}
	}

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	if d.Reason != "web: exited with code 3 before becoming healthy" {
		t.Errorf("reason %q", d.Reason)
	}
	var ev struct {
		Failures []TaskFailure `json:"failures"`
	}
	if err := json.Unmarshal(d.Evidence, &ev); err != nil || len(ev.Failures) == 0 {
		t.Fatalf("evidence %s: %v", d.Evidence, err)
	}
	f := ev.Failures[0]
	if f.Service != "web" || f.ExitCode == nil || *f.ExitCode != 3 || len(f.Logs) != 1 || f.TaskID == "" {
		t.Errorf("evidence failure %+v", f)
	}
	calls := h.fake.recorded()
	flip := callIndex(calls, 0, isRoute(map[string]int{"blue": 100}))
	stop := callIndex(calls, 0, isScale("green", 0))
	if flip < 0 || stop < flip || calls[flip].Phase != "RollingBack" {
		t.Fatalf("want the flip to blue then green scaled to zero, while RollingBack:%s", dumpCalls(calls))
	}
	for _, r := range h.fake.routes() {
		if r["green"] > 0 {
			t.Errorf("production traffic reached the failing set: %v", r)
		}
	}
	if es := h.envState(); es.Revision != "r-1" {
		t.Errorf("environment serves %q after rollback, want r-1", es.Revision)
	}
	if tasks, healthy := h.fake.running("blue"); tasks != 2 || healthy != 2 {
		t.Errorf("blue has %d tasks (%d healthy), want 2 healthy", tasks, healthy)
	}
}

func TestFailingHookRollsBackNamingTheHook(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
    hooks:
      after_allow_test_traffic:
        - name: smoke
          command: [sh, -c, "echo checkout page broke; exit 4"]
          timeout: 10s`)
	h.serving("blue", "r-1")

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	containsAll(t, "reason", d.Reason, "AfterAllowTestTraffic", `"smoke"`, "checkout page broke")
	containsAll(t, "evidence", string(d.Evidence), `"hooks"`, `"name":"smoke"`, `"ok":false`)
	calls := h.fake.recorded()
	flip := callIndex(calls, 0, func(c fakeCall) bool { return isRoute(map[string]int{"blue": 100})(c) && c.Phase == "RollingBack" })
	if flip < 0 || callIndex(calls, flip, isScale("green", 0)) < 0 {
		t.Fatalf("want a flip to blue then green scaled to zero:%s", dumpCalls(calls))
	}
	for _, r := range h.fake.routes() {
		if r["green"] > 0 {
			t.Errorf("production traffic reached the new set before its test hook passed: %v", r)
		}
	}
}

// errorsOn makes color's metrics show 100 requests and errs 5xx per Metrics call.
func errorsOn(color string, errs uint64) func(string, int) alarm.Sample {
	return func(c string, n int) alarm.Sample {
		s := alarm.Sample{At: time.Now()}
		if c == color {
			s.Requests, s.Errors5xx = uint64(100*n), errs*uint64(n)
		}
		return s
	}
}

func TestAlarmDuringShiftingFlipsBackBeforeStoppingNewSet(t *testing.T) {
	h := newHarness(t, 2, `    strategy:
      type: blue_green
      canary: {percent: 50, interval: 1h}
      alarms:
        - metric: error_rate
          threshold: 1%
          period: 10ms`)
	h.serving("blue", "r-1")
	h.fake.metrics = errorsOn("green", 50)

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	if !strings.HasPrefix(d.Reason, `alarm "error_rate"`) {
		t.Errorf("reason %q does not name the alarm", d.Reason)
	}
	containsAll(t, "reason", d.Reason, "5xx rate 50.0%")
	var st alarm.Status
	if err := json.Unmarshal(d.Evidence, &st); err != nil || !st.InAlarm || st.Name != "error_rate" {
		t.Errorf("evidence %s (%v): want the alarm's status in alarm", d.Evidence, err)
	}
	calls := h.fake.recorded()
	canary := callIndex(calls, 0, isRoute(map[string]int{"blue": 50, "green": 50}))
	flip := callIndex(calls, canary, isRoute(map[string]int{"blue": 100}))
	stop := callIndex(calls, 0, isScale("green", 0))
	if canary < 0 || flip < 0 || stop < flip {
		t.Fatalf("want canary 50%%, flip to blue 100%%, then green scaled to zero:%s", dumpCalls(calls))
	}
	if calls[flip].Phase != "RollingBack" || calls[stop].Phase != "RollingBack" {
		t.Errorf("rollback acted outside RollingBack:%s", dumpCalls(calls))
	}
}

func TestStopDuringBakingEndsStopped(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      bake: 1h`)
	h.serving("blue", "r-1")
	h.onPhase = func(p string) {
		if p == "Baking" {
			h.request(RequestStop)
		}
	}

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentStopped, "RolledBack")
	containsAll(t, "reason", d.Reason, "stopped by `cutover stop`", "by test")
	calls := h.fake.recorded()
	flip := callIndex(calls, 0, func(c fakeCall) bool { return isRoute(map[string]int{"blue": 100})(c) && c.Phase == "RollingBack" })
	if flip < 0 || callIndex(calls, flip, isScale("green", 0)) < 0 {
		t.Fatalf("want a flip to blue then green scaled to zero:%s", dumpCalls(calls))
	}
	if h.envState().Revision != "r-1" {
		t.Errorf("serving %q, want r-1", h.envState().Revision)
	}
}

func TestRollbackDuringTerminationWaitIsATrafficFlip(t *testing.T) {
	h := newHarness(t, 2, `    strategy:
      type: blue_green
      termination_wait: 1h`)
	h.serving("blue", "r-1")
	var before int
	h.onPhase = func(p string) {
		if p == "TerminationWait" {
			before = len(h.fake.recorded())
			h.request(RequestRollback)
		}
	}

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	containsAll(t, "reason", d.Reason, "rollback requested")
	calls := h.fake.recorded()[before:]
	if len(calls) != 2 || !isRoute(map[string]int{"blue": 100})(calls[0]) || !isScale("green", 0)(calls[1]) {
		t.Fatalf("after the request want exactly: route blue 100%%, then scale green to 0; got:%s", dumpCalls(calls))
	}
	// The original set was intact: no restart was needed for the flip.
	for _, c := range h.fake.recorded() {
		if c.Op == "scale" && c.Color == "blue" {
			t.Errorf("blue was scaled during a flip: %s", c)
		}
	}
	if h.envState().Revision != "r-1" {
		t.Errorf("serving %q, want r-1", h.envState().Revision)
	}
}

func TestManualContinueWaitsForRequest(t *testing.T) {
	h := manualContinueHarness(t)
	var wg sync.WaitGroup
	var atContinue []fakeCall
	var phaseAtContinue string
	h.onPhase = func(p string) {
		if p != "ReadyWait" {
			return
		}
		wg.Go(func() {
			time.Sleep(150 * time.Millisecond) // many ticks: it must still wait
			atContinue = h.fake.recorded()
			phaseAtContinue = h.fake.phase()
			h.request(RequestContinue)
		})
	}

	d := h.deploy(h.revision("r-2"))
	wg.Wait()

	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	if phaseAtContinue != "ReadyWait" {
		t.Errorf("phase %q when continue was sent, want ReadyWait", phaseAtContinue)
	}
	for _, c := range atContinue {
		if c.Op == "route" && c.Routing.Production["green"] > 0 {
			t.Errorf("production traffic moved before `cutover continue`: %s", c)
		}
	}
	if callIndex(h.fake.recorded(), len(atContinue), isRoute(map[string]int{"blue": 0, "green": 100})) < 0 {
		t.Errorf("no shift after continue:%s", dumpCalls(h.fake.recorded()))
	}
}

func TestManualContinueNotGivenWithinReadyWaitStops(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      manual_continue: true
      ready_wait: 30ms`)
	h.serving("blue", "r-1")

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentStopped, "RolledBack")
	containsAll(t, "reason", d.Reason, "cutover continue prod", "30ms")
}

func TestAutoRollbackDisabledLeavesDeploymentFailed(t *testing.T) {
	t.Run("task failure", func(t *testing.T) {
		h := newHarness(t, 1, `    strategy:
      type: blue_green
      auto_rollback: {on_failure: false}`)
		h.serving("blue", "r-1")
		h.fake.behave = func(color, rev string) taskScript {
			return taskScript{failAfter: 1, failure: TaskFailure{Reason: "exited with code 1"}}
		}

		d := h.deploy(h.revision("r-2"))

		wantStatus(t, d, store.DeploymentFailed, "Failed")
		calls := h.fake.recorded()
		if len(calls) != 1 || !isScale("green", 1)(calls[0]) {
			t.Fatalf("want only the install, no rollback:%s", dumpCalls(calls))
		}
		if h.envState().Revision != "r-1" {
			t.Errorf("serving %q, want r-1", h.envState().Revision)
		}
	})
	t.Run("alarm", func(t *testing.T) {
		h := newHarness(t, 1, `    strategy:
      type: blue_green
      canary: {percent: 20, interval: 1h}
      auto_rollback: {on_alarm: false}
      alarms:
        - metric: error_rate
          threshold: 1%
          period: 10ms`)
		h.serving("blue", "r-1")
		h.fake.metrics = errorsOn("green", 30)

		d := h.deploy(h.revision("r-2"))

		wantStatus(t, d, store.DeploymentFailed, "Failed")
		containsAll(t, "reason", d.Reason, `alarm "error_rate"`)
		routes := h.fake.routes()
		if last := routes[len(routes)-1]; !mapsEqual(last, map[string]int{"blue": 80, "green": 20}) {
			t.Errorf("last route %v, want the canary left in place (no route back)", last)
		}
		for _, c := range h.fake.recorded() {
			if c.Op == "scale" && c.Counts["web"] == 0 {
				t.Errorf("a set was stopped although auto rollback is off: %s", c)
			}
		}
	})
}

// A controller drives several deployments of its environment in turn; the
// alarms of one must not carry over into the next.
func TestSecondDeploymentWithSameControllerTakesFreshAlarmBaseline(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      bake: 100ms
      termination_wait: 0s
      alarms:
        - metric: error_rate
          threshold: 1%
          period: 10ms`)
	h.serving("blue", "r-1")
	// Target groups keep their names across deployments, so blue's counters
	// include the errors of the revision blue ran before; only new errors count.
	h.fake.metrics = func(c string, n int) alarm.Sample {
		s := alarm.Sample{At: time.Now(), Requests: uint64(10 * n)}
		if c == "blue" {
			s.Requests += 5000
			s.Errors5xx = 1000
		}
		return s
	}
	if d := h.deploy(h.revision("r-2")); d.Status != store.DeploymentSucceeded {
		t.Fatalf("first deployment %s: %s", d.Status, d.Reason)
	}

	d := h.deploy(h.revision("r-3")) // into blue, with the same controller

	if d.Status != store.DeploymentSucceeded {
		t.Fatalf("second deployment %s: %s (errors from before it started were counted)", d.Status, d.Reason)
	}
}

func TestInstallTimeoutRollsBack(t *testing.T) {
	h := newHarness(t, 2, `    strategy:
      type: blue_green`)
	h.serving("blue", "r-1")
	h.ctrl.Timeout = 200 * time.Millisecond
	h.fake.behave = func(string, string) taskScript { return taskScript{healthyAfter: 1 << 20} }

	d := h.deploy(h.revision("r-2"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	containsAll(t, "reason", d.Reason, "green set was not healthy after 200ms", "0 of 2 tasks healthy")
}

func TestFirstDeploymentRolledBackHasNoTraffic(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
    hooks:
      after_allow_test_traffic:
        - command: ["false"]`)

	d := h.deploy(h.revision("r-1"))

	wantStatus(t, d, store.DeploymentRolledBack, "RolledBack")
	if routes := h.fake.routes(); len(routes) == 0 || len(routes[len(routes)-1]) != 0 {
		t.Errorf("routes %v: want the routes removed at the end", routes)
	}
	if d.TrafficPercent != 0 {
		t.Errorf("a rolled back first deployment records %d%% of the traffic, want 0", d.TrafficPercent)
	}
	if es := h.envState(); es.Revision != "" || es.Status != "down" {
		t.Errorf("environment state %q %q, want down with no revision", es.Revision, es.Status)
	}
}

// A controller killed mid-deployment (here: its context ends during the
// bake) leaves the deployment as persisted; the next command reconciles it.
func TestInterruptedDeploymentIsReconciledByNextController(t *testing.T) {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      bake: 1h`)
	h.serving("blue", "r-1")
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	h.onPhase = func(p string) {
		if p == "Baking" {
			cancel()
		}
	}

	d, err := h.ctrl.Deploy(ctx, h.revision("r-2"))

	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted in Baking") {
		t.Fatalf("Deploy: %v, want interrupted in Baking", err)
	}
	stored, err := h.store.GetDeployment(h.ctx, d.ID)
	if err != nil || stored.Status != store.DeploymentInProgress || stored.Phase != "Baking" {
		t.Fatalf("stored deployment %s in %s (%v), want in_progress in Baking", stored.Status, stored.Phase, err)
	}

	h.onPhase = nil
	next := *h.ctrl // a new controller for the next command
	next.alarms = nil
	h.ctrl = &next
	r := h.reconcile(false)

	wantStatus(t, r, store.DeploymentRolledBack, "RolledBack")
	containsAll(t, "reason", r.Reason, "stopped during Baking")
	if h.envState().Revision != "r-1" {
		t.Errorf("serving %q, want r-1", h.envState().Revision)
	}
}

// A `cutover continue` sent before the deployment waits for it is refused
// (found by a newcomer's audit: it was accepted, and the wait it was meant
// for ended at once when the deployment reached it, before anyone saw the
// new set on the test listener).
func TestContinueBeforeTheWaitIsRefused(t *testing.T) {
	h := manualContinueHarness(t)
	var wg sync.WaitGroup
	var early error
	var atContinue []fakeCall
	h.onPhase = func(p string) {
		switch p {
		case "AllowTestTraffic":
			_, early = Request(context.Background(), h.store, testProject, testEnv, RequestContinue, "eager")
		case "ReadyWait":
			wg.Go(func() {
				time.Sleep(300 * time.Millisecond) // many ticks: the early continue must not have ended it
				atContinue = h.fake.recorded()
				h.request(RequestContinue)
			})
		}
	}
	d := h.deploy(h.revision("r-2"))
	wg.Wait()
	wantStatus(t, d, store.DeploymentSucceeded, "Succeeded")
	for _, c := range atContinue {
		if c.Op == "route" && c.Routing.Production["green"] > 0 {
			t.Errorf("production traffic moved before the continue sent in the wait: %s", c)
		}
	}
	if early == nil || !strings.Contains(early.Error(), "not waiting for `cutover continue`") || !strings.Contains(early.Error(), "AllowTestTraffic") {
		t.Errorf("a continue before the wait: %v, want it refused naming the phase", early)
	}
}

// manualContinueHarness is a blue/green environment that waits for
// `cutover continue` (an hour at most), serving r-1 on blue.
func manualContinueHarness(t *testing.T) *harness {
	h := newHarness(t, 1, `    strategy:
      type: blue_green
      manual_continue: true
      ready_wait: 1h
      termination_wait: 0s`)
	h.serving("blue", "r-1")
	return h
}
