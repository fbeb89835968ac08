package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
)

// fakeCloud stands in for AWS running deployments (a fake: the controller's
// side is what is tested here; internal/platform/ecs tests the AWS side
// against moto and the API reference's shapes). Each service's deployment
// walks through script, one phase per Progress; a stopped one rolls back.
// It is shared by the Driven values of successive controllers, as AWS is.
type fakeCloud struct {
	mu       sync.Mutex
	services []string
	script   map[string][]Phase
	at       map[string]int // deployment ID -> step reached
	stopped  map[string]bool
	started  []string
	stops    []string
	onPhase  func(service string, p Phase)
	byTarget map[string]string // intent target -> deployment ID, as the cloud lists them
	finds    int
	promotes []string // "id phase" of each Promote
	// crashAfterStart, when set, panics right after the deployment started
	// (as a cutover killed between the cloud's answer and persisting the ID).
	crashAfterStart bool
}

var errCrash = errors.New("killed")

func (f *fakeCloud) Prepare(_ context.Context, service string, rev store.Revision) (Intent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Intent{Target: fmt.Sprintf("%s:%s:%d", service, rev.ID, len(f.started)+1)}, nil
}

func (f *fakeCloud) Find(_ context.Context, _ string, in Intent) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds++
	return f.byTarget[in.Target], nil
}

func (f *fakeCloud) Promote(_ context.Context, _, id string, p Phase) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotes = append(f.promotes, id+" "+p.String())
	if p == PhaseShifting {
		return fmt.Errorf("no API for it (%w)", ErrCannotSkip)
	}
	return nil
}

func newFakeCloud(services []string, script map[string][]Phase) *fakeCloud {
	return &fakeCloud{services: services, script: script, at: map[string]int{}, stopped: map[string]bool{}, byTarget: map[string]string{}}
}

func (f *fakeCloud) Services() []string { return f.services }

func (f *fakeCloud) Start(_ context.Context, service string, in Intent) (string, error) {
	f.mu.Lock()
	id := fmt.Sprintf("%s-%s-%d", service, in.Revision, len(f.started)+1)
	f.started = append(f.started, id)
	f.byTarget[in.Target] = id
	crash := f.crashAfterStart
	f.crashAfterStart = false
	f.mu.Unlock()
	if crash {
		panic(errCrash)
	}
	return id, nil
}

func (f *fakeCloud) Progress(_ context.Context, service, id string, _ time.Duration) (DrivenState, error) {
	f.mu.Lock()
	if f.stopped[id] {
		f.mu.Unlock()
		return DrivenState{Phase: PhaseRolledBack, Status: id + " rolled back", Reason: "stopped by a user"}, nil
	}
	script := f.script[service]
	p := script[min(f.at[id], len(script)-1)]
	f.at[id]++
	cb := f.onPhase
	f.mu.Unlock()
	if cb != nil {
		cb(service, p)
	}
	traffic := 0
	if p >= PhaseShifting {
		traffic = 100
	}
	return DrivenState{Phase: p, Traffic: traffic, Status: fmt.Sprintf("%s %s", id, p)}, nil
}

func (f *fakeCloud) Stop(_ context.Context, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped[id] = true
	f.stops = append(f.stops, id)
	return nil
}

func (f *fakeCloud) Continue(context.Context, string, string) error { return nil }

func (f *fakeCloud) After(int) <-chan time.Time { return time.After(time.Millisecond) }

var blueGreenScript = []Phase{PhaseInstall, PhaseAllowTestTraffic, PhaseShifting, PhaseShifting, PhaseTerminationWait, PhaseSucceeded}

func drivenHarness(t *testing.T, cloud *fakeCloud) *harness {
	h := newHarness(t, 1, "    strategy: { type: blue_green }\n")
	h.ctrl.Platform, h.ctrl.Driven = nil, cloud
	return h
}

// interruptAt deploys rev and interrupts the controller (as a killed
// cutover) when the cloud first reports phase p.
func interruptAt(t *testing.T, h *harness, cloud *fakeCloud, rev store.Revision, p Phase) store.Deployment {
	t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	cloud.onPhase = func(_ string, got Phase) {
		if got == p {
			cancel()
		}
	}
	if _, err := h.ctrl.Deploy(ctx, rev); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Deploy: %v, want interrupted", err)
	}
	cloud.onPhase = nil
	d, err := h.store.ActiveDeployment(h.ctx, testProject, testEnv)
	if err != nil {
		t.Fatalf("no deployment left in progress: %v", err)
	}
	if _, err := ParsePhase(d.Phase); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDrivenReconcileFollows: a cutover killed while AWS shifts traffic
