package ecs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

func dep(id, status, td string, state types.DeploymentRolloutState, reason string, failed int32) types.Deployment {
	return types.Deployment{Id: aws.String(id), Status: aws.String(status), TaskDefinition: aws.String(td),
		RolloutState: state, RolloutStateReason: aws.String(reason), FailedTasks: failed, DesiredCount: 2}
}

func TestDecideRollout(t *testing.T) {
	const mine, old = "td:2", "td:1"
	cases := []struct {
		name  string
		deps  []types.Deployment
		phase RolloutPhase
		err   string
	}{
		{"in progress", []types.Deployment{dep("d2", "PRIMARY", mine, types.DeploymentRolloutStateInProgress, "", 0), dep("d1", "ACTIVE", old, types.DeploymentRolloutStateCompleted, "", 0)}, RolloutInProgress, ""},
		{"in progress with failed tasks", []types.Deployment{dep("d2", "PRIMARY", mine, types.DeploymentRolloutStateInProgress, "", 3)}, RolloutInProgress, ""},
		{"completed", []types.Deployment{dep("d2", "PRIMARY", mine, types.DeploymentRolloutStateCompleted, "ECS deployment d2 completed.", 0)}, RolloutCompleted, ""},
		{"failed without rollback", []types.Deployment{dep("d2", "PRIMARY", mine, types.DeploymentRolloutStateFailed, "tasks failed to start", 5)}, RolloutFailed, "tasks failed to start"},
		{"circuit breaker rollback starting", []types.Deployment{dep("d3", "PRIMARY", old, types.DeploymentRolloutStateInProgress, "", 0), dep("d2", "ACTIVE", mine, types.DeploymentRolloutStateFailed, "ECS deployment circuit breaker: tasks failed to start.", 4)}, RolloutRolledBack, "circuit breaker"},
		{"alarm rollback", []types.Deployment{dep("d3", "PRIMARY", old, types.DeploymentRolloutStateInProgress, "", 0), dep("d2", "ACTIVE", mine, types.DeploymentRolloutStateInProgress, "", 0)}, RolloutRolledBack, "another deployment"},
		{"rolled back and gone", []types.Deployment{dep("d3", "PRIMARY", old, types.DeploymentRolloutStateCompleted, "", 0)}, RolloutRolledBack, "runs td:1 again"},
		{"replaced by a newer deploy", []types.Deployment{dep("d4", "PRIMARY", mine, types.DeploymentRolloutStateInProgress, "", 0)}, RolloutFailed, "replaced"},
		{"no circuit breaker, stable", []types.Deployment{{Id: aws.String("d2"), Status: aws.String("PRIMARY"), TaskDefinition: aws.String(mine), DesiredCount: 2, RunningCount: 2}}, RolloutCompleted, ""},
		{"no circuit breaker, starting", []types.Deployment{{Id: aws.String("d2"), Status: aws.String("PRIMARY"), TaskDefinition: aws.String(mine), DesiredCount: 2, RunningCount: 1, PendingCount: 1}}, RolloutInProgress, ""},
		{"unknown state", []types.Deployment{dep("d2", "PRIMARY", mine, "PAUSED", "", 0)}, RolloutFailed, "unknown rollout state"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := DecideRollout(types.Service{Deployments: c.deps}, "d2", mine)
			if r.Phase != c.phase {
				t.Fatalf("phase %s, want %s (%+v)", r.Phase, c.phase, r)
			}
			err := r.Err()
			if (err != nil) != (c.err != "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want one containing %q", err, c.err)
			}
		})
	}
}

// TestRolloutStatesCovered fails when the SDK gains a rollout state that
// DecideRollout does not know: teach it the new state, then update this test.
func TestRolloutStatesCovered(t *testing.T) {
	for _, v := range types.DeploymentRolloutState("").Values() {
		r := DecideRollout(types.Service{Deployments: []types.Deployment{dep("d", "PRIMARY", "td", v, "", 0)}}, "d", "td")
		if strings.Contains(r.Reason, "unknown rollout state") {
			t.Errorf("rollout state %q from the SDK is not handled by DecideRollout", v)
		}
	}
}

