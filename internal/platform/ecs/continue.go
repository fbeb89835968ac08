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