// leaves the deployment to the next command, which follows the same AWS
// deployment (nothing started again) to its end and records it with the
// environment's state.
func TestDrivenReconcileFollows(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript})
	h := drivenHarness(t, cloud)
	interruptAt(t, h, cloud, h.revision("r2"), PhaseShifting)
	got := h.reconcile(false)
	wantStatus(t, got, store.DeploymentSucceeded, "Succeeded")
	if len(cloud.started) != 1 || len(cloud.stops) != 0 {
		t.Errorf("started %v, stopped %v: want the one deployment followed, not restarted", cloud.started, cloud.stops)
	}
	if st := h.envState(); st.Revision != "r2" || st.Status != "up" {
		t.Errorf("environment state %+v", st)
	}
}

// TestDrivenReconcileRollsBack: `cutover rollback` with no live controller
// stops the same AWS deployment with rollback and records it rolled back;
// the environment keeps serving the revision from before.
func TestDrivenReconcileRollsBack(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript})
	h := drivenHarness(t, cloud)
	h.revision("r1")
	if _, err := h.store.PutEnvState(h.ctx, store.EnvState{Project: testProject, Environment: testEnv, Revision: "r1", Status: "up"}, store.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	d := interruptAt(t, h, cloud, h.revision("r2"), PhaseTerminationWait)
	if d.PreviousRevision != "r1" {
		t.Errorf("previous revision %q, want r1 from the environment's state", d.PreviousRevision)
	}
	got := h.reconcile(true)
	wantStatus(t, got, store.DeploymentRolledBack, "RolledBack")
	if !slices.Equal(cloud.stops, cloud.started) {
		t.Errorf("stopped %v, want the deployment started (%v)", cloud.stops, cloud.started)
	}
	if st := h.envState(); st.Revision != "r1" {
		t.Errorf("environment state %+v, want r1 still serving", st)
	}
}

// TestDrivenSecondServiceFails: services deploy one after the other; when
// the second one's deployment rolls back, the deployment ends rolled back
// and says that the first already runs the new revision.
func TestDrivenSecondServiceFails(t *testing.T) {
	cloud := newFakeCloud([]string{"api", "web"}, map[string][]Phase{
		"api": {PhaseRolling, PhaseSucceeded},
		"web": {PhaseRolling, PhaseRolledBack},
	})
	h := drivenHarness(t, cloud)
	got := h.deploy(h.revision("r2"))
	wantStatus(t, got, store.DeploymentRolledBack, "RolledBack")
	if len(cloud.started) != 2 || !strings.Contains(got.Reason, "service web") || !strings.Contains(got.Reason, "[api] already run revision r2") {
		t.Errorf("started %v, reason %q", cloud.started, got.Reason)
	}
}

// TestDrivenStopRequest: a stop request reaches the cloud at once and the
// deployment ends "stopped" in the controller's phases.
func TestDrivenStopRequest(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": {PhaseInstall, PhaseShifting}})
	h := drivenHarness(t, cloud)
	asked := false
	cloud.onPhase = func(_ string, p Phase) {
		if p == PhaseShifting && !asked {
			asked = true
			h.request(RequestStop)
		}
	}
	got := h.deploy(h.revision("r2"))
	wantStatus(t, got, store.DeploymentStopped, "RolledBack")
	if len(cloud.stops) != 1 {
		t.Errorf("stops %v", cloud.stops)
	}
	for _, p := range []string{"Install", "Shifting", "RollingBack"} {
		if !slices.Contains(h.phases(), p) {
			t.Errorf("phases %v: no %s", h.phases(), p)
		}
	}
}

// flakyCloud fails its first reads: with ErrTryAgain (throttled) they are
// tried again; with any other error the following ends at once, failed.
type flakyCloud struct {
	*fakeCloud
	fails int
	err   error
}

func (f *flakyCloud) Progress(ctx context.Context, service, id string, health time.Duration) (DrivenState, error) {
	if f.fails > 0 {
		f.fails--
		return DrivenState{}, f.err
	}
	return f.fakeCloud.Progress(ctx, service, id, health)
}

func TestDrivenReadErrors(t *testing.T) {
	throttled := fmt.Errorf("aws: codedeploy:GetDeployment still throttled (%w)", ErrTryAgain)
	cases := []struct {
		name   string
		fails  int
		err    error
		status string
	}{
		{"throttled reads are tried again", maxReadErrors - 1, throttled, store.DeploymentSucceeded},
		{"too many in a row end it", maxReadErrors, throttled, store.DeploymentFailed},
		{"access denied ends it at once", 1, fmt.Errorf("aws: access denied to codedeploy:GetDeployment"), store.DeploymentFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cloud := &flakyCloud{fakeCloud: newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript}), fails: c.fails, err: c.err}
			h := drivenHarness(t, cloud.fakeCloud)
			h.ctrl.Driven = cloud
			got := h.deploy(h.revision("r2"))
			if got.Status != c.status {
				t.Fatalf("deployment %s: %s", got.Status, got.Reason)
			}
			if c.status == store.DeploymentFailed && !strings.Contains(got.Reason, "AWS goes on with it") {
				t.Errorf("reason %q does not say AWS goes on", got.Reason)
			}
		})
	}
}
