package ecs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// errKilled is what a test panics with to kill cutover in the middle of a
// call: the panic unwinds the controller, so nothing after the call runs
// (no ID persisted), as with kill -9; the store keeps what was persisted.
var errKilled = errors.New("cutover killed")

// deployKilled deploys r through h's controller, which the test's AWS
// kills (panic errKilled) after AWS answered the call that starts the
// deployment; it returns the deployment left in progress.
func (h *ctrl) deployKilled(r store.Revision) store.Deployment {
	h.t.Helper()
	r.Project, r.Environment = "bluemed", "production"
	if err := h.store.CreateRevision(h.ctx, r); err != nil {
		h.t.Fatal(err)
	}
	func() {
		defer func() {
			if got := recover(); got != errKilled {
				h.t.Fatalf("deploy ended with %v, want it killed after the call", got)
			}
		}()
		_, _ = h.c.Deploy(h.ctx, r)
	}()
	d, err := h.store.ActiveDeployment(h.ctx, "bluemed", "production")
	if err != nil {
		h.t.Fatalf("no deployment left in progress by the killed cutover: %v", err)
	}
	return d
}

// TestCodeDeployKilledAfterCreateDeployment: cutover is killed after
// CodeDeploy created the deployment and before its ID was persisted. The
// next command (reconcile) finds it (ListDeployments of the group since
// the start marker, GetDeployment's AppSpec naming the task definition
// registered for it) and follows it to its end: one CreateDeployment in all.
func TestCodeDeployKilledAfterCreateDeployment(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sim := &linearDeployment{clock: clock, start: clock.Now(), afterCreate: func() { panic(errKilled) }}
	h, s, _ := linearController(t, sim)
	left := h.deployKilled(rev("9"))
	if s.called("CreateDeployment") != 1 || !sim.created {
		t.Fatalf("CreateDeployment calls %d before the kill", s.called("CreateDeployment"))
	}
	var st deploy.State
	if err := json.Unmarshal(left.Data, &st); err != nil || st.Cloud == nil || len(st.Cloud.IDs) != 0 {
		t.Fatalf("state left %+v %v: want no deployment ID persisted", st.Cloud, err)
	}
	in := st.Cloud.Intents["backend"]
	if in.Starting.IsZero() || !strings.HasSuffix(in.Target, "task-definition/backend:7") || !strings.Contains(sim.appSpec, in.Target) {
		t.Fatalf("intent %+v (AppSpec sent %s): want the task definition and the start marker persisted before the call", in, sim.appSpec)
	}

	// The next cutover: a new process, so a new platform on the same AWS.
	h.c.Driven = codeDeployDriven(t, wirePlatform(t, s, clock), "Linear10PercentEvery1Minute")
	got, err := h.c.Reconcile(h.ctx, false)
	if err != nil || got == nil {
		t.Fatalf("reconcile: %v %v", got, err)
	}
	if got.Status != store.DeploymentSucceeded || got.TrafficPercent != 100 {
		t.Errorf("deployment %s %s: %s", got.Status, got.Phase, got.Reason)
	}
	if n := s.called("CreateDeployment"); n != 1 {
		t.Errorf("CreateDeployment called %d times across the kill and the reconcile, want 1", n)
	}
	if s.called("ListDeployments") != 1 {
		t.Errorf("ListDeployments called %d times, want 1", s.called("ListDeployments"))
	}
	if !strings.Contains(strings.Join(h.events(deploy.KindNews), "\n"), "d-LINEAR1 of "+in.Target+", started before cutover stopped, followed (not started again)") {
		t.Errorf("adoption not told: %q", h.events(deploy.KindNews))
	}
}

// TestCodeDeployFindIgnoresOtherDeployments: a deployment of the group
// whose AppSpec runs another task definition (someone else's, or an older
// one) is not adopted: cutover starts its own.
func TestCodeDeployFindIgnoresOtherDeployments(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sim := &linearDeployment{clock: clock, start: clock.Now(), created: true,
		appSpec: `{"version":"0.0","Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-backend:6"}}}]}`}
	h, s, _ := linearController(t, sim)
	p := wirePlatform(t, s, clock)
	d := codeDeployDriven(t, p, "Linear10PercentEvery1Minute")
	h.c.Driven = d
	id, err := d.Find(h.ctx, "backend", deploy.Intent{Revision: "9", Target: "arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-backend:7", Starting: clock.Now()})
	if err != nil || id != "" {
		t.Errorf("Find adopted %q (%v): the deployment runs another task definition", id, err)
	}
}

