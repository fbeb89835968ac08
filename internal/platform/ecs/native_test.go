package ecs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

const stubRule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/cutover/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"

// TestDeploymentStrategiesCovered: each strategy of the SDK is either native
// blue/green or the rolling update DeployRolling does.
func TestDeploymentStrategiesCovered(t *testing.T) {
	for _, v := range types.DeploymentStrategy("").Values() {
		if v == types.DeploymentStrategyRolling {
			continue
		}
		o := NativeOptions{Strategy: string(v), CanaryPercent: 10, LinearPercent: 25}
		if _, err := NativeConfiguration(o); err != nil {
			t.Errorf("strategy %q from the SDK: %v", v, err)
		}
	}
	if _, err := NativeConfiguration(NativeOptions{Strategy: "ROLLING"}); err == nil {
		t.Error("ROLLING accepted as a native blue/green strategy")
	}
}

// TestLifecycleStagesMatchTheSDK: cutover.yaml accepts exactly the
// lifecycle stages this SDK defines, so a stage AWS adds fails here first.
func TestLifecycleStagesMatchTheSDK(t *testing.T) {
	var sdk []string
	for _, v := range types.DeploymentLifecycleHookStage("").Values() {
		sdk = append(sdk, string(v))
	}
	if !slices.Equal(sdk, config.ECSLifecycleStages) {
		t.Errorf("config.ECSLifecycleStages = %v, the SDK has %v", config.ECSLifecycleStages, sdk)
	}
}