// TestDeployRollingRollbackStub: ECS starts the deployment, tasks fail, the
// circuit breaker rolls back. The wait must end with an error that says so.
func TestDeployRollingRollbackStub(t *testing.T) {
	polls := 0
	s := &stub{}
	s.answer = func(op string, in any) (any, error) {
		switch op {
		case "RegisterTaskDefinition":
			return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &types.TaskDefinition{TaskDefinitionArn: aws.String("td:2")}}, nil
		case "UpdateService":
			u := in.(*ecs.UpdateServiceInput)
			cb := u.DeploymentConfiguration.DeploymentCircuitBreaker
			if !cb.Enable || !cb.Rollback || u.DeploymentConfiguration.Alarms == nil || u.DeploymentConfiguration.Alarms.AlarmNames[0] != "p95" {
				return nil, errors.New("UpdateService without circuit breaker rollback and alarms")
			}
			return &ecs.UpdateServiceOutput{Service: &types.Service{Deployments: []types.Deployment{
				dep("d2", "PRIMARY", "td:2", types.DeploymentRolloutStateInProgress, "", 0), dep("d1", "ACTIVE", "td:1", types.DeploymentRolloutStateCompleted, "", 0)}}}, nil
		case "DescribeServices":
			polls++
			svc := types.Service{Status: aws.String("ACTIVE"), Deployments: []types.Deployment{
				dep("d2", "PRIMARY", "td:2", types.DeploymentRolloutStateInProgress, "", int32(polls)), dep("d1", "ACTIVE", "td:1", types.DeploymentRolloutStateCompleted, "", 0)}}
			if polls >= 3 {
				svc.Deployments = []types.Deployment{dep("d3", "PRIMARY", "td:1", types.DeploymentRolloutStateInProgress, "", 0),
					dep("d2", "ACTIVE", "td:2", types.DeploymentRolloutStateFailed, "ECS deployment circuit breaker: tasks failed to start.", 3)}
			}
			// ECS lists events newest first; an old one from before the deployment is not news.
			now := time.Now()
			svc.Events = []types.ServiceEvent{{Id: aws.String("e-old"), CreatedAt: aws.Time(now.Add(-time.Hour)), Message: aws.String("(service backend) has reached a steady state.")}}
			if polls >= 2 {
				svc.Events = append([]types.ServiceEvent{{Id: aws.String("e-1"), CreatedAt: aws.Time(now), Message: aws.String("(service backend) has started 2 tasks: (task 1a2b).")}}, svc.Events...)
			}
			return &ecs.DescribeServicesOutput{Services: []types.Service{svc}}, nil
		case "ListTasks":
			if l := in.(*ecs.ListTasksInput); aws.ToString(l.StartedBy) != "d2" || l.DesiredStatus != types.DesiredStatusStopped {
				return nil, errors.New("ListTasks not for the deployment's stopped tasks")
			}
			return &ecs.ListTasksOutput{TaskArns: []string{"arn:aws:ecs:us-east-1:123456789012:task/c/1a2b"}}, nil
		case "DescribeTasks":
			return &ecs.DescribeTasksOutput{Tasks: []types.Task{{TaskArn: aws.String("arn:aws:ecs:us-east-1:123456789012:task/c/1a2b"),
				StopCode: types.TaskStopCodeEssentialContainerExited, StoppedReason: aws.String("Essential container in task exited"),
				Containers: []types.Container{{Name: aws.String("backend"), ExitCode: aws.Int32(2), Reason: aws.String("panic: no DATABASE_URL")}}}}}, nil
		case "DescribeAlarms":
			// The alarm gate reads the alarm each poll; it stays OK here.
			return alarmsOut(AlarmState{"p95", "OK", ""}), nil
		}
		return nil, errors.New("unexpected " + op)
	}
	p := stubPlatform(t, s)
	d, err := p.Driven(DrivenOptions{Engine: EngineRolling, Alarms: []string{"p95"}})
	if err != nil {
		t.Fatal(err)
	}
	h := newCtrl(t, d, []string{"backend"}, "    strategy: { type: rolling }\n")
	got := h.deploy(rev("2"))
	h.wantReadable(got)
	if got.Status != store.DeploymentRolledBack || got.Phase != "RolledBack" || !strings.Contains(got.Reason, "circuit breaker") || !strings.Contains(got.Reason, "service backend") {
		t.Fatalf("deployment %s %s: %q, want rolled back by the circuit breaker", got.Status, got.Phase, got.Reason)
	}
	if want := "Rolling,RolledBack"; strings.Join(h.phases(), ",") != want {
		t.Errorf("phases %v, want %s", h.phases(), want)
	}
	// Each event and each stopped task's reason is told once, as it happens.
	var news []string
	for _, m := range h.events(deploy.KindNews) {
		if strings.Contains(m, "task 1a2b") {
			news = append(news, m)
		}
	}
	want := []string{
		"backend: task 1a2b stopped: Essential container in task exited (container backend: panic: no DATABASE_URL) (exit code 2)",
		"backend: (service backend) has started 2 tasks: (task 1a2b).",
	}
	if strings.Join(news, "\n") != strings.Join(want, "\n") {
		t.Errorf("news\n got %q\nwant %q", news, want)
	}
	if !slices.ContainsFunc(h.events(deploy.KindNews), func(m string) bool { return strings.Contains(m, "2 failed tasks") }) {
		t.Errorf("failed tasks not told: %q", h.events(deploy.KindNews))
	}
}

