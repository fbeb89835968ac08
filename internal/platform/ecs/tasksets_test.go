package ecs

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// TestTaskSetsOnMoto drives the platform contract the way the blue/green
// controller does. moto does not run tasks, so no target ever registers or
// turns healthy and task sets report 0 running tasks: the test asserts the
// API calls and the state moto keeps (task sets, task definitions, weights).
func TestTaskSetsOnMoto(t *testing.T) {
	m := startMoto(t)
	ctx := context.Background()
	e := m.setup(t, ctx, "backend", types.DeploymentControllerTypeExternal)
	p := m.platform(t, e)
	var recorded []string
	p.o.OnTaskDefinition = func(rev, service, arn string) { recorded = append(recorded, rev+" "+service+" "+arn) }

	if err := p.ScaleSet(ctx, "blue", rev("1"), map[string]int{"backend": 2}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "scale blue", m.calls.take(), "DescribeServices", "RegisterTaskDefinition", "CreateTaskSet")
	if len(recorded) != 1 || !strings.HasPrefix(recorded[0], "1 backend arn:aws:ecs:") {
		t.Errorf("task definition recorded: %v", recorded)
	}
	// Idempotent: the same call again changes nothing.
	if err := p.ScaleSet(ctx, "blue", rev("1"), map[string]int{"backend": 2}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "scale blue again", m.calls.take(), "DescribeServices")

	if err := p.Route(ctx, deploy.Routing{Production: map[string]int{"blue": 100}}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "route blue", m.calls.take(), "ModifyListener", "ModifyListener")

	if err := p.ScaleSet(ctx, "green", rev("2"), map[string]int{"backend": 2}); err != nil {
		t.Fatal(err)
	}
	m.calls.take()
	for _, r := range []deploy.Routing{
		{Production: map[string]int{"blue": 100}, Test: "green"},
		{Production: map[string]int{"blue": 90, "green": 10}, Test: "green"},
		{Production: map[string]int{"green": 100}},
	} {
		if err := p.Route(ctx, r); err != nil {
			t.Fatal(err)
		}
		obs, err := p.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(obs.Routing, r) {
			t.Errorf("routing read back %+v, want %+v", obs.Routing, r)
		}
	}
	wantCalls(t, "shift", m.calls.take(),
		"ModifyListener", "ModifyListener", "DescribeServices", "DescribeListeners", "DescribeListeners",
		"ModifyListener", "ModifyListener", "DescribeServices", "DescribeListeners", "DescribeListeners",
		"ModifyListener", "ModifyListener", "DescribeServices", "DescribeListeners", "DescribeListeners")

	obs, err := p.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []deploy.SetInfo{
		{Color: "blue", Revision: "1", Tasks: map[string]int{"backend": 0}},
		{Color: "green", Revision: "2", Tasks: map[string]int{"backend": 0}},
	}
	if !reflect.DeepEqual(obs.Sets, want) {
		t.Errorf("sets %+v, want %+v", obs.Sets, want)
	}
	m.calls.take()

	h, err := p.Health(ctx, "green")
	if err != nil {
		t.Fatal(err)
	}
	if h.Total != 2 || h.Healthy != 0 || len(h.Failures) != 0 {
		t.Errorf("health %+v: want 2 expected, 0 healthy (moto runs no tasks)", h)
	}
	wantCalls(t, "health", m.calls.take(), "DescribeTargetHealth", "DescribeServices", "ListTasks")

	// Metrics are tested with stubs (TestMetricsStub): the CloudWatch SDK
	// speaks the rpc-v2 CBOR protocol, which moto 5.2 does not serve.

	// Retire blue, as the controller does after the termination wait.
	if err := p.ScaleSet(ctx, "blue", store.Revision{}, map[string]int{"backend": 0}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "retire blue", m.calls.take(), "DescribeServices", "DeleteTaskSet")
	obs, err = p.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Sets) != 1 || obs.Sets[0].Color != "green" {
		t.Errorf("after retiring blue: sets %+v", obs.Sets)
	}

	// The task definition has the image by digest, env, secrets and awslogs.
	svc, err := m.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: &e.cluster, Services: []string{"backend"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := svc.Services[0].TaskSets[0]
	if got := aws.ToString(ts.ExternalId); got != "cutover/green/2" {
		t.Errorf("external id %q", got)
	}
	if len(ts.LoadBalancers) != 1 || aws.ToString(ts.LoadBalancers[0].TargetGroupArn) != e.tgs["green"] || aws.ToInt32(ts.LoadBalancers[0].ContainerPort) != 3001 {
		t.Errorf("task set load balancers %+v", ts.LoadBalancers)
	}
	td, err := m.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: ts.TaskDefinition})
	if err != nil {
		t.Fatal(err)
	}
	c := td.TaskDefinition.ContainerDefinitions[0]
	if !strings.Contains(aws.ToString(c.Image), "@sha256:2222") || len(c.Environment) != 1 || len(c.Secrets) != 1 ||
		c.LogConfiguration == nil || c.LogConfiguration.Options["awslogs-group"] != "/cutover/test" {
		t.Errorf("container definition %+v", c)
	}
	// As the exported templates: read-only root, the stop timeout (clamped to
	// Fargate's 120 s), the service's own task role.
	if !aws.ToBool(c.ReadonlyRootFilesystem) || aws.ToInt32(c.StopTimeout) != 120 || aws.ToString(td.TaskDefinition.TaskRoleArn) != "arn:aws:iam::123456789012:role/backend" {
		t.Errorf("read-only root %v, stop timeout %v, task role %v", aws.ToBool(c.ReadonlyRootFilesystem), aws.ToInt32(c.StopTimeout), aws.ToString(td.TaskDefinition.TaskRoleArn))
	}
}