// Attack: the deployments of the group since the start marker that run the
// intent's task definition but are not cutover's are not adopted (and so
// never stopped by it): CodeDeploy's own rollback of a later deployment,
// which redeploys the last successful revision (creator
// codeDeployRollback), and another tool's deployment of the family's
// latest revision (a user's, without cutover's description of the
// revision). Cutover's own (creator user, "cutover revision 9") is.
func TestCodeDeployFindAdoptsOnlyCutoversDeployment(t *testing.T) {
	td := "arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-backend:7"
	spec := `{"version":"0.0","Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"` + td + `"}}}]}`
	for _, c := range []struct {
		name, creator, description, want string
	}{
		{"CodeDeploy's rollback of a later deployment", "codeDeployRollback", "", ""},
		{"CloudFormation's", "CloudFormation", "cutover revision 9", ""},
		{"another tool's", "user", "deployed by the release script", ""},
		{"cutover's for another revision", "user", "cutover revision 8", ""},
		{"cutover's", "user", "cutover revision 9", "d-LINEAR1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			sim := &linearDeployment{clock: clock, start: clock.Now(), created: true, appSpec: spec, creator: c.creator, description: c.description}
			h, s, _ := linearController(t, sim)
			d := codeDeployDriven(t, wirePlatform(t, s, clock), "Linear10PercentEvery1Minute")
			id, err := d.Find(h.ctx, "backend", deploy.Intent{Revision: "9", Target: td, Starting: clock.Now()})
			if err != nil || id != c.want {
				t.Errorf("Find = %q, %v; want %q", id, err, c.want)
			}
		})
	}
}

// rollingService simulates ECS running a rolling update of service
// backend, answering with bodies in the shapes of the Amazon ECS API
// reference (Service, Deployment, ServiceDeploymentBrief, ServiceRevision).
// moto is not used here: it keeps the service's first deployment (with the
// first task definition) after an UpdateService and serves neither
// ListServiceDeployments nor DescribeServiceRevisions. UpdateService makes
// the new task definition's deployment PRIMARY; the next DescribeServices
// reports it COMPLETED, or with rolledBack, ECS has rolled it back and
// lists only a new deployment of the old task definition.
type rollingService struct {
	clock       *fakeClock
	updated     bool
	rolledBack  bool
	polls       int
	afterUpdate func()
}

const (
	rollingTD    = "arn:aws:ecs:us-east-1:123456789012:task-definition/backend:8"
	rollingOldTD = "arn:aws:ecs:us-east-1:123456789012:task-definition/backend:7"
	rollingSD    = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/backend/r8kD2mQ"
	rollingSR    = "arn:aws:ecs:us-east-1:123456789012:service-revision/c/backend/41"
)

func (r *rollingService) deployments() []any {
	old := map[string]any{"id": "ecs-svc/1", "status": "ACTIVE", "taskDefinition": rollingOldTD, "desiredCount": 2, "runningCount": 2, "pendingCount": 0, "rolloutState": "COMPLETED"}
	mine := map[string]any{"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": rollingTD, "desiredCount": 2, "runningCount": 0, "pendingCount": 2,
		"rolloutState": "IN_PROGRESS", "createdAt": epoch(r.clock.Now())}
	switch {
	case !r.updated:
		old["status"] = "PRIMARY"
		return []any{old}
	case r.rolledBack:
		return []any{map[string]any{"id": "ecs-svc/3", "status": "PRIMARY", "taskDefinition": rollingOldTD, "desiredCount": 2, "runningCount": 2, "rolloutState": "COMPLETED"}}
	case r.polls > 1:
		mine["runningCount"], mine["pendingCount"], mine["rolloutState"] = 2, 0, "COMPLETED"
		return []any{mine}
	}
	return []any{mine, old}
}