// TestRollingOnMoto runs a rolling deploy on a service with the ECS
// deployment controller. moto does not run tasks or deployments: its
// deployment is COMPLETED from the start when the service has no tasks, so
// the test asserts the calls and the service's new task definition; the
// waiting logic is covered by the stub tests.
func TestRollingOnMoto(t *testing.T) {
	m := startMoto(t)
	ctx := context.Background()
	e := m.setup(t, ctx, "backend", types.DeploymentControllerTypeEcs)
	p := m.platform(t, e)
	p.o.Services["backend"] = Service{ECSService: "backend", Port: 3001, TargetGroups: e.tgs, Listener: e.listener, CPU: "256", Memory: "512"}
	d, err := p.Driven(DrivenOptions{Engine: EngineRolling, Alarms: []string{"backend-5xx"}})
	if err != nil {
		t.Fatal(err)
	}
	got := newCtrl(t, d, []string{"backend"}, "    strategy: { type: rolling }\n").deploy(rev("3"))
	if got.Status != store.DeploymentSucceeded || got.Phase != "Succeeded" {
		t.Errorf("deployment %s %s: %s", got.Status, got.Phase, got.Reason)
	}
	svc := m.wantUpdated(t, "rolling", e)
	if dc := svc.DeploymentConfiguration; dc == nil || dc.DeploymentCircuitBreaker == nil || !dc.DeploymentCircuitBreaker.Rollback {
		t.Errorf("deployment configuration %+v: want the circuit breaker with rollback", dc)
	}
	wantNetwork(t, svc, e.subnets, e.groups, types.AssignPublicIpDisabled)

	// deploy --diff: what the next revision changes, read against the task
	// definition the service runs in moto.
	next := rev("4")
	next.Services["backend"] = store.ServiceRevision{Image: next.Services["backend"].Image}
	p.o.Services["backend"] = Service{ECSService: "backend", Port: 3001, CPU: "256", Memory: "1024", Env: map[string]string{"MODE": "canary"}}
	diff, err := p.TaskDefinitionDiff(ctx, "backend", next)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"+ container backend env MODE: canary",
		"- container backend image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/backend@sha256:" + strings.Repeat("3", 64),
		"+ container backend image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/backend@sha256:" + strings.Repeat("4", 64),
		"- memory: 512", "+ memory: 1024",
	}
	if strings.Join(diff, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff\n got %q\nwant %q", diff, want)
	}
}

