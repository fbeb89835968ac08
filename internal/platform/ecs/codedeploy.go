package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// deploymentConfigs maps cutover's traffic names to CodeDeploy's predefined
// ECS deployment configurations.
var deploymentConfigs = map[string]string{
	"":                                     "CodeDeployDefault.ECSAllAtOnce",
	config.TrafficAllAtOnce:                "CodeDeployDefault.ECSAllAtOnce",
	config.TrafficCanary10Percent5Minutes:  "CodeDeployDefault.ECSCanary10Percent5Minutes",
	config.TrafficCanary10Percent15Minutes: "CodeDeployDefault.ECSCanary10Percent15Minutes",
	config.TrafficLinear10PercentEvery1Minute:  "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
	config.TrafficLinear10PercentEvery3Minutes: "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
}

// DeploymentConfigName returns CodeDeploy's deployment configuration for a
// cutover traffic name.
func DeploymentConfigName(traffic string) (string, error) {
	if n, ok := deploymentConfigs[traffic]; ok {
		return n, nil
	}
	return "", fmt.Errorf("strategy.traffic %q has no CodeDeploy equivalent: use one of AllAtOnce, Canary10Percent5Minutes, Canary10Percent15Minutes, Linear10PercentEvery1Minute, Linear10PercentEvery3Minutes (custom canary/linear needs a custom deployment config)", traffic)
}

// AppSpec hook names of an ECS deployment, in the order CodeDeploy runs them.
var AppSpecHooks = []string{"BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"}

// AppSpec returns the AppSpec content (JSON, which CodeDeploy accepts like
// YAML) for an ECS deployment. hooks maps an AppSpec hook name to a Lambda
// function name or ARN.
func AppSpec(taskDefARN, container string, port int, hooks map[string]string) (string, error) {
	type lb struct {
		ContainerName string `json:"ContainerName"`
		ContainerPort int    `json:"ContainerPort"`
	}
	type props struct {
		TaskDefinition   string `json:"TaskDefinition"`
		LoadBalancerInfo lb     `json:"LoadBalancerInfo"`
	}
	type target struct {
		Type       string `json:"Type"`
		Properties props  `json:"Properties"`
	}
	spec := struct {
		Version   string              `json:"version"`
		Resources []map[string]target `json:"Resources"`
		Hooks     []map[string]string `json:"Hooks,omitempty"`
	}{
		Version:   "0.0",
		Resources: []map[string]target{{"TargetService": {Type: "AWS::ECS::Service", Properties: props{TaskDefinition: taskDefARN, LoadBalancerInfo: lb{container, port}}}}},
	}
	known := 0
	for _, h := range AppSpecHooks {
		if fn := hooks[h]; fn != "" {
			spec.Hooks = append(spec.Hooks, map[string]string{h: fn})
			known++
		}
	}
	if known != len(hooks) {
		for h := range hooks {
			if hooks[h] != "" && !slices.Contains(AppSpecHooks, h) {
				return "", fmt.Errorf("hook %q is not an ECS AppSpec hook: use one of %v", h, AppSpecHooks)
			}
		}
	}
	b, err := json.Marshal(spec)
	return string(b), err
}

// BlueGreenOptions select the CodeDeploy application and deployment group of a service.
type BlueGreenOptions struct {
	Application     string
	DeploymentGroup string
	Traffic         string            // cutover traffic name (config.Strategy.Traffic)
	Hooks           map[string]string // AppSpec hook -> Lambda function
	Timeout         time.Duration     // 0: wait until ctx ends
}

// BlueGreenPhase is where a CodeDeploy deployment stands.
type BlueGreenPhase string

const (
	BlueGreenWaiting   BlueGreenPhase = "waiting"   // created, queued, or ready waiting for a continue
	BlueGreenShifting  BlueGreenPhase = "shifting"  // in progress
	BlueGreenBaking    BlueGreenPhase = "baking"    // traffic moved, original tasks kept for the termination wait
	BlueGreenSucceeded BlueGreenPhase = "succeeded" // done
	BlueGreenFailed    BlueGreenPhase = "failed"    // failed (rolled back when auto rollback is on)
	BlueGreenStopped   BlueGreenPhase = "stopped"   // stopped by a user (cutover stop or rollback)
)