func (r *rollingService) answer(op string, req map[string]any) (int, any) {
	switch op {
	case "RegisterTaskDefinition":
		return http.StatusOK, map[string]any{"taskDefinition": map[string]any{"taskDefinitionArn": rollingTD, "family": req["family"], "revision": 8, "status": "ACTIVE"}}
	case "UpdateService":
		if req["taskDefinition"] != rollingTD {
			return awsError("InvalidParameterException", "UpdateService not to the registered task definition")
		}
		r.updated = true
		if f := r.afterUpdate; f != nil {
			r.afterUpdate = nil
			f()
		}
		return http.StatusOK, map[string]any{"service": map[string]any{"serviceName": "backend", "status": "ACTIVE", "deployments": r.deployments()}}
	case "DescribeServices":
		r.polls++
		return http.StatusOK, map[string]any{"services": []any{map[string]any{"serviceName": "backend", "status": "ACTIVE", "deployments": r.deployments(), "events": []any{}}}, "failures": []any{}}
	case "ListTasks":
		return http.StatusOK, map[string]any{"taskArns": []any{}}
	case "ListServiceDeployments":
		ca, _ := req["createdAt"].(map[string]any)
		if req["cluster"] != "c" || req["service"] != "backend" || ca["after"] == nil {
			return awsError("InvalidParameterException", fmt.Sprintf("ListServiceDeployments not for the service since a time: %v", req))
		}
		return http.StatusOK, map[string]any{"serviceDeployments": []any{map[string]any{"serviceDeploymentArn": rollingSD,
			"serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/c/backend", "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
			"status": "ROLLBACK_SUCCESSFUL", "createdAt": epoch(r.clock.Now()), "targetServiceRevisionArn": rollingSR}}}
	case "DescribeServiceRevisions":
		if strings.Join(toStrings(req["serviceRevisionArns"]), ",") != rollingSR {
			return awsError("InvalidParameterException", "DescribeServiceRevisions of another revision")
		}
		return http.StatusOK, map[string]any{"failures": []any{}, "serviceRevisions": []any{map[string]any{"serviceRevisionArn": rollingSR,
			"serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/c/backend", "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
			"taskDefinition": rollingTD, "launchType": "FARGATE", "createdAt": epoch(r.clock.Now())}}}
	}
	return awsError("InvalidOperationException", "unexpected "+op)
}

func rollingDriven(t *testing.T, s *wireStub, clock *fakeClock) *Driven {
	t.Helper()
	d, err := wirePlatform(t, s, clock).Driven(DrivenOptions{Engine: EngineRolling})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRollingKilledAfterUpdateService: cutover is killed after ECS
// accepted UpdateService and before the deployment's ID was persisted. The
// next command finds the service's deployment of the task definition
// registered for it (DescribeServices) and follows it to its end: one
// UpdateService in all. When ECS has meanwhile rolled it back (the
// deployment is no longer listed), it is found among the service
// deployments since the start marker by its service revision's task
// definition and recorded rolled back, not deployed again.
func TestRollingKilledAfterUpdateService(t *testing.T) {
	for _, rolledBack := range []bool{false, true} {
		t.Run(fmt.Sprintf("rolled back %v", rolledBack), func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			sim := &rollingService{clock: clock, afterUpdate: func() { panic(errKilled) }}
			s := &wireStub{answer: sim.answer}
			h := newCtrl(t, rollingDriven(t, s, clock), []string{"backend"}, "    strategy: { type: rolling }\n")
			h.deployKilled(rev("8"))
			if s.called("UpdateService") != 1 || !sim.updated {
				t.Fatalf("UpdateService calls %d before the kill", s.called("UpdateService"))
			}
			sim.rolledBack = rolledBack
			h.c.Driven = rollingDriven(t, s, clock) // the next cutover: a new process
			got, err := h.c.Reconcile(h.ctx, false)
			if err != nil || got == nil {
				t.Fatalf("reconcile: %v %v", got, err)
			}
			want := store.DeploymentSucceeded
			if rolledBack {
				want = store.DeploymentRolledBack
			}
			if got.Status != want {
				t.Errorf("deployment %s %s: %s, want %s", got.Status, got.Phase, got.Reason, want)
			}
			if n := s.called("UpdateService"); n != 1 {
				t.Errorf("UpdateService called %d times across the kill and the reconcile, want 1", n)
			}
			if n := s.called("RegisterTaskDefinition"); n != 1 {
				t.Errorf("RegisterTaskDefinition called %d times, want 1", n)
			}
			if rolledBack != (s.called("DescribeServiceRevisions") == 1) {
				t.Errorf("DescribeServiceRevisions called %d times", s.called("DescribeServiceRevisions"))
			}
		})
	}
}