func TestNativeConfiguration(t *testing.T) {
	c, err := NativeConfiguration(NativeOptions{Strategy: "CANARY", CanaryPercent: 10, StepWait: 90 * time.Second, BakeTime: 5 * time.Minute,
		Alarms: []string{"p95"}, Hooks: []Hook{{LambdaARN: "arn:lambda", RoleARN: "arn:role", Stages: []string{"POST_TEST_TRAFFIC_SHIFT"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if *c.BakeTimeInMinutes != 5 || *c.CanaryConfiguration.CanaryBakeTimeInMinutes != 2 || *c.CanaryConfiguration.CanaryPercent != 10 ||
		!c.Alarms.Rollback || !c.DeploymentCircuitBreaker.Rollback || c.LifecycleHooks[0].LifecycleStages[0] != types.DeploymentLifecycleHookStagePostTestTrafficShift {
		t.Errorf("configuration %+v", c)
	}
	for _, o := range []NativeOptions{
		{Strategy: "CANARY", CanaryPercent: 100},
		{Strategy: "LINEAR"},
		{Strategy: "BLUE_GREEN", Hooks: []Hook{{LambdaARN: "arn:lambda", RoleARN: "arn:role", Stages: []string{"AFTER_LUNCH"}}}},
		{Strategy: "BLUE_GREEN", Hooks: []Hook{{LambdaARN: "arn:lambda", Stages: []string{"PRE_SCALE_UP"}}}},
	} {
		if _, err := NativeConfiguration(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestDeployNativeAlarmStub: the native deployment goes out with the
// alternate target group and listener rules; an alarm fires during the wait
// TestNativeAlarmStopsWithRollback: an alarm in ALARM during an ECS-native
// deployment makes the controller stop it with StopServiceDeployment
// (ROLLBACK) instead of waiting for ECS's own evaluation; the deployment
// ends rolled back, naming the alarm. moto serves none of the service
// deployment APIs: the stub answers them with SDK output types.
func TestNativeAlarmStopsWithRollback(t *testing.T) {
	var stopType types.StopServiceDeploymentStopType
	arn := "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/backend/x1"
	s := &stub{}
	s.answer = func(op string, in any) (any, error) {
		switch op {
		case "RegisterTaskDefinition":
			return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &types.TaskDefinition{TaskDefinitionArn: aws.String("td:2")}}, nil
		case "UpdateService":
			u := in.(*ecs.UpdateServiceInput)
			lb := u.LoadBalancers[0]
			if u.DeploymentConfiguration.Strategy != types.DeploymentStrategyBlueGreen || aws.ToString(lb.TargetGroupArn) != stubTGBlue ||
				aws.ToString(lb.AdvancedConfiguration.AlternateTargetGroupArn) != stubTGGreen || aws.ToString(lb.AdvancedConfiguration.ProductionListenerRule) != stubRule ||
				aws.ToString(lb.AdvancedConfiguration.RoleArn) != "arn:aws:iam::123456789012:role/ecs-lb" {
				return nil, errors.New("UpdateService without the native blue/green settings")
			}
			return &ecs.UpdateServiceOutput{Service: &types.Service{Deployments: []types.Deployment{
				dep("d2", "PRIMARY", "td:2", types.DeploymentRolloutStateInProgress, "", 0), dep("d1", "ACTIVE", "td:1", types.DeploymentRolloutStateCompleted, "", 0)}}}, nil
		case "DescribeServices":
			return &ecs.DescribeServicesOutput{Services: []types.Service{{Status: aws.String("ACTIVE"), Deployments: []types.Deployment{
				dep("d2", "PRIMARY", "td:2", types.DeploymentRolloutStateInProgress, "", 0), dep("d1", "ACTIVE", "td:1", types.DeploymentRolloutStateCompleted, "", 0)}}}}, nil
		case "ListServiceDeployments":
			return &ecs.ListServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeploymentBrief{{ServiceDeploymentArn: aws.String(arn), Status: types.ServiceDeploymentStatusInProgress}}}, nil
		case "DescribeServiceDeployments":
			sd := types.ServiceDeployment{ServiceDeploymentArn: aws.String(arn), Status: types.ServiceDeploymentStatusInProgress, LifecycleStage: types.ServiceDeploymentLifecycleStageScaleUp}
			if stopType != "" {
				sd.Status, sd.StatusReason = types.ServiceDeploymentStatusRollbackSuccessful, aws.String("Service deployment rolled back because of a user request.")
			}
			return &ecs.DescribeServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeployment{sd}}, nil
		case "StopServiceDeployment":
			st := in.(*ecs.StopServiceDeploymentInput)
			if aws.ToString(st.ServiceDeploymentArn) != arn {
				return nil, errors.New("StopServiceDeployment of another deployment")
			}
			stopType = st.StopType
			return &ecs.StopServiceDeploymentOutput{ServiceDeploymentArn: aws.String(arn)}, nil
		case "DescribeAlarms":
			return alarmsOut(AlarmState{"p95", "ALARM", "Threshold Crossed"}), nil
		case "ListTasks":
			return &ecs.ListTasksOutput{}, nil // no task stopped
		}
		return nil, errors.New("unexpected " + op)
	}
	p := stubPlatform(t, s)
	svc := p.o.Services["backend"]
	svc.Rule = stubRule
	p.o.Services["backend"] = svc
	d, err := p.Driven(DrivenOptions{Engine: EngineNative, Alarms: []string{"p95"},
		Native: NativeOptions{Strategy: "BLUE_GREEN", RoleARN: "arn:aws:iam::123456789012:role/ecs-lb", Alarms: []string{"p95"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newCtrl(t, d, []string{"backend"}, "    strategy: { type: blue_green } # ecs-native\n")
	got := h.deploy(rev("2"))
	h.wantReadable(got)
	if stopType != types.StopServiceDeploymentStopTypeRollback {
		t.Errorf("StopServiceDeployment stop type %q, want ROLLBACK", stopType)
	}
	if got.Status != store.DeploymentRolledBack || got.Phase != "RolledBack" || !strings.Contains(got.Reason, "alarm p95 is in ALARM") {
		t.Errorf("deployment %s %s: %s", got.Status, got.Phase, got.Reason)
	}
}

func TestDeployNativeNeedsRule(t *testing.T) {
	p := stubPlatform(t, &stub{answer: func(op string, _ any) (any, error) { return nil, errors.New("unexpected " + op) }})
	d, err := p.Driven(DrivenOptions{Engine: EngineNative, Native: NativeOptions{Strategy: "BLUE_GREEN", RoleARN: "arn:role"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prepare(context.Background(), "backend", rev("2")); err == nil || !strings.Contains(err.Error(), "listener rule") {
		t.Errorf("err = %v", err)
	}
}

// TestNativeOnMoto sends a native blue/green UpdateService to moto. moto
// accepts the call but does not model the strategy: it keeps no
// deploymentConfiguration.strategy and runs no traffic shift, and its
// deployment is COMPLETED at once (no tasks), so only the calls and the new
// task definition are checked here; the waits are covered by the stubs.
func TestNativeOnMoto(t *testing.T) {
	m := startMoto(t)
	ctx := context.Background()
	e := m.setup(t, ctx, "backend", types.DeploymentControllerTypeEcs)
	rule, err := m.elb.CreateRule(ctx, &elb.CreateRuleInput{
		ListenerArn: &e.listener, Priority: aws.Int32(10),
		Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/*"}}},
		Actions:    []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(e.tgs["blue"])}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.calls.take()
	p := m.platform(t, e)
	p.o.Services["backend"] = Service{ECSService: "backend", Port: 3001, TargetGroups: e.tgs, Listener: e.listener, Rule: aws.ToString(rule.Rules[0].RuleArn), CPU: "256", Memory: "512"}
	hook := Hook{LambdaARN: "arn:aws:lambda:us-east-1:123456789012:function:smoke", RoleARN: "arn:aws:iam::123456789012:role/ecs-lb",
		Stages: []string{"POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"}}
	d, err := p.Driven(DrivenOptions{Engine: EngineNative, Native: NativeOptions{Strategy: "LINEAR", LinearPercent: 50, StepWait: time.Minute,
		RoleARN: "arn:aws:iam::123456789012:role/ecs-lb", Hooks: []Hook{hook}}})
	if err != nil {
		t.Fatal(err)
	}
	// moto does not serve ListServiceDeployments or DescribeServiceDeployments,
	// so only the start is run on it; the progression is the stubs' part.
	in, err := d.Prepare(ctx, "backend", rev("3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, "backend", in); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "native", m.calls.take(), "RegisterTaskDefinition", "DescribeServices", "UpdateService")
	// moto keeps the strategy settings but drops lifecycle hooks (and runs
	// none): what ECS was asked for is asserted on the request.
	up, _ := m.calls.input("UpdateService").(*ecs.UpdateServiceInput)
	if up == nil || up.DeploymentConfiguration == nil || len(up.DeploymentConfiguration.LifecycleHooks) != 1 {
		t.Fatalf("UpdateService was not sent the lifecycle hook: %+v", up)
	}
	if nc := up.NetworkConfiguration; nc == nil || nc.AwsvpcConfiguration == nil || !slices.Equal(nc.AwsvpcConfiguration.Subnets, e.subnets) {
		t.Errorf("UpdateService was not sent the environment's subnets %v: %+v", e.subnets, nc)
	}
	h := up.DeploymentConfiguration.LifecycleHooks[0]
	if aws.ToString(h.HookTargetArn) != hook.LambdaARN || aws.ToString(h.RoleArn) != hook.RoleARN ||
		fmt.Sprint(h.LifecycleStages) != "[POST_TEST_TRAFFIC_SHIFT PRE_PRODUCTION_TRAFFIC_SHIFT]" || up.DeploymentConfiguration.Strategy != types.DeploymentStrategyLinear {
		t.Errorf("lifecycle hook sent %+v (strategy %s)", h, up.DeploymentConfiguration.Strategy)
	}
}

// TestShiftTime: --timeout bounds task health; ECS's own shifting and bake come on top.
func TestShiftTime(t *testing.T) {
	cases := []struct {
		o    NativeOptions
		want time.Duration
	}{
		{NativeOptions{Strategy: "BLUE_GREEN", BakeTime: 5 * time.Minute}, 5 * time.Minute},
		{NativeOptions{Strategy: "CANARY", CanaryPercent: 10, StepWait: 15 * time.Minute, BakeTime: 5 * time.Minute}, 20 * time.Minute},
		{NativeOptions{Strategy: "LINEAR", LinearPercent: 10, StepWait: time.Minute, BakeTime: 5 * time.Minute}, 15 * time.Minute},
		{NativeOptions{Strategy: "LINEAR", LinearPercent: 30, StepWait: 2 * time.Minute}, 8 * time.Minute},
	}
	for _, c := range cases {
		if got := ShiftTime(c.o); got != c.want {
			t.Errorf("%+v: %s, want %s", c.o, got, c.want)
		}
	}
}
