package ecs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
)

// ContinueBlueGreen lets a CodeDeploy deployment that waits in Ready (the
// deployment group's wait for a continue, strategy.manual_continue) shift
// production traffic.
func (p *Platform) ContinueBlueGreen(ctx context.Context, id string) error {
	_, err := p.c.CodeDeploy.ContinueDeployment(ctx, &codedeploy.ContinueDeploymentInput{DeploymentId: &id, DeploymentWaitType: cdtypes.DeploymentWaitTypeReadyWait})
	var notReady *cdtypes.DeploymentIsNotInReadyStateException
	if errors.As(err, &notReady) {
		return fmt.Errorf("codedeploy: deployment %s does not wait for a continue (it is not in Ready: it has not reached the wait yet, or is past it)", id)
	}
	return explain(err, "deployment "+id)
}

// ContinueNative continues the service's ECS-native deployment paused at
// its PAUSE lifecycle hook (NativeOptions.ManualWait) and returns the
// service deployment's ARN.
func (p *Platform) ContinueNative(ctx context.Context, service string) (string, error) {
	s, ok := p.o.Services[service]
	if !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	list, err := p.c.ECS.ListServiceDeployments(ctx, &ecs.ListServiceDeploymentsInput{Cluster: &p.o.Cluster, Service: &s.ECSService,
		Status: []types.ServiceDeploymentStatus{types.ServiceDeploymentStatusInProgress}})
	if err != nil {
		return "", explain(err, "deployments of service "+s.ECSService)
	}
	var arns []string
	for _, d := range list.ServiceDeployments {
		arns = append(arns, aws.ToString(d.ServiceDeploymentArn))
	}
	if len(arns) == 0 {
		return "", fmt.Errorf("ecs: service %s has no deployment in progress to continue", s.ECSService)
	}
	out, err := p.c.ECS.DescribeServiceDeployments(ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: arns})
	if err != nil {
		return "", explain(err, "deployments of service "+s.ECSService)
	}
	for _, d := range out.ServiceDeployments {
		for _, h := range d.LifecycleHookDetails {
			if h.TargetType != types.DeploymentLifecycleHookTargetTypePause || h.Status != types.DeploymentLifecycleHookStatusAwaitingAction {
				continue
			}
			arn := aws.ToString(d.ServiceDeploymentArn)
			if _, err := p.c.ECS.ContinueServiceDeployment(ctx, &ecs.ContinueServiceDeploymentInput{ServiceDeploymentArn: &arn, HookId: h.HookId,
				Action: types.DeploymentLifecycleHookActionContinue}); err != nil {
				return "", explain(err, "deployment "+arn)
			}
			p.o.Log.Info("continued ECS deployment", "service", service, "deployment", arn, "hook", aws.ToString(h.HookId))
			return arn, nil
		}
	}
	return "", fmt.Errorf("ecs: the deployment of service %s is not paused for a continue (no PAUSE hook awaits an action: it has not reached it yet, or is past it)", s.ECSService)
}

// ContinueTerminationWait ends a CodeDeploy deployment's termination wait
// early (ContinueDeployment with TERMINATION_WAIT): CodeDeploy terminates
// the original task set now and the deployment succeeds.
func (p *Platform) ContinueTerminationWait(ctx context.Context, id string) error {
	_, err := p.c.CodeDeploy.ContinueDeployment(ctx, &codedeploy.ContinueDeploymentInput{DeploymentId: &id, DeploymentWaitType: cdtypes.DeploymentWaitTypeTerminationWait})
	var notReady *cdtypes.DeploymentIsNotInReadyStateException
	if errors.As(err, &notReady) {
		return fmt.Errorf("codedeploy: deployment %s is not in its termination wait", id)
	}
	return explain(err, "deployment "+id)
}

// Promote implements deploy.Driven: it ends the wait the deployment is in,
// where AWS has an API for it. CodeDeploy: the wait for a continue
// (ContinueDeployment READY_WAIT) and the termination wait
// (ContinueDeployment TERMINATION_WAIT). ECS-native: the PAUSE hook before
// production traffic (ContinueServiceDeployment CONTINUE). Anything else
// wraps deploy.ErrCannotSkip.
func (d *Driven) Promote(ctx context.Context, service, id string, phase deploy.Phase) error {
	if err := PromoteRefusal(d.o, phase); err != nil {
		return err
	}
	switch {
	case d.o.Engine == EngineCodeDeploy && phase == deploy.PhaseReadyWait:
		return d.p.ContinueBlueGreen(ctx, id)
	case d.o.Engine == EngineCodeDeploy && phase == deploy.PhaseTerminationWait:
		return d.p.ContinueTerminationWait(ctx, id)
	case d.o.Engine == EngineNative && phase == deploy.PhaseReadyWait:
		_, err := d.p.ContinueNative(ctx, service)
		return err
	}
	return fmt.Errorf("ecs: deployment %s in %s: nothing to skip now; the next wait AWS lets cutover end is skipped when the deployment reaches it", id, phase)
}

// PromoteRefusal says why `cutover promote` cannot act on a deployment of
// an environment run by o in phase, or nil when it can (now, or at the
// next wait AWS lets cutover end). AWS has no API to skip the steps of a
// linear or canary traffic shift, nor an ECS bake time, nor anything of a
// rolling update.
func PromoteRefusal(o DrivenOptions, phase deploy.Phase) error {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%s (%w)", fmt.Sprintf(format, a...), deploy.ErrCannotSkip)
	}
	switch o.Engine {
	case EngineCodeDeploy:
		cfg, _ := DeploymentConfigName(o.Traffic)
		if phase == deploy.PhaseShifting && trafficConfigs[cfg].percent > 0 {
			return refuse("CodeDeploy shifts traffic by %s and has no API to skip its steps: promote works while the deployment waits for `cutover continue` (ContinueDeployment READY_WAIT) and during its termination wait (ContinueDeployment TERMINATION_WAIT); run it again once `cutover status` shows TerminationWait", cfg)
		}
		return nil
	case EngineNative:
		n := o.Native
		switch {
		case phase == deploy.PhaseShifting && n.Strategy != string(types.DeploymentStrategyBlueGreen):
			return refuse("ECS shifts traffic %s and has no API to skip its steps or its bake time: promote can only end the pause before production traffic (strategy.manual_continue, ContinueServiceDeployment)", n.Strategy)
		case phase >= deploy.PhaseShifting || n.ManualWait == 0:
			return refuse("ECS has no API to end a bake time early or skip traffic steps; the only wait cutover can end is the pause before production traffic (strategy.manual_continue), which this deployment %s", map[bool]string{true: "is past", false: "does not have"}[n.ManualWait > 0])
		}
		return nil
	}
	return refuse("an ECS rolling update has no steps or waits to skip: it ends once the new tasks are healthy and the old ones drained")
}
