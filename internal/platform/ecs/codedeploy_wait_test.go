package ecs

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

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
	if req["deploymentId"] != "d-LINEAR1" {
		return awsError("DeploymentDoesNotExistException", "no deployment "+strings.TrimSpace(op))
	}
	switch op {
	case "StopDeployment":
		d.stopped = true
		return http.StatusOK, map[string]any{"status": "Pending", "statusMessage": "Stopping the deployment and rolling back"}
	case "GetDeployment":
		status := "InProgress"
		switch {
		case d.stopped:
			status = "Stopped"
		case m < 0.25:
			status = "Created"
		case m >= 16:
			status = "Succeeded"
		}
		info := map[string]any{
			"applicationName": "bluemed", "deploymentGroupName": "production-backend", "deploymentId": "d-LINEAR1",
			"deploymentConfigName": "CodeDeployDefault.ECSLinear10PercentEvery1Minutes", "status": status,
			"computePlatform": "ECS", "creator": "user", "createTime": epoch(d.start),
			"deploymentStyle": map[string]any{"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
			"blueGreenDeploymentConfiguration": map[string]any{
				"terminateBlueInstancesOnDeploymentSuccess": map[string]any{"action": "TERMINATE", "terminationWaitTimeInMinutes": 5},
				"deploymentReadyOption":                     map[string]any{"actionOnTimeout": "CONTINUE_DEPLOYMENT", "waitTimeInMinutes": 0},
			},
			"instanceTerminationWaitTimeStarted": m >= 11 && !d.stopped,
			"deploymentOverview":                 map[string]any{"Pending": 0, "InProgress": 1, "Succeeded": 0, "Failed": 0, "Skipped": 0, "Ready": 0},
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

// TestWaitBlueGreenLinearNotCutByTimeout: a 16-minute linear deployment
// with --timeout 5m runs to its end: the timeout bounds the new tasks'
// health and each hook, not the shifting or the termination wait.
func TestWaitBlueGreenLinearNotCutByTimeout(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := &linearDeployment{clock: clock, start: clock.Now()}
	s := &wireStub{answer: d.answer}
	p := wirePlatform(t, s, clock)
	var traffic []float64
	var baked bool
	var news []string
	st, err := p.WaitBlueGreen(context.Background(), "backend", "d-LINEAR1", 5*time.Minute, func(st BlueGreenState) {
		news = append(news, st.News...)
		if n := len(traffic); n == 0 || traffic[n-1] != st.Traffic {
			traffic = append(traffic, st.Traffic)
		}
		baked = baked || st.Phase == BlueGreenBaking
	})
	if err != nil {
		t.Fatalf("healthy deployment reported as %v (state %+v)", err, st)
	}
	if st.Phase != BlueGreenSucceeded || st.StoppedByCutover || s.called("StopDeployment") != 0 {
		t.Errorf("state %+v, StopDeployment calls %d", st, s.called("StopDeployment"))
	}
	if took := clock.Now().Sub(d.start); took < 16*time.Minute {
		t.Errorf("wait ended after %s, before the deployment did", took)
	}
	if !baked || len(traffic) != 11 || traffic[10] != 100 {
		t.Errorf("baked %v, traffic steps seen %v (want 0, 10, ..., 100)", baked, traffic)
	}
	if st.Step != time.Minute || st.TerminationWait != 5*time.Minute {
		t.Errorf("step %s, termination wait %s from the deployment", st.Step, st.TerminationWait)
	}
	if strings.Join(news, "|") != "(service backend, taskSet ecs-svc/2222) has started 2 tasks: (task 0a1b) (task 2c3d)." {
		t.Errorf("service events told %q", news)
	}
}

// TestWaitBlueGreenStuck: a deployment that stops moving is stopped with
// automatic rollback after its allowance while tasks start or traffic shifts,
// and left alone during the termination wait.
func TestWaitBlueGreenStuck(t *testing.T) {
	cases := []struct {
		name     string
		stall    float64
		stop     bool
		minAfter time.Duration // earliest the wait may give up, from the stall
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
			s := &wireStub{answer: d.answer}
			st, err := wirePlatform(t, s, clock).WaitBlueGreen(context.Background(), "backend", "d-LINEAR1", 5*time.Minute, nil)
			if err == nil || !strings.Contains(err.Error(), "made no progress") {
				t.Fatalf("err %v", err)
			}
			stalled := time.Duration(c.stall * float64(time.Minute))
			gaveUp := clock.Now().Sub(d.start) - stalled
			if gaveUp < c.minAfter || gaveUp > c.maxAfter {
				t.Errorf("gave up %s after the stall, want between %s and %s", gaveUp, c.minAfter, c.maxAfter)
			}
			if st.StoppedByCutover != c.stop || (s.called("StopDeployment") == 1) != c.stop {
				t.Errorf("stopped %v (calls %d), want %v: %v", st.StoppedByCutover, s.called("StopDeployment"), c.stop, err)
			}
			if !c.stop && !strings.Contains(err.Error(), "not stopped") {
				t.Errorf("err %v does not say the deployment was left running", err)
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
		var started []string
		name, st, err := p.DeployBlueGreen(context.Background(), r, BlueGreenRun{
			Application: "bluemed", Groups: map[string]string{"backend": "production-backend", "frontend": "production-frontend"},
			Health: 5 * time.Minute, Started: func(service, id string) error { started = append(started, service+"="+id); return nil },
		})
		if failBackend {
			if name != "backend" || err == nil || !st.RolledBack || !strings.Contains(err.Error(), "cannot be updated") || len(created) != 1 {
				t.Errorf("failed backend: service %q state %+v err %v, deployments %v", name, st, err, created)
			}
			continue
		}
		if err != nil || name != "" {
			t.Fatalf("service %q: %v", name, err)
		}
		if strings.Join(started, ",") != "backend=d-BACKEND,frontend=d-FRONTEND" {
			t.Errorf("started %v", started)
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
