package ecs

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// nativeDeployment simulates ECS running an ECS-native blue/green
// deployment of one service with a PAUSE hook before production traffic
// (strategy.manual_continue). moto implements none of ListServiceDeployments,
// DescribeServiceDeployments, ContinueServiceDeployment and
// StopServiceDeployment, so the wireStub answers them with bodies in the
// shapes of the Amazon ECS API reference (ServiceDeployment,
// ServiceDeploymentBrief, DeploymentLifecycleHookDetail). Each
// DescribeServiceDeployments moves the deployment one lifecycle stage on;
// at the pause it stays AWAITING_ACTION until ContinueServiceDeployment
// names its hook; after StopServiceDeployment (ROLLBACK) it rolls back.
type nativeDeployment struct {
	clock     *fakeClock
	stage     int
	continued bool
	stopType  string
	rollback  int                             // polls since the stop
	onStage   func(stage string, paused bool) // told each stage as ECS reports it
}

const nativeARN = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/backend/Nq9tP2xYlW8kQz1"

var nativeStagesInOrder = []string{"PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
	"PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"}

func (n *nativeDeployment) answer(op string, req map[string]any) (int, any) {
	td := "arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-backend:7"
	deployments := []any{
		map[string]any{"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": td, "desiredCount": 2, "runningCount": 0, "pendingCount": 2, "rolloutState": "IN_PROGRESS"},
		map[string]any{"id": "ecs-svc/1", "status": "ACTIVE", "taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-backend:6", "desiredCount": 2, "runningCount": 2, "rolloutState": "COMPLETED"},
	}
	switch op {
	case "RegisterTaskDefinition":
		return http.StatusOK, map[string]any{"taskDefinition": map[string]any{"taskDefinitionArn": td, "family": req["family"], "revision": 7, "status": "ACTIVE"}}
	case "UpdateService":
		cfg, _ := req["deploymentConfiguration"].(map[string]any)
		if cfg["strategy"] != "BLUE_GREEN" || len(req["loadBalancers"].([]any)) != 1 {
			return awsError("InvalidParameterException", "UpdateService without the native blue/green settings")
		}
		return http.StatusOK, map[string]any{"service": map[string]any{"serviceName": "backend", "status": "ACTIVE", "deployments": deployments}}
	case "DescribeServices":
		return http.StatusOK, map[string]any{"services": []any{map[string]any{"serviceName": "backend", "status": "ACTIVE", "deployments": deployments, "events": []any{}}}, "failures": []any{}}
	case "ListTasks":
		return http.StatusOK, map[string]any{"taskArns": []any{}}
	case "ListServiceDeployments":
		return http.StatusOK, map[string]any{"serviceDeployments": []any{map[string]any{
			"serviceDeploymentArn": nativeARN, "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/c/backend", "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
			"status": "IN_PROGRESS", "createdAt": epoch(n.clock.Now()), "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/c/backend/2"}}}
	case "ContinueServiceDeployment":
		if req["serviceDeploymentArn"] != nativeARN || req["hookId"] != "hook-pause-1" || req["action"] != "CONTINUE" {
			return awsError("InvalidParameterException", "ContinueServiceDeployment not for the paused hook")
		}
		n.continued = true
		return http.StatusOK, map[string]any{"serviceDeploymentArn": nativeARN}
	case "StopServiceDeployment":
		if req["serviceDeploymentArn"] != nativeARN {
			return awsError("ServiceDeploymentNotFoundException", "no such service deployment")
		}
		n.stopType, _ = req["stopType"].(string)
		return http.StatusOK, map[string]any{"serviceDeploymentArn": nativeARN}
	case "DescribeServiceDeployments":
		sd := map[string]any{"serviceDeploymentArn": nativeARN, "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/c/backend",
			"clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c", "createdAt": epoch(n.clock.Now()), "status": "IN_PROGRESS"}
		switch {
		case n.stopType == "ROLLBACK" && n.rollback == 0:
			n.rollback++
			sd["status"], sd["statusReason"] = "ROLLBACK_IN_PROGRESS", "Service deployment rolled back because of a user request."
		case n.stopType == "ROLLBACK":
			sd["status"], sd["statusReason"] = "ROLLBACK_SUCCESSFUL", "Service deployment rolled back because of a user request."
		case n.stage >= len(nativeStagesInOrder):
			sd["status"] = "SUCCESSFUL"
		default:
			stage := nativeStagesInOrder[n.stage]
			sd["lifecycleStage"] = stage
			paused := stage == "PRODUCTION_TRAFFIC_SHIFT" && !n.continued
			if paused {
				sd["lifecycleHookDetails"] = []any{map[string]any{"hookId": "hook-pause-1", "targetType": "PAUSE", "status": "AWAITING_ACTION",
					"timeoutAction": "ROLLBACK", "expiresAt": epoch(n.clock.Now().Add(time.Hour))}}
			} else {
				n.stage++
			}
			if n.onStage != nil {
				n.onStage(stage, paused)
			}
		}
		return http.StatusOK, map[string]any{"serviceDeployments": []any{sd}, "failures": []any{}}
	}
	return awsError("InvalidOperationException", "unexpected "+op)
}