// wantUpdated checks that one deployment of backend made exactly the calls
// RegisterTaskDefinition, DescribeServices, UpdateService, DescribeServices
// and left the service on the new task definition revision; it returns the
// service.
func (m *moto) wantUpdated(t *testing.T, step string, e env) types.Service {
	t.Helper()
	// The first DescribeServices reads the service's assign-public-IP
	// setting, which the update keeps.
	wantCalls(t, step, m.calls.take(), "RegisterTaskDefinition", "DescribeServices", "UpdateService", "DescribeServices")
	out, err := m.ecs.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: &e.cluster, Services: []string{"backend"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := out.Services[0]
	if td := aws.ToString(svc.TaskDefinition); !strings.HasSuffix(td, "task-definition/cutover-backend:2") {
		t.Errorf("service task definition %s, want the new revision cutover-backend:2", td)
	}
	return svc
}

// TestRollingMovesTheServiceToTheConfiguredSubnets: ecs.subnets and
// ecs.security_groups are where a deployment puts the service's tasks (they
// were only read to choose the awsvpc network mode, so a service created in
// other subnets stayed there), and the service's own assign-public-IP
// setting is kept: tasks in public subnets pull their images through it.
func TestRollingMovesTheServiceToTheConfiguredSubnets(t *testing.T) {
	m := startMoto(t)
	ctx := context.Background()
	e := m.setup(t, ctx, "backend", types.DeploymentControllerTypeEcs)
	_, err := m.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: &e.cluster, Service: aws.String("backend"),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets: e.subnets[:1], AssignPublicIp: types.AssignPublicIpEnabled}}})
	if err != nil {
		t.Fatal(err)
	}
	m.calls.take()
	p := m.platform(t, e)
	p.o.Services["backend"] = Service{ECSService: "backend", Port: 3001, CPU: "256", Memory: "512"}
	// deploy --diff says where the tasks move.
	diff, err := p.TaskDefinitionDiff(ctx, "backend", rev("3"))
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Sorted(slices.Values(e.subnets))
	for _, line := range []string{"- subnets: " + e.subnets[0], "+ subnets: " + strings.Join(sorted, ", "), "+ security_groups: " + e.groups[0]} {
		if !slices.Contains(diff, line) {
			t.Errorf("deploy --diff lacks %q:\n%s", line, strings.Join(diff, "\n"))
		}
	}
	m.calls.take()
	d, err := p.Driven(DrivenOptions{Engine: EngineRolling})
	if err != nil {
		t.Fatal(err)
	}
	if got := newCtrl(t, d, []string{"backend"}, "    strategy: { type: rolling }\n").deploy(rev("3")); got.Status != store.DeploymentSucceeded {
		t.Fatalf("deployment %s %s: %s", got.Status, got.Phase, got.Reason)
	}
	wantNetwork(t, m.wantUpdated(t, "rolling", e), e.subnets, e.groups, types.AssignPublicIpEnabled)
}

// wantNetwork checks the service's awsvpc configuration.
func wantNetwork(t *testing.T, svc types.Service, subnets, groups []string, public types.AssignPublicIp) {
	t.Helper()
	nc := svc.NetworkConfiguration
	if nc == nil || nc.AwsvpcConfiguration == nil {
		t.Fatalf("service has no network configuration, want subnets %v", subnets)
	}
	if c := nc.AwsvpcConfiguration; !slices.Equal(c.Subnets, subnets) || !slices.Equal(c.SecurityGroups, groups) || c.AssignPublicIp != public {
		t.Errorf("service network: subnets %v, security groups %v, public IP %s; want %v, %v, %s", c.Subnets, c.SecurityGroups, c.AssignPublicIp, subnets, groups, public)
	}
}

