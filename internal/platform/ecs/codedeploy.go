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
	// Traffic is the share of production traffic (percent) on the
	// replacement (green) task set, from the deployment target.
	Traffic float64 `json:"traffic"`
	// What the deployment itself says it will wait for: one traffic shifting
	// step of its configuration, the wait for a continue (Ready), and the
	// termination wait keeping the original tasks after the shift.
	Step            time.Duration `json:"step,omitempty"`
	ReadyWait       time.Duration `json:"ready_wait,omitempty"`
	TerminationWait time.Duration `json:"termination_wait,omitempty"`
	// GreenTaskSet is the replacement task set's ID, once CodeDeploy made it.
	GreenTaskSet string `json:"green_task_set,omitempty"`
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

// stepOfConfig is the traffic shifting step of CodeDeploy's predefined ECS
// configurations: the canary's wait or the linear interval.
var stepOfConfig = map[string]time.Duration{
	"CodeDeployDefault.ECSAllAtOnce":                    0,
	"CodeDeployDefault.ECSCanary10Percent5Minutes":      5 * time.Minute,
	"CodeDeployDefault.ECSCanary10Percent15Minutes":     15 * time.Minute,
	"CodeDeployDefault.ECSLinear10PercentEvery1Minutes": time.Minute,
	"CodeDeployDefault.ECSLinear10PercentEvery3Minutes": 3 * time.Minute,
}

// DecideBlueGreen is the pure decision from a deployment and its ECS target
// (nil before CodeDeploy starts the ECS deployment).
func DecideBlueGreen(d cdtypes.DeploymentInfo, target *cdtypes.ECSTarget) BlueGreenState {
	s := BlueGreenState{DeploymentID: aws.ToString(d.DeploymentId), Status: string(d.Status), Step: stepOfConfig[aws.ToString(d.DeploymentConfigName)]}
	if c := d.BlueGreenDeploymentConfiguration; c != nil {
		if r := c.DeploymentReadyOption; r != nil && r.ActionOnTimeout == cdtypes.DeploymentReadyActionStopDeployment {
			s.ReadyWait = time.Duration(r.WaitTimeInMinutes) * time.Minute
		}
		if t := c.TerminateBlueInstancesOnDeploymentSuccess; t != nil {
			s.TerminationWait = time.Duration(t.TerminationWaitTimeInMinutes) * time.Minute
		}
	}
	var events []cdtypes.LifecycleEvent
	if target != nil {
		events = target.LifecycleEvents
		for _, ts := range target.TaskSetsInfo {
			if ts.TaskSetLabel == cdtypes.TargetLabelGreen {
				s.Traffic = ts.TrafficWeight
				s.GreenTaskSet = aws.ToString(ts.Identifer)
			}
		}
	}
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

// eventDone says whether the lifecycle event ended successfully.
func (s BlueGreenState) eventDone(name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return e.Status == string(cdtypes.LifecycleEventStatusSucceeded)
		}
	}
	return false
}

// progressKey changes whenever the deployment moves: its status, a
// lifecycle event's status, the traffic weight, the termination wait starting.
func (s BlueGreenState) progressKey() string {
	k := fmt.Sprintf("%s|%s|%g", s.Status, s.Phase, s.Traffic)
	for _, e := range s.Events {
		k += "|" + e.Name + "=" + e.Status
	}
	return k
}

// Allowance is how long a deployment in state s may go without progress
// before cutover calls it stuck, and whether stopping it then is safe. The
// new tasks' health checks and each hook get health (--timeout); a traffic
// shift gets one step of the configuration more; the wait for a continue and
// the termination wait get their own length more, and are never stopped:
// CodeDeploy ends them itself, and stopping during the termination wait
// would roll back a deployment whose new tasks already serve all traffic.
func Allowance(s BlueGreenState, health time.Duration) (time.Duration, bool) {
	switch {
	case s.Phase == BlueGreenBaking:
		return s.TerminationWait + health, false
	case s.Status == string(cdtypes.DeploymentStatusReady):
		return s.ReadyWait + health, false
	case s.Phase == BlueGreenShifting && s.Traffic > 0 && !s.eventDone("AllowTraffic"):
		return s.Step + health, true
	}
	return health, true
}

// StuckError says a deployment made no progress for longer than its allowance.
type StuckError struct {
	State  BlueGreenState
	Waited time.Duration
}

func (e *StuckError) Error() string {
	return fmt.Sprintf("codedeploy: deployment %s made no progress for %s while %s (status %s, %g%% of traffic on the new tasks)",
		e.State.DeploymentID, e.Waited, e.State.Phase, e.State.Status, e.State.Traffic)
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