// Event is one lifecycle event of a deployment.
type Event struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// BlueGreenState is a CodeDeploy deployment's state, decided from GetDeployment
// and the ECS target's lifecycle events.
type BlueGreenState struct {
	DeploymentID string         `json:"deployment_id"`
	Phase        BlueGreenPhase `json:"phase"`
	Status       string         `json:"status"`
	Reason       string         `json:"reason,omitempty"`
	RolledBack   bool           `json:"rolled_back,omitempty"`
	Events       []Event        `json:"events,omitempty"`
}

// Done says whether waiting is over. Baking is not done: a rollback is
// still possible during the termination wait.
func (s BlueGreenState) Done() bool {
	return s.Phase == BlueGreenSucceeded || s.Phase == BlueGreenFailed || s.Phase == BlueGreenStopped
}

// Err is nil only for a succeeded (or still running) deployment.
func (s BlueGreenState) Err() error {
	switch s.Phase {
	case BlueGreenFailed, BlueGreenStopped:
		msg := fmt.Sprintf("codedeploy: deployment %s %s", s.DeploymentID, s.Status)
		if s.RolledBack {
			msg += " and was rolled back"
		}
		if s.Reason != "" {
			msg += ": " + s.Reason
		}
		return errors.New(msg)
	}
	return nil
}

// DecideBlueGreen is the pure decision from a deployment and its lifecycle events.
func DecideBlueGreen(d cdtypes.DeploymentInfo, events []cdtypes.LifecycleEvent) BlueGreenState {
	s := BlueGreenState{DeploymentID: aws.ToString(d.DeploymentId), Status: string(d.Status)}
	if d.ErrorInformation != nil {
		s.Reason = aws.ToString(d.ErrorInformation.Message)
	}
	if d.RollbackInfo != nil && aws.ToString(d.RollbackInfo.RollbackDeploymentId) != "" {
		s.RolledBack = true
	}
	for _, e := range events {
		ev := Event{Name: aws.ToString(e.LifecycleEventName), Status: string(e.Status)}
		if e.Diagnostics != nil {
			ev.Detail = aws.ToString(e.Diagnostics.Message)
		}
		switch e.Status {
		case cdtypes.LifecycleEventStatusFailed:
			if s.Reason == "" {
				s.Reason = "lifecycle event " + ev.Name + " failed"
				if ev.Detail != "" {
					s.Reason += ": " + ev.Detail
				}
			}
		case cdtypes.LifecycleEventStatusPending, cdtypes.LifecycleEventStatusInProgress, cdtypes.LifecycleEventStatusSucceeded,
			cdtypes.LifecycleEventStatusSkipped, cdtypes.LifecycleEventStatusUnknown:
		default:
			ev.Status = "unknown status " + string(e.Status)
		}
		s.Events = append(s.Events, ev)
	}
	switch d.Status {
	case cdtypes.DeploymentStatusCreated, cdtypes.DeploymentStatusQueued, cdtypes.DeploymentStatusReady:
		s.Phase = BlueGreenWaiting
	case cdtypes.DeploymentStatusInProgress:
		s.Phase = BlueGreenShifting
		if d.InstanceTerminationWaitTimeStarted {
			s.Phase = BlueGreenBaking
		}
	case cdtypes.DeploymentStatusBaking:
		s.Phase = BlueGreenBaking
	case cdtypes.DeploymentStatusSucceeded:
		s.Phase = BlueGreenSucceeded
	case cdtypes.DeploymentStatusFailed:
		s.Phase = BlueGreenFailed
	case cdtypes.DeploymentStatusStopped:
		s.Phase = BlueGreenStopped
	default:
		s.Phase = BlueGreenFailed
		s.Reason = fmt.Sprintf("unknown deployment status %q from CodeDeploy: upgrade cutover", d.Status)
	}
	return s
}