// nativePlatform is a platform whose ECS is the nativeDeployment simulation,
// on a fake clock.
func nativePlatform(t *testing.T) (*nativeDeployment, *wireStub, *Platform) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	n := &nativeDeployment{clock: clock}
	s := &wireStub{answer: n.answer}
	p, err := New(s.clients(), Options{
		Cluster: "c", Region: "us-east-1", FamilyPrefix: "bluemed-production-",
		Services: map[string]Service{"backend": {ECSService: "backend", Port: 3001, DesiredCount: 2,
			TargetGroups: map[string]string{"blue": stubTGBlue, "green": stubTGGreen}, Rule: stubRule}},
		PollInterval: time.Second, MaxPollDelay: time.Second, Clock: clock, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, s, p
}

// TestNativeContinueAndRollbackRequests: an ECS-native blue/green deployment
// runs under the controller in the controller's phases; `cutover continue`
// reaches ECS as ContinueServiceDeployment on the PAUSE hook, and `cutover
// rollback` during the bake time as StopServiceDeployment with ROLLBACK.
func TestNativeContinueAndRollbackRequests(t *testing.T) {
	n, s, p := nativePlatform(t)
	h := newCtrl(t, nil, []string{"backend"}, "    strategy: { type: blue_green, manual_continue: true, ready_wait: 30m } # ecs-native\n")
	env := h.c.Config.Environments["production"]
	o := DrivenOptionsFor("production", env, []string{"backend"})
	if o.Engine != EngineNative || o.Native.ManualWait != 30*time.Minute || o.Native.RoleARN == "" {
		t.Fatalf("options from cutover.yaml %+v", o)
	}
	d, err := p.Driven(o)
	if err != nil {
		t.Fatal(err)
	}
	h.c.Driven = d
	asked := map[string]bool{}
	n.onStage = func(stage string, paused bool) {
		kind := ""
		switch {
		case paused:
			kind = deploy.RequestContinue
		case stage == "BAKE_TIME":
			kind = deploy.RequestRollback
		}
		if kind != "" && !asked[kind] {
			asked[kind] = true
			if _, err := deploy.Request(h.ctx, h.store, "bluemed", "production", kind, "bob"); err != nil {
				t.Error(err)
			}
		}
	}
	got := h.deploy(rev("9"))
	h.wantReadable(got)
	if !n.continued || s.called("ContinueServiceDeployment") != 1 {
		t.Errorf("continue did not reach ECS (calls %d)", s.called("ContinueServiceDeployment"))
	}
	if n.stopType != "ROLLBACK" || s.called("StopServiceDeployment") != 1 {
		t.Errorf("rollback did not reach ECS as StopServiceDeployment ROLLBACK (stop type %q, calls %d)", n.stopType, s.called("StopServiceDeployment"))
	}
	if got.Status != store.DeploymentRolledBack || got.Phase != "RolledBack" || !strings.Contains(got.Reason, "bob") {
		t.Errorf("deployment %s %s: %s", got.Status, got.Phase, got.Reason)
	}
	want := []string{"Pending", "BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic", "ReadyWait", "Shifting", "AfterAllowTraffic", "TerminationWait", "RollingBack", "RolledBack"}
	if !slices.Equal(h.phases(), want) {
		t.Errorf("phases\n got %v\nwant %v", h.phases(), want)
	}
	if !slices.ContainsFunc(h.events("request"), func(m string) bool { return strings.Contains(m, "continued") }) {
		t.Errorf("requests told %q", h.events("request"))
	}
}