// TestRollingStopRequest: `cutover stop` during an ECS rolling deployment
// reaches ECS as StopServiceDeployment with ROLLBACK through the
// controller's request events; the deployment ends "stopped" once ECS's
// primary deployment runs the previous task definition again. moto serves
// neither ListServiceDeployments nor StopServiceDeployment: the stub answers
// them with SDK output types.
func TestRollingStopRequest(t *testing.T) {
	var h *ctrl
	stopped, polls := false, 0
	arn := "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/backend/r2"
	s := &stub{}
	s.answer = func(op string, in any) (any, error) {
		switch op {
		case "RegisterTaskDefinition":
			return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &types.TaskDefinition{TaskDefinitionArn: aws.String("td:2")}}, nil
		case "UpdateService":
			return &ecs.UpdateServiceOutput{Service: &types.Service{Deployments: []types.Deployment{
				dep("d2", "PRIMARY", "td:2", types.DeploymentRolloutStateInProgress, "", 0), dep("d1", "ACTIVE", "td:1", types.DeploymentRolloutStateCompleted, "", 0)}}}, nil
		case "DescribeServices":
			polls++
			if polls == 2 {
				if _, err := deploy.Request(h.ctx, h.store, "bluemed", "production", deploy.RequestStop, "carol"); err != nil {
					t.Error(err)
				}
			}
			deps := []types.Deployment{dep("d2", "PRIMARY", "td:2", types.DeploymentRolloutStateInProgress, "", 0), dep("d1", "ACTIVE", "td:1", types.DeploymentRolloutStateCompleted, "", 0)}
			if stopped {
				deps = []types.Deployment{dep("d3", "PRIMARY", "td:1", types.DeploymentRolloutStateInProgress, "", 0),
					dep("d2", "ACTIVE", "td:2", types.DeploymentRolloutStateFailed, "Service deployment rolled back because of a user request.", 0)}
			}
			return &ecs.DescribeServicesOutput{Services: []types.Service{{Status: aws.String("ACTIVE"), Deployments: deps}}}, nil
		case "ListTasks":
			return &ecs.ListTasksOutput{}, nil
		case "ListServiceDeployments":
			return &ecs.ListServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeploymentBrief{{ServiceDeploymentArn: aws.String(arn), Status: types.ServiceDeploymentStatusInProgress}}}, nil
		case "StopServiceDeployment":
			st := in.(*ecs.StopServiceDeploymentInput)
			if aws.ToString(st.ServiceDeploymentArn) != arn || st.StopType != types.StopServiceDeploymentStopTypeRollback {
				return nil, errors.New("StopServiceDeployment not a rollback of the deployment")
			}
			stopped = true
			return &ecs.StopServiceDeploymentOutput{ServiceDeploymentArn: aws.String(arn)}, nil
		}
		return nil, errors.New("unexpected " + op)
	}
	d, err := stubPlatform(t, s).Driven(DrivenOptions{Engine: EngineRolling})
	if err != nil {
		t.Fatal(err)
	}
	h = newCtrl(t, d, []string{"backend"}, "    strategy: { type: rolling }\n")
	got := h.deploy(rev("2"))
	h.wantReadable(got)
	if !stopped || got.Status != store.DeploymentStopped || got.Phase != "RolledBack" || !strings.Contains(got.Reason, "carol") {
		t.Errorf("stopped %v; deployment %s %s: %s", stopped, got.Status, got.Phase, got.Reason)
	}
	if want := "Rolling,RollingBack,RolledBack"; strings.Join(h.phases(), ",") != want {
		t.Errorf("phases %v, want %s", h.phases(), want)
	}
}
