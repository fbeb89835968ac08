package ecs

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Hook is a Lambda function ECS invokes at lifecycle stages of a native
// blue/green deployment; its answer lets the deployment go on or rolls it back.
type Hook struct {
	LambdaARN string
	Stages    []string // such as POST_TEST_TRAFFIC_SHIFT; see types.DeploymentLifecycleHookStage
	RoleARN   string   // role ECS assumes to invoke the function
}

// NativeOptions are the settings of an ECS-native blue/green deployment
// (deployment controller ECS, strategy BLUE_GREEN, LINEAR or CANARY).
type NativeOptions struct {
	Strategy      string        // BLUE_GREEN, LINEAR or CANARY
	BakeTime      time.Duration // both revisions kept after the shift, for a fast rollback
	CanaryPercent float64       // CANARY: share of production traffic on green before the rest
	LinearPercent float64       // LINEAR: share moved at each step
	StepWait      time.Duration // CANARY/LINEAR: wait after the canary or each step
	RoleARN       string        // role ECS assumes to change the listener rules
	Hooks         []Hook
	Alarms        []string // CloudWatch alarms that roll the deployment back
	// ManualWait, when set, pauses the deployment before production traffic
	// moves until `cutover continue` (ContinueNative), rolling back when
	// nobody continues it within ManualWait.
	ManualWait time.Duration
}

// ShiftTime is how long ECS itself takes to shift traffic and bake once the
// new tasks are healthy: the canary's wait, or one wait per linear step, then
// the bake time. The wait of a deployment must not cut into it.
func ShiftTime(o NativeOptions) time.Duration {
	t := o.BakeTime + o.ManualWait
	switch types.DeploymentStrategy(o.Strategy) {
	case types.DeploymentStrategyCanary:
		t += o.StepWait
	case types.DeploymentStrategyLinear:
		if o.LinearPercent > 0 {
			t += time.Duration(math.Ceil(100/o.LinearPercent)) * o.StepWait
		}
	}
	return t
}

// NativeStrategies are the strategies DeployNative accepts.
var NativeStrategies = []types.DeploymentStrategy{types.DeploymentStrategyBlueGreen, types.DeploymentStrategyLinear, types.DeploymentStrategyCanary}

// minutes rounds up: ECS counts bake times in whole minutes.
func minutes(d time.Duration) *int32 {
	return aws.Int32(int32(math.Ceil(d.Minutes())))
}

// NativeConfiguration builds the deployment configuration of a native
// blue/green deployment, checking the options.
func NativeConfiguration(o NativeOptions) (*types.DeploymentConfiguration, error) {
	st := types.DeploymentStrategy(o.Strategy)
	if !slices.Contains(NativeStrategies, st) {
		return nil, fmt.Errorf("ecs: unknown blue/green strategy %q: use BLUE_GREEN, LINEAR or CANARY", o.Strategy)
	}
	c := &types.DeploymentConfiguration{
		Strategy:                 st,
		DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true},
		BakeTimeInMinutes:        minutes(o.BakeTime),
	}
	switch st {
	case types.DeploymentStrategyCanary:
		if o.CanaryPercent <= 0 || o.CanaryPercent >= 100 {
			return nil, fmt.Errorf("ecs: canary percent %g is out of range: use a value between 0 and 100, such as 10", o.CanaryPercent)
		}
		c.CanaryConfiguration = &types.CanaryConfiguration{CanaryPercent: aws.Float64(o.CanaryPercent), CanaryBakeTimeInMinutes: minutes(o.StepWait)}
	case types.DeploymentStrategyLinear:
		if o.LinearPercent <= 0 || o.LinearPercent > 100 {
			return nil, fmt.Errorf("ecs: linear step percent %g is out of range: use a value above 0 and at most 100, such as 10", o.LinearPercent)
		}
		c.LinearConfiguration = &types.LinearConfiguration{StepPercent: aws.Float64(o.LinearPercent), StepBakeTimeInMinutes: minutes(o.StepWait)}
	}
	if len(o.Alarms) > 0 {
		c.Alarms = &types.DeploymentAlarms{AlarmNames: o.Alarms, Enable: true, Rollback: true}
	}
	if o.ManualWait > 0 {
		c.LifecycleHooks = append(c.LifecycleHooks, types.DeploymentLifecycleHook{
			TargetType: types.DeploymentLifecycleHookTargetTypePause, LifecycleStages: []types.DeploymentLifecycleHookStage{types.DeploymentLifecycleHookStagePreProductionTrafficShift},
			TimeoutConfiguration: &types.DeploymentLifecycleHookTimeoutConfiguration{Action: types.DeploymentLifecycleHookActionRollback, TimeoutInMinutes: minutes(o.ManualWait)},
		})
	}
	stages := types.DeploymentLifecycleHookStage("").Values()
	for _, h := range o.Hooks {
		if h.LambdaARN == "" || h.RoleARN == "" {
			return nil, fmt.Errorf("ecs: a lifecycle hook needs both a Lambda ARN and a role ARN (got %q, %q)", h.LambdaARN, h.RoleARN)
		}
		hook := types.DeploymentLifecycleHook{HookTargetArn: aws.String(h.LambdaARN), RoleArn: aws.String(h.RoleARN)}
		for _, s := range h.Stages {
			if !slices.Contains(stages, types.DeploymentLifecycleHookStage(s)) {
				return nil, fmt.Errorf("ecs: hook %s: unknown lifecycle stage %q: use one of %s", h.LambdaARN, s, joinStages(stages))
			}
			hook.LifecycleStages = append(hook.LifecycleStages, types.DeploymentLifecycleHookStage(s))
		}
		if len(hook.LifecycleStages) == 0 {
			return nil, fmt.Errorf("ecs: hook %s has no lifecycle stages", h.LambdaARN)
		}
		c.LifecycleHooks = append(c.LifecycleHooks, hook)
	}
	return c, nil
}

func joinStages(ss []types.DeploymentLifecycleHookStage) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// nativeLoadBalancer is the service's load balancer entry for native
// blue/green: production on the blue target group, the new revision on the
// green (alternate) one, ECS moving the listener rules with the role.
func (p *Platform) nativeLoadBalancer(name, role string) (types.LoadBalancer, error) {
	s := p.o.Services[name]
	switch {
	case s.TargetGroups["blue"] == "" || s.TargetGroups["green"] == "":
		return types.LoadBalancer{}, fmt.Errorf("ecs: service %s needs both the blue and the green target group ARN for native blue/green", name)
	case s.Rule == "":
		return types.LoadBalancer{}, fmt.Errorf("ecs: service %s needs a production listener rule ARN for native blue/green: ECS moves rules, not default actions", name)
	case role == "":
		return types.LoadBalancer{}, fmt.Errorf("ecs: native blue/green of service %s needs the role ARN ECS uses to change the listener rules", name)
	}
	adv := &types.AdvancedConfiguration{
		AlternateTargetGroupArn: aws.String(s.TargetGroups["green"]),
		ProductionListenerRule:  aws.String(s.Rule),
		RoleArn:                 aws.String(role),
	}
	if s.TestRule != "" {
		adv.TestListenerRule = aws.String(s.TestRule)
	}
	return types.LoadBalancer{
		TargetGroupArn:        aws.String(s.TargetGroups["blue"]),
		ContainerName:         aws.String(p.container(name)),
		ContainerPort:         aws.Int32(int32(s.Port)),
		AdvancedConfiguration: adv,
	}, nil
}
