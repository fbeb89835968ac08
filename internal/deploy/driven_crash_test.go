package deploy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
)

// crashDeploy deploys rev with a cloud that "kills" the controller right
// after its first Start reached the cloud (a panic unwinds the controller:
// nothing after the call runs, as with kill -9), and returns the
// deployment left in progress.
func crashDeploy(t *testing.T, h *harness, cloud *fakeCloud, rev store.Revision) store.Deployment {
	t.Helper()
	cloud.crashAfterStart = true
	func() {
		defer func() {
			if r := recover(); r != errCrash {
				t.Fatalf("recovered %v, want the crash", r)
			}
		}()
		_, _ = h.ctrl.Deploy(h.ctx, rev)
	}()
	d, err := h.store.ActiveDeployment(h.ctx, testProject, testEnv)
	if err != nil {
		t.Fatalf("no deployment left in progress: %v", err)
	}
	st, err := loadState(&d)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cloud == nil || len(st.Cloud.IDs) != 0 || st.Cloud.Intents["web"].Starting.IsZero() {
		t.Fatalf("state left by the crash %+v: want an intent with its start marker and no ID", st.Cloud)
	}
	return d
}

// TestDrivenCrashAfterStartAdopts: a cutover killed between the cloud's
// answer to Start and persisting the ID leaves the intent; the next command
// finds the deployment the cloud runs for it and follows it: one deployment
// started in all.
func TestDrivenCrashAfterStartAdopts(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript})
	h := drivenHarness(t, cloud)
	crashDeploy(t, h, cloud, h.revision("r2"))
	got := h.reconcile(false)
	wantStatus(t, got, store.DeploymentSucceeded, "Succeeded")
	if len(cloud.started) != 1 || cloud.finds != 1 {
		t.Errorf("started %v after %d finds: want the one deployment adopted, not a second one", cloud.started, cloud.finds)
	}
}

// TestDrivenCrashBeforeStartStarts: an intent whose deployment the cloud
// does not know (the controller died before the call reached it) is
// started by the next command, once.
func TestDrivenCrashBeforeStartStarts(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript})
	h := drivenHarness(t, cloud)
	crashDeploy(t, h, cloud, h.revision("r2"))
	cloud.byTarget = map[string]string{} // the call never reached the cloud
	cloud.started = nil
	got := h.reconcile(false)
	wantStatus(t, got, store.DeploymentSucceeded, "Succeeded")
	if len(cloud.started) != 1 {
		t.Errorf("started %v, want one deployment", cloud.started)
	}
}

// TestDrivenCrashRollbackStopsAdopted: `cutover rollback` after such a
// crash stops the deployment the cloud runs (found from the intent).
func TestDrivenCrashRollbackStopsAdopted(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript})
	h := drivenHarness(t, cloud)
	crashDeploy(t, h, cloud, h.revision("r2"))
	got := h.reconcile(true)
	wantStatus(t, got, store.DeploymentRolledBack, "RolledBack")
	if !slices.Equal(cloud.stops, cloud.started) || len(cloud.started) != 1 {
		t.Errorf("started %v, stopped %v: want the adopted deployment stopped", cloud.started, cloud.stops)
	}
}

// findFails is a cloud whose Find cannot read the cloud.
type findFails struct{ *fakeCloud }

func (f findFails) Find(context.Context, string, Intent) (string, error) {
	return "", errors.New("access denied")
}

// TestDrivenLookFollowsOneStep: a look (status) at a deployment whose
// controller died reads the cloud once: it records the phase the cloud
// reports without waiting, records the end once the cloud reports it,
// and never starts a deployment.
func TestDrivenLookFollowsOneStep(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": {PhaseInstall, PhaseShifting, PhaseTerminationWait, PhaseSucceeded}})
	h := drivenHarness(t, cloud)
	interruptAt(t, h, cloud, h.revision("r2"), PhaseInstall)
	var phases []string
	id := ""
	for range 3 {
		d, err := h.ctrl.Look(h.ctx)
		if err != nil || d == nil {
			t.Fatalf("Look: %v %v", d, err)
		}
		phases = append(phases, d.Phase)
		id = d.ID
	}
	if want := []string{"Shifting", "TerminationWait", "Succeeded"}; !slices.Equal(phases, want) {
		t.Errorf("phases looked %v, want %v", phases, want)
	}
	got, err := h.store.GetDeployment(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, store.DeploymentSucceeded, "Succeeded")
	if st := h.envState(); st.Revision != "r2" || st.Status != "up" {
		t.Errorf("environment state %+v", st)
	}
	if len(cloud.started) != 1 {
		t.Errorf("started %v", cloud.started)
	}
	if d, err := h.ctrl.Look(h.ctx); d != nil || err != nil {
		t.Errorf("a look with nothing in progress: %v %v", d, err)
	}
}

// TestDrivenLookStartsNothing: a look at a deployment that died before its
// service started adopts nothing and starts nothing.
func TestDrivenLookStartsNothing(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": blueGreenScript})
	h := drivenHarness(t, cloud)
	crashDeploy(t, h, cloud, h.revision("r2"))
	cloud.byTarget = map[string]string{}
	cloud.started = nil
	d, err := h.ctrl.Look(h.ctx)
	if err != nil || d == nil || d.Status != store.DeploymentInProgress {
		t.Fatalf("Look: %+v %v", d, err)
	}
	if len(cloud.started) != 0 {
		t.Errorf("a look started %v", cloud.started)
	}
	// A Find that fails starts nothing either, in a look or a reconcile.
	h.ctrl.Driven = findFails{cloud}
	if _, err := h.ctrl.Reconcile(h.ctx, false); err == nil || !strings.Contains(err.Error(), "nothing started") {
		t.Errorf("reconcile with a failing Find: %v", err)
	}
	if len(cloud.started) != 0 {
		t.Errorf("started %v while the cloud could not be read", cloud.started)
	}
}

