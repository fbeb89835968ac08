package ecs

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// linearDeployment simulates CodeDeploy running the example's production
// deployment of one service (CodeDeployDefault.ECSLinear10PercentEvery1Minutes,
// 5 minute termination wait) on the fake clock, answering GetDeployment,
// GetDeploymentTarget and StopDeployment with bodies in the shapes of the
// CodeDeploy API reference. Minute by minute: the ECS target appears at 0:30;
// the replacement tasks start (Install) until 1:30; the test traffic hook runs
// until 2:00; AllowTraffic moves 10% a minute from 2:00 to 100% at 11:00;
// the termination wait runs until 16:00, when the deployment succeeds.
// stall, when set, freezes the simulation at that minute (nothing moves after it).
type linearDeployment struct {
	clock   *fakeClock
	start   time.Time
	stall   float64
	stopped bool
	// appSpec is the AppSpec content CreateDeployment was sent, returned by
	// GetDeployment as its revision; created says CodeDeploy has the
	// deployment (ListDeployments lists it).
	appSpec string
	created bool
	// creator and description are GetDeployment's: CreateDeployment's
	// description and "user"; a test sets them for a deployment that
	// CodeDeploy or another tool created.
	creator, description string
	// afterCreate, when set, runs once CodeDeploy created the deployment,
	// before the answer reaches cutover (a test kills cutover there).
	afterCreate func()
	// terminated is when ContinueDeployment (TERMINATION_WAIT) ended the
	// termination wait: the deployment succeeds then.
	terminated float64
	continues  []string // each ContinueDeployment's wait type, at the minute it came
}