// StartBlueGreen registers the revision's task definition for a service
// whose ECS service uses the CODE_DEPLOY controller and creates the
// CodeDeploy deployment. It returns the deployment ID.
func (p *Platform) StartBlueGreen(ctx context.Context, service string, rev store.Revision, o BlueGreenOptions) (string, error) {
	s, ok := p.o.Services[service]
	if !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	cfgName, err := DeploymentConfigName(o.Traffic)
	if err != nil {
		return "", err
	}
	td, err := p.RegisterTaskDefinition(ctx, service, rev)
	if err != nil {
		return "", err
	}
	spec, err := AppSpec(td, p.container(service), s.Port, o.Hooks)
	if err != nil {
		return "", err
	}
	out, err := p.c.CodeDeploy.CreateDeployment(ctx, &codedeploy.CreateDeploymentInput{
		ApplicationName:      &o.Application,
		DeploymentGroupName:  &o.DeploymentGroup,
		DeploymentConfigName: &cfgName,
		Description:          aws.String("cutover revision " + rev.ID),
		Revision: &cdtypes.RevisionLocation{
			RevisionType:   cdtypes.RevisionLocationTypeAppSpecContent,
			AppSpecContent: &cdtypes.AppSpecContent{Content: &spec},
		},
	})
	if err != nil {
		return "", explain(err, "deployment group "+o.Application+"/"+o.DeploymentGroup)
	}
	id := aws.ToString(out.DeploymentId)
	p.o.Log.Info("created CodeDeploy deployment", "service", service, "deployment", id, "config", cfgName, "task_definition", td)
	return id, nil
}

// WaitBlueGreen polls the deployment and its lifecycle events until it
// ends, telling progress each poll. A failed or stopped deployment is an error.
func (p *Platform) WaitBlueGreen(ctx context.Context, service, id string, progress func(BlueGreenState)) (BlueGreenState, error) {
	target := p.o.Cluster + ":" + p.o.Services[service].ECSService
	var last BlueGreenState
	err := p.poll(ctx, func() (bool, error) {
		d, err := p.c.CodeDeploy.GetDeployment(ctx, &codedeploy.GetDeploymentInput{DeploymentId: &id})
		if err != nil {
			return false, explain(err, "deployment "+id)
		}
		var events []cdtypes.LifecycleEvent
		t, err := p.c.CodeDeploy.GetDeploymentTarget(ctx, &codedeploy.GetDeploymentTargetInput{DeploymentId: &id, TargetId: &target})
		var missing *cdtypes.DeploymentTargetDoesNotExistException
		switch {
		case errors.As(err, &missing):
			// The target appears once CodeDeploy starts the ECS deployment.
		case err != nil:
			return false, explain(err, "deployment target "+target)
		case t.DeploymentTarget != nil && t.DeploymentTarget.EcsTarget != nil:
			events = t.DeploymentTarget.EcsTarget.LifecycleEvents
		}
		last = DecideBlueGreen(*d.DeploymentInfo, events)
		if progress != nil {
			progress(last)
		}
		return last.Done(), nil
	})
	if err != nil {
		return last, fmt.Errorf("codedeploy: waiting for deployment %s: %w", id, err)
	}
	return last, last.Err()
}

// DeployBlueGreen starts a CodeDeploy blue/green deployment and waits for it.
func (p *Platform) DeployBlueGreen(ctx context.Context, service string, rev store.Revision, o BlueGreenOptions, progress func(BlueGreenState)) (BlueGreenState, error) {
	id, err := p.StartBlueGreen(ctx, service, rev, o)
	if err != nil {
		return BlueGreenState{}, err
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	return p.WaitBlueGreen(ctx, service, id, progress)
}

// StopBlueGreen stops a deployment with auto rollback: `cutover stop` while
// traffic shifts, and `cutover rollback` during the termination wait, when
// CodeDeploy sends traffic back to the original task set.
func (p *Platform) StopBlueGreen(ctx context.Context, id string) error {
	out, err := p.c.CodeDeploy.StopDeployment(ctx, &codedeploy.StopDeploymentInput{DeploymentId: &id, AutoRollbackEnabled: aws.Bool(true)})
	if err != nil {
		return explain(err, "deployment "+id)
	}
	p.o.Log.Info("stopped CodeDeploy deployment", "deployment", id, "status", out.Status, "message", aws.ToString(out.StatusMessage))
	return nil
}