// TestDrivenPromote: a promote reaches the cloud in each wait it may end
// (here the termination wait), not during health checks or shifting.
func TestDrivenPromote(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": {PhaseInstall, PhaseInstall, PhaseShifting, PhaseTerminationWait, PhaseTerminationWait, PhaseSucceeded}})
	h := drivenHarness(t, cloud)
	asked := false
	cloud.onPhase = func(_ string, p Phase) {
		if p == PhaseInstall && !asked {
			asked = true
			h.request(RequestPromote)
		}
	}
	got := h.deploy(h.revision("r2"))
	wantStatus(t, got, store.DeploymentSucceeded, "Succeeded")
	if want := []string{"web-r2-1 TerminationWait"}; !slices.Equal(cloud.promotes, want) {
		t.Errorf("promotes %v, want %v", cloud.promotes, want)
	}
}

// alarmedCloud reports an alarm that stops the deployment, and counts the
// continues it is sent.
type alarmedCloud struct {
	*fakeCloud
	continues int
}

func (a *alarmedCloud) Progress(ctx context.Context, service, id string, health time.Duration) (DrivenState, error) {
	s, err := a.fakeCloud.Progress(ctx, service, id, health)
	if err == nil && !s.Phase.Terminal() {
		s.Problem, s.Alarm, s.StopOnProblem = "alarm web-5xx is in ALARM", true, true
	}
	return s, err
}

func (a *alarmedCloud) Continue(context.Context, string, string) error {
	a.continues++
	return nil
}

// Attack: status (any viewer, through the API or the dashboard) looks at a
// deployment left by a dead cutover while an alarm fires and a continue, a
// promote and a stop wait in the event log. The look acts on none of them:
// no Stop, Continue, Promote or Start reaches the cloud, the deployment
// stays in progress, and the requests are still there for the next command,
// which stops it.
func TestDrivenLookActsOnNothing(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": {PhaseInstall, PhaseReadyWait, PhaseReadyWait, PhaseReadyWait}})
	h := drivenHarness(t, cloud)
	d := interruptAt(t, h, cloud, h.revision("r2"), PhaseInstall)
	alarmed := &alarmedCloud{fakeCloud: cloud}
	h.ctrl.Driven = alarmed
	for _, kind := range []string{RequestContinue, RequestPromote, RequestStop} {
		if _, err := Request(h.ctx, h.store, testProject, testEnv, kind, "alice"); err != nil {
			t.Fatalf("request %s: %v", kind, err)
		}
	}
	for range 2 {
		got, err := h.ctrl.Look(h.ctx)
		if err != nil || got == nil || got.Status != store.DeploymentInProgress {
			t.Fatalf("Look: %+v %v", got, err)
		}
	}
	if len(cloud.stops) != 0 || len(cloud.promotes) != 0 || alarmed.continues != 0 || len(cloud.started) != 1 {
		t.Fatalf("a look acted: stops %v, promotes %v, %d continues, started %v", cloud.stops, cloud.promotes, alarmed.continues, cloud.started)
	}
	got, err := h.ctrl.Reconcile(h.ctx, false)
	if err != nil || got == nil || got.ID != d.ID {
		t.Fatalf("reconcile: %+v %v", got, err)
	}
	if len(cloud.stops) != 1 {
		t.Errorf("the next command's stops %v: the requests the looks saw must still be acted on", cloud.stops)
	}
}

// Attack: on ECS the command that records a deployment's success then
// points the static sites at the revision's files. A look (status, the
// dashboard's refresh) that recorded the success of a deployment left by a
// dead cutover took that away: the next deploy found nothing in progress,
// and the sites stayed on the old files while the revision was recorded as
// serving. With SuccessActs the look leaves it in progress, and the next
// command's reconcile records the success (and returns it, to act on).
func TestDrivenLookLeavesASuccessThatActs(t *testing.T) {
	cloud := newFakeCloud([]string{"web"}, map[string][]Phase{"web": {PhaseInstall, PhaseSucceeded}})
	h := drivenHarness(t, cloud)
	d := interruptAt(t, h, cloud, h.revision("r2"), PhaseInstall)
	h.ctrl.SuccessActs = true
	got, err := h.ctrl.Look(h.ctx)
	if err != nil || got == nil || got.Status != store.DeploymentInProgress {
		t.Fatalf("Look: %+v %v, want the succeeded deployment left in progress", got, err)
	}
	if st, err := h.store.GetEnvState(h.ctx, testProject, testEnv); err == nil && st.Revision == "r2" {
		t.Errorf("environment state %+v: the look recorded r2 as serving", st)
	}
	got, err = h.ctrl.Reconcile(h.ctx, false)
	if err != nil || got == nil || got.ID != d.ID {
		t.Fatalf("reconcile: %+v %v", got, err)
	}
	if got.Status != store.DeploymentSucceeded {
		t.Errorf("reconcile returned %s, want the success to act on", got.Status)
	}
	stored, err := h.store.GetDeployment(h.ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, stored, store.DeploymentSucceeded, "Succeeded")
	if len(cloud.started) != 1 {
		t.Errorf("started %v", cloud.started)
	}
}