func (d *linearDeployment) minute() float64 {
	m := d.clock.Now().Sub(d.start).Minutes()
	if d.stall > 0 && m > d.stall {
		return d.stall
	}
	return m
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (d *linearDeployment) answer(op string, req map[string]any) (int, any) {
	m := d.minute()
	switch op {
	case "DescribeServices":
		// ECS's events of the service, newest first: one from before the
		// deployment, then what the replacement task set does.
		events := []any{map[string]any{"id": "ev-0", "createdAt": epoch(d.start.Add(-time.Hour)), "message": "(service backend) has reached a steady state."}}
		if m >= 0.5 {
			events = append([]any{map[string]any{"id": "ev-1", "createdAt": epoch(d.start.Add(30 * time.Second)),
				"message": "(service backend, taskSet ecs-svc/2222) has started 2 tasks: (task 0a1b) (task 2c3d)."}}, events...)
		}
		return http.StatusOK, map[string]any{"services": []any{map[string]any{"serviceName": "backend", "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
			"status": "ACTIVE", "deploymentController": map[string]any{"type": "CODE_DEPLOY"}, "events": events}}, "failures": []any{}}
	case "ListTasks":
		if req["startedBy"] != "ecs-svc/2222" || req["desiredStatus"] != "STOPPED" {
			return awsError("InvalidParameterException", "ListTasks not for the replacement task set's stopped tasks")
		}
		return http.StatusOK, map[string]any{"taskArns": []any{}}
	}
	if op == "ListDeployments" {
		tr, _ := req["createTimeRange"].(map[string]any)
		if req["applicationName"] != "bluemed" || req["deploymentGroupName"] != "production-backend" || tr["start"] == nil {
			return awsError("InvalidInputException", fmt.Sprintf("ListDeployments not for the group since a time: %v", req))
		}
		ids := []any{}
		if d.created {
			ids = append(ids, "d-LINEAR1")
		}
		return http.StatusOK, map[string]any{"deployments": ids}
	}
	if req["deploymentId"] != "d-LINEAR1" {
		return awsError("DeploymentDoesNotExistException", "no deployment "+strings.TrimSpace(op))
	}
	switch op {
	case "StopDeployment":
		d.stopped = true
		return http.StatusOK, map[string]any{"status": "Pending", "statusMessage": "Stopping the deployment and rolling back"}
	case "ContinueDeployment":
		wait, _ := req["deploymentWaitType"].(string)
		d.continues = append(d.continues, fmt.Sprintf("%s at %.1f", wait, m))
		// Only the termination wait is a wait here (the ready option is CONTINUE_DEPLOYMENT).
		if wait != "TERMINATION_WAIT" || m < 11 || d.stopped {
			return awsError("DeploymentIsNotInReadyStateException", "The deployment d-LINEAR1 is not waiting")
		}
		d.terminated = m
		return http.StatusOK, map[string]any{}
	case "GetDeployment":
		status := "InProgress"
		switch {
		case d.stopped:
			status = "Stopped"
		case m < 0.25:
			status = "Created"
		case m >= 16, d.terminated > 0:
			status = "Succeeded"
		}
		info := map[string]any{
			"applicationName": "bluemed", "deploymentGroupName": "production-backend", "deploymentId": "d-LINEAR1",
			"deploymentConfigName": "CodeDeployDefault.ECSLinear10PercentEvery1Minutes", "status": status,
			"computePlatform": "ECS", "creator": cmp.Or(d.creator, "user"), "description": d.description, "createTime": epoch(d.start),
			"deploymentStyle": map[string]any{"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
			"blueGreenDeploymentConfiguration": map[string]any{
				"terminateBlueInstancesOnDeploymentSuccess": map[string]any{"action": "TERMINATE", "terminationWaitTimeInMinutes": 5},
				"deploymentReadyOption":                     map[string]any{"actionOnTimeout": "CONTINUE_DEPLOYMENT", "waitTimeInMinutes": 0},
			},
			"instanceTerminationWaitTimeStarted": m >= 11 && !d.stopped,
			"deploymentOverview":                 map[string]any{"Pending": 0, "InProgress": 1, "Succeeded": 0, "Failed": 0, "Skipped": 0, "Ready": 0},
		}
		if d.appSpec != "" {
			sum := sha256.Sum256([]byte(d.appSpec))
			info["revision"] = map[string]any{"revisionType": "AppSpecContent", "appSpecContent": map[string]any{"content": d.appSpec, "sha256": hex.EncodeToString(sum[:])}}
		}
		if d.stopped {
			info["rollbackInfo"] = map[string]any{"rollbackDeploymentId": "d-ROLLBACK", "rollbackMessage": "Stopped by cutover"}
			info["errorInformation"] = map[string]any{"code": "DEPLOYMENT_STOPPED", "message": "The deployment was stopped by a user"}
		}
		return http.StatusOK, map[string]any{"deploymentInfo": info}
	case "GetDeploymentTarget":
		if req["targetId"] != "c:backend" {
			return awsError("DeploymentTargetDoesNotExistException", "no target")
		}
		if m < 0.5 {
			return awsError("DeploymentTargetDoesNotExistException", "The provided target ID does not belong to the provided deployment")
		}
		ev := func(name string, from, to float64) map[string]any {
			s := "Pending"
			switch {
			case m >= to:
				s = "Succeeded"
			case m >= from:
				s = "InProgress"
			}
			return map[string]any{"lifecycleEventName": name, "status": s}
		}
		weight := 0.0
		if m >= 2 {
			weight = math.Min(100, 10*(math.Floor(m-2)+1))
		}
		running := int64(0)
		if m >= 1.5 {
			running = 2
		}
		return http.StatusOK, map[string]any{"deploymentTarget": map[string]any{
			"deploymentTargetType": "ECSTarget",
			"ecsTarget": map[string]any{
				"deploymentId": "d-LINEAR1", "targetId": "c:backend", "targetArn": "arn:aws:ecs:us-east-1:123456789012:service/c/backend",
				"lastUpdatedAt": epoch(d.clock.Now()), "status": "InProgress",
				"lifecycleEvents": []any{
					ev("BeforeInstall", 0.5, 0.5), ev("Install", 0.5, 1.5), ev("AfterInstall", 1.5, 1.5),
					ev("AllowTestTraffic", 1.5, 1.5), ev("AfterAllowTestTraffic", 1.5, 2),
					ev("BeforeAllowTraffic", 2, 2), ev("AllowTraffic", 2, 11), ev("AfterAllowTraffic", 11, 11),
				},
				"taskSetsInfo": []any{
					map[string]any{"identifer": "ecs-svc/1111", "desiredCount": 2, "pendingCount": 0, "runningCount": 2, "status": "PRIMARY",
						"trafficWeight": 100 - weight, "targetGroup": map[string]any{"name": "backend-blue"}, "taskSetLabel": "Blue"},
					map[string]any{"identifer": "ecs-svc/2222", "desiredCount": 2, "pendingCount": 2 - running, "runningCount": running, "status": "ACTIVE",
						"trafficWeight": weight, "targetGroup": map[string]any{"name": "backend-green"}, "taskSetLabel": "Green"},
				},
			},
		}}
	}
	return awsError("InvalidOperationException", "unexpected "+op)
}

func wirePlatform(t *testing.T, s *wireStub, clock *fakeClock) *Platform {
	t.Helper()
	p, err := New(s.clients(), Options{
		Cluster: "c", Region: "us-east-1",
		Services:     map[string]Service{"backend": {ECSService: "backend", Port: 3001, DesiredCount: 2}},
		PollInterval: 10 * time.Second, MaxPollDelay: 30 * time.Second, Clock: clock, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// codeDeployDriven is the CodeDeploy engine of the wired platform for the
// services' production deployment groups.
func codeDeployDriven(t *testing.T, p *Platform, traffic string) *Driven {
	t.Helper()
	groups := map[string]string{}
	for _, name := range p.names() {
		groups[name] = "production-" + name
	}
	d, err := p.Driven(DrivenOptions{Engine: EngineCodeDeploy, Application: "bluemed", Groups: groups, Traffic: traffic})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// linearController runs the linear deployment through the deployment
// controller: CreateDeployment answers d-LINEAR1, and each StopDeployment
// is recorded with the fake clock's time.
func linearController(t *testing.T, d *linearDeployment) (*ctrl, *wireStub, *[]time.Time) {
	var stops []time.Time
	s := &wireStub{answer: func(op string, req map[string]any) (int, any) {
		switch op {
		case "RegisterTaskDefinition":
			return http.StatusOK, map[string]any{"taskDefinition": map[string]any{
				"taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/" + req["family"].(string) + ":7", "family": req["family"], "revision": 7, "status": "ACTIVE"}}
		case "CreateDeployment":
			if req["deploymentGroupName"] != "production-backend" || req["deploymentConfigName"] != "CodeDeployDefault.ECSLinear10PercentEvery1Minutes" {
				return awsError("InvalidDeploymentGroupNameException", fmt.Sprintf("unexpected deployment %v", req))
			}
			rv, _ := req["revision"].(map[string]any)
			content, _ := rv["appSpecContent"].(map[string]any)
			d.appSpec, _ = content["content"].(string)
			d.description, _ = req["description"].(string)
			d.created = true
			if f := d.afterCreate; f != nil {
				d.afterCreate = nil
				f()
			}
			return http.StatusOK, map[string]any{"deploymentId": "d-LINEAR1"}
		case "StopDeployment":
			stops = append(stops, d.clock.Now())
		}
		return d.answer(op, req)
	}}
	p := wirePlatform(t, s, d.clock)
	h := newCtrl(t, codeDeployDriven(t, p, "Linear10PercentEvery1Minute"), []string{"backend"}, "    strategy: { type: blue_green, traffic: Linear10PercentEvery1Minute }\n")
	return h, s, &stops
}

// TestCodeDeployLinearNotCutByTimeout: a 16-minute linear deployment with
// --timeout 5m runs to its end under the controller: the timeout bounds
// the new tasks' health and each hook, not the shifting or the termination
// wait. Its phases are the controller's own, stored and told.
func TestCodeDeployLinearNotCutByTimeout(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := &linearDeployment{clock: clock, start: clock.Now()}
	h, s, _ := linearController(t, d)
	got := h.deploy(rev("9"))
	if got.Status != store.DeploymentSucceeded || got.Phase != "Succeeded" || got.TrafficPercent != 100 || s.called("StopDeployment") != 0 {
		t.Fatalf("deployment %+v, StopDeployment calls %d, events %q", got, s.called("StopDeployment"), h.events(""))
	}
	if took := clock.Now().Sub(d.start); took < 16*time.Minute {
		t.Errorf("followed for %s, less than the deployment took", took)
	}
	h.wantReadable(got)
	if want := "Pending,Install,AfterAllowTestTraffic,Shifting,TerminationWait,Succeeded"; strings.Join(h.phases(), ",") != want {
		t.Errorf("phases %v, want %s", h.phases(), want)
	}
	var traffic []int
	for _, m := range h.events(deploy.KindNews) {
		if i := strings.Index(m, "% of traffic"); i > 0 {
			v, err := strconv.Atoi(m[strings.LastIndex(m[:i], " ")+1 : i])
			if err == nil && (len(traffic) == 0 || traffic[len(traffic)-1] != v) {
				traffic = append(traffic, v)
			}
		}
	}
	if len(traffic) != 11 || traffic[10] != 100 {
		t.Errorf("traffic steps told %v (want 0, 10, ..., 100)", traffic)
	}
	if news := strings.Join(h.events(deploy.KindNews), "\n"); !strings.Contains(news, "backend: (service backend, taskSet ecs-svc/2222) has started 2 tasks: (task 0a1b) (task 2c3d).") {
		t.Errorf("service events not told:\n%s", news)
	}
	es, err := h.store.GetEnvState(h.ctx, "bluemed", "production")
	if err != nil || es.Revision != "9" || es.Status != "up" {
		t.Errorf("environment state %+v, %v: want revision 9 up, written by the controller", es, err)
	}
}

// TestCodeDeployStuck: a deployment that stops moving is stopped with
// automatic rollback after its allowance while tasks start or traffic
// shifts, and left alone (failed, not stopped) during the termination wait.
func TestCodeDeployStuck(t *testing.T) {
	cases := []struct {
		name     string
		stall    float64
		stop     bool
		minAfter time.Duration // earliest the controller may give up, from the stall
		maxAfter time.Duration
	}{
		{"tasks never healthy", 1, true, 5 * time.Minute, 6 * time.Minute},
		{"shift stuck at 30%", 4.5, true, 6 * time.Minute, 7 * time.Minute},
		// The termination wait began at 11:00: 5m of it and 5m of --timeout.
		{"termination wait overrun", 12, false, 9 * time.Minute, 10 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			d := &linearDeployment{clock: clock, start: clock.Now(), stall: c.stall}
			h, s, stops := linearController(t, d)
			got := h.deploy(rev("9"))
			h.wantReadable(got)
			gaveUp := clock.Now()
			if c.stop {
				if len(*stops) != 1 {
					t.Fatalf("StopDeployment calls %d, want 1; deployment %+v", s.called("StopDeployment"), got)
				}
				gaveUp = (*stops)[0]
				if got.Status != store.DeploymentRolledBack || got.Phase != "RolledBack" || !strings.Contains(got.Reason, "made no progress") {
					t.Errorf("deployment %s %s: %s", got.Status, got.Phase, got.Reason)
				}
			} else if s.called("StopDeployment") != 0 || got.Status != store.DeploymentFailed || !strings.Contains(got.Reason, "not stopped") {
				t.Errorf("deployment %s: %s (StopDeployment calls %d): want failed and left to CodeDeploy", got.Status, got.Reason, s.called("StopDeployment"))
			}
			after := gaveUp.Sub(d.start) - time.Duration(c.stall*float64(time.Minute))
			if after < c.minAfter || after > c.maxAfter {
				t.Errorf("gave up %s after the stall, want between %s and %s", after, c.minAfter, c.maxAfter)
			}
		})
	}
}

// TestCodeDeployStopAndRollbackRequests: `cutover stop` and `cutover
// rollback` reach CodeDeploy through the controller's request events: the
// controller calls StopDeployment with automatic rollback and records the
// end in its own phases, the environment still on the previous revision.
func TestCodeDeployStopAndRollbackRequests(t *testing.T) {
	for _, kind := range []string{deploy.RequestStop, deploy.RequestRollback} {
		t.Run(kind, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			d := &linearDeployment{clock: clock, start: clock.Now()}
			h, s, stops := linearController(t, d)
			if _, err := h.store.PutEnvState(h.ctx, store.EnvState{Project: "bluemed", Environment: "production", Status: "up"}, store.AnyGeneration); err != nil {
				t.Fatal(err)
			}
			asked := false
			answer := s.answer
			s.answer = func(op string, req map[string]any) (int, any) {
				// At 30% of traffic someone runs the command.
				if op == "GetDeployment" && !asked && d.minute() >= 4.5 {
					asked = true
					if _, err := deploy.Request(h.ctx, h.store, "bluemed", "production", kind, "alice"); err != nil {
						t.Error(err)
					}
				}
				return answer(op, req)
			}
			got := h.deploy(rev("9"))
			h.wantReadable(got)
			want := map[string]string{deploy.RequestStop: store.DeploymentStopped, deploy.RequestRollback: store.DeploymentRolledBack}[kind]
			if len(*stops) != 1 || got.Status != want || got.Phase != "RolledBack" || !strings.Contains(got.Reason, "alice") {
				t.Fatalf("deployment %s %s: %s; StopDeployment calls %d", got.Status, got.Phase, got.Reason, len(*stops))
			}
			if !slices.Contains(h.phases(), "RollingBack") {
				t.Errorf("phases %v: no RollingBack while CodeDeploy rolled back", h.phases())
			}
		})
	}
}

// TestAllowance: a canary's 15 minutes at 10% are one step, not a stall.
func TestAllowance(t *testing.T) {
	health := 5 * time.Minute
	cases := []struct {
		name  string
		s     BlueGreenState
		allow time.Duration
		stop  bool
	}{
		{"starting tasks", BlueGreenState{Phase: BlueGreenShifting, Status: "InProgress"}, health, true},
		{"canary at 10%", BlueGreenState{Phase: BlueGreenShifting, Status: "InProgress", Traffic: 10, Step: 15 * time.Minute}, 20 * time.Minute, true},
		{"after AllowTraffic", BlueGreenState{Phase: BlueGreenShifting, Status: "InProgress", Traffic: 100, Step: 15 * time.Minute,
			Events: []Event{{Name: "AllowTraffic", Status: "Succeeded"}}}, health, true},
		{"termination wait", BlueGreenState{Phase: BlueGreenBaking, Status: "InProgress", Traffic: 100, TerminationWait: time.Hour}, time.Hour + health, false},
		{"ready for continue", BlueGreenState{Phase: BlueGreenWaiting, Status: "Ready", ReadyWait: 30 * time.Minute}, 35 * time.Minute, false},
	}
	for _, c := range cases {
		allow, stop := Allowance(c.s, health)
		if allow != c.allow || stop != c.stop {
			t.Errorf("%s: allowance %s stop %v, want %s %v", c.name, allow, stop, c.allow, c.stop)
		}
	}
}

// TestDeployBlueGreenTwoServices: each service's AppSpec goes to its own
// deployment group, and both deployments are followed to success; a failed
// first service stops the run before the second starts.
func TestDeployBlueGreenTwoServices(t *testing.T) {
	for _, failBackend := range []bool{false, true} {
		clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		created := map[string]string{} // deployment group -> AppSpec
		polls := map[string]int{}
		s := &wireStub{answer: func(op string, req map[string]any) (int, any) {
			switch op {
			case "RegisterTaskDefinition":
				family := req["family"].(string)
				return http.StatusOK, map[string]any{"taskDefinition": map[string]any{
					"taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/" + family + ":7", "family": family, "revision": 7, "status": "ACTIVE"}}
			case "CreateDeployment":
				group := req["deploymentGroupName"].(string)
				rev := req["revision"].(map[string]any)
				created[group] = rev["appSpecContent"].(map[string]any)["content"].(string)
				return http.StatusOK, map[string]any{"deploymentId": "d-" + strings.ToUpper(strings.TrimPrefix(group, "production-"))}
			case "GetDeployment":
				id := req["deploymentId"].(string)
				polls[id]++
				status := "InProgress"
				info := map[string]any{"deploymentId": id, "deploymentConfigName": "CodeDeployDefault.ECSAllAtOnce", "computePlatform": "ECS"}
				switch {
				case polls[id] < 3:
				case failBackend && id == "d-BACKEND":
					status = "Failed"
					info["errorInformation"] = map[string]any{"code": "ECS_UPDATE_ERROR", "message": "The ECS service cannot be updated due to an unexpected error"}
					info["rollbackInfo"] = map[string]any{"rollbackDeploymentId": "d-RB", "rollbackMessage": "auto rollback"}
				default:
					status = "Succeeded"
				}
				info["status"] = status
				return http.StatusOK, map[string]any{"deploymentInfo": info}
			case "DescribeServices":
				name := req["services"].([]any)[0].(string)
				return http.StatusOK, map[string]any{"services": []any{map[string]any{"serviceName": name, "status": "ACTIVE", "events": []any{}}}, "failures": []any{}}
			case "GetDeploymentTarget":
				want := map[string]string{"d-BACKEND": "c:backend", "d-FRONTEND": "c:frontend"}[req["deploymentId"].(string)]
				if req["targetId"] != want {
					return awsError("DeploymentTargetDoesNotExistException", "target "+req["targetId"].(string)+" is not in deployment "+req["deploymentId"].(string))
				}
				return http.StatusOK, map[string]any{"deploymentTarget": map[string]any{"deploymentTargetType": "ECSTarget",
					"ecsTarget": map[string]any{"deploymentId": req["deploymentId"], "targetId": want, "status": "InProgress", "lifecycleEvents": []any{
						map[string]any{"lifecycleEventName": "Install", "status": "Succeeded"}}}}}
			}
			return awsError("InvalidOperationException", "unexpected "+op)
		}}
		p, err := New(s.clients(), Options{
			Cluster: "c", Region: "us-east-1", FamilyPrefix: "bluemed-production-",
			Services: map[string]Service{
				"backend":  {ECSService: "backend", Port: 3001, DesiredCount: 2},
				"frontend": {ECSService: "frontend", Port: 3000, DesiredCount: 2},
			},
			PollInterval: 10 * time.Second, MaxPollDelay: 30 * time.Second, Clock: clock, Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		r := rev("9")
		r.Services["frontend"] = store.ServiceRevision{Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/frontend@sha256:" + strings.Repeat("9", 64)}
		h := newCtrl(t, codeDeployDriven(t, p, ""), []string{"backend", "frontend"}, "    strategy: { type: blue_green }\n")
		got := h.deploy(r)
		h.wantReadable(got)
		if failBackend {
			if got.Status != store.DeploymentRolledBack || !strings.Contains(got.Reason, "service backend") || !strings.Contains(got.Reason, "cannot be updated") || len(created) != 1 {
				t.Errorf("failed backend: deployment %s %s: %s; deployments %v", got.Status, got.Phase, got.Reason, created)
			}
			continue
		}
		if got.Status != store.DeploymentSucceeded {
			t.Fatalf("deployment %s: %s", got.Status, got.Reason)
		}
		var data struct {
			Cloud deploy.CloudState `json:"cloud"`
		}
		if err := json.Unmarshal(got.Data, &data); err != nil || data.Cloud.IDs["backend"] != "d-BACKEND" || data.Cloud.IDs["frontend"] != "d-FRONTEND" ||
			strings.Join(data.Cloud.Done, ",") != "backend,frontend" {
			t.Errorf("controller state %s (%v): want both CodeDeploy deployments recorded", got.Data, err)
		}
		for group, want := range map[string]string{
			"production-backend":  `"TaskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-backend:7","LoadBalancerInfo":{"ContainerName":"backend","ContainerPort":3001}`,
			"production-frontend": `"TaskDefinition":"arn:aws:ecs:us-east-1:123456789012:task-definition/bluemed-production-frontend:7","LoadBalancerInfo":{"ContainerName":"frontend","ContainerPort":3000}`,
		} {
			if !strings.Contains(created[group], want) {
				t.Errorf("deployment group %s got AppSpec %s, want %s", group, created[group], want)
			}
		}
	}
}
