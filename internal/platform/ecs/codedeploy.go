package ecs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
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
// function name or ARN. network, when not nil, is the awsvpc configuration
// of the replacement tasks; without it CodeDeploy keeps the service's.
func AppSpec(taskDefARN, container string, port int, hooks map[string]string, network *types.AwsVpcConfiguration) (string, error) {
	type lb struct {
		ContainerName string `json:"ContainerName"`
		ContainerPort int    `json:"ContainerPort"`
	}
	type awsvpc struct {
		Subnets        []string `json:"Subnets"`
		SecurityGroups []string `json:"SecurityGroups,omitempty"`
		AssignPublicIp string   `json:"AssignPublicIp"`
	}
	type networkConfiguration struct {
		AwsvpcConfiguration awsvpc `json:"AwsvpcConfiguration"`
	}
	type props struct {
		TaskDefinition       string                `json:"TaskDefinition"`
		LoadBalancerInfo     lb                    `json:"LoadBalancerInfo"`
		NetworkConfiguration *networkConfiguration `json:"NetworkConfiguration,omitempty"`
	}
	type target struct {
		Type       string `json:"Type"`
		Properties props  `json:"Properties"`
	}
	pr := props{TaskDefinition: taskDefARN, LoadBalancerInfo: lb{container, port}}
	if network != nil {
		pr.NetworkConfiguration = &networkConfiguration{awsvpc{network.Subnets, network.SecurityGroups, string(network.AssignPublicIp)}}
	}
	spec := struct {
		Version   string              `json:"version"`
		Resources []map[string]target `json:"Resources"`
		Hooks     []map[string]string `json:"Hooks,omitempty"`
	}{
		Version:   "0.0",
		Resources: []map[string]target{{"TargetService": {Type: "AWS::ECS::Service", Properties: pr}}},
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

// trafficConfig is the traffic routing of one of CodeDeploy's predefined
// ECS deployment configurations (as GetDeploymentConfig describes them):
// TimeBasedCanary (percent first, the rest after interval), TimeBasedLinear
// (percent every interval), or AllAtOnce (percent 0).
type trafficConfig struct {
	canary   bool
	percent  int
	interval time.Duration
}

var trafficConfigs = map[string]trafficConfig{
	"CodeDeployDefault.ECSAllAtOnce":                    {},
	"CodeDeployDefault.ECSCanary10Percent5Minutes":      {canary: true, percent: 10, interval: 5 * time.Minute},
	"CodeDeployDefault.ECSCanary10Percent15Minutes":     {canary: true, percent: 10, interval: 15 * time.Minute},
	"CodeDeployDefault.ECSLinear10PercentEvery1Minutes": {percent: 10, interval: time.Minute},
	"CodeDeployDefault.ECSLinear10PercentEvery3Minutes": {percent: 10, interval: 3 * time.Minute},
}

// steps are the traffic steps of the configuration, each with the wait after it.
func (c trafficConfig) steps() []deploy.Step {
	var out []deploy.Step
	switch {
	case c.percent <= 0 || c.percent >= 100:
	case c.canary:
		out = append(out, deploy.Step{Percent: c.percent, Wait: c.interval})
	default:
		for p := c.percent; p < 100; p += c.percent {
			out = append(out, deploy.Step{Percent: p, Wait: c.interval})
		}
	}
	return append(out, deploy.Step{Percent: 100})
}

// CodeDeploySchedule is the timed waits of a CodeDeploy deployment, from
// its deployment configuration and blue/green configuration: the steps of
// its traffic routing and its termination wait (a wait for a continue
// counts 0: nobody knows when it ends).
func CodeDeploySchedule(d cdtypes.DeploymentInfo) deploy.Schedule {
	sc := deploy.Schedule{Steps: trafficConfigs[aws.ToString(d.DeploymentConfigName)].steps()}
	if c := d.BlueGreenDeploymentConfiguration; c != nil {
		if t := c.TerminateBlueInstancesOnDeploymentSuccess; t != nil && t.Action != cdtypes.InstanceActionKeepAlive {
			sc.TerminationWait = time.Duration(t.TerminationWaitTimeInMinutes) * time.Minute
		}
	}
	return sc
}

// DecideBlueGreen is the pure decision from a deployment and its ECS target
// (nil before CodeDeploy starts the ECS deployment).
func DecideBlueGreen(d cdtypes.DeploymentInfo, target *cdtypes.ECSTarget) BlueGreenState {
	s := BlueGreenState{DeploymentID: aws.ToString(d.DeploymentId), Status: string(d.Status), Step: trafficConfigs[aws.ToString(d.DeploymentConfigName)].interval}
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
	if _, ok := p.o.Services[service]; !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	if _, err := DeploymentConfigName(o.Traffic); err != nil {
		return "", err
	}
	td, err := p.RegisterTaskDefinition(ctx, service, rev)
	if err != nil {
		return "", err
	}
	return p.createBlueGreen(ctx, service, rev.ID, td, o)
}

// createBlueGreen creates the CodeDeploy deployment of task definition td.
func (p *Platform) createBlueGreen(ctx context.Context, service, revID, td string, o BlueGreenOptions) (string, error) {
	if _, ok := p.o.Services[service]; !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	cfgName, err := DeploymentConfigName(o.Traffic)
	if err != nil {
		return "", err
	}
	spec, err := p.appSpec(ctx, service, td, o)
	if err != nil {
		return "", err
	}
	out, err := p.c.CodeDeploy.CreateDeployment(ctx, &codedeploy.CreateDeploymentInput{
		ApplicationName:      &o.Application,
		DeploymentGroupName:  &o.DeploymentGroup,
		DeploymentConfigName: &cfgName,
		Description:          aws.String(deploymentDescription(revID)),
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

// appSpec is the AppSpec of the CodeDeploy deployment of task definition td
// to service, with the environment's network (see network).
func (p *Platform) appSpec(ctx context.Context, service, td string, o BlueGreenOptions) (string, error) {
	nc, err := p.network(ctx, service)
	if err != nil {
		return "", err
	}
	var vpc *types.AwsVpcConfiguration
	if nc != nil {
		vpc = nc.AwsvpcConfiguration
	}
	return AppSpec(td, p.container(service), p.o.Services[service].Port, o.Hooks, vpc)
}

// findSkew is how much earlier than cutover's start marker AWS may date a
// deployment (clocks differ).
const findSkew = 5 * time.Minute

// findBlueGreen returns the CodeDeploy deployment of the service's group
// whose AppSpec deploys task definition td, created since (less findSkew)
// by cutover for revision revID; "" when there is none. A task definition
// ARN names one registration, but not one deployment: CodeDeploy's own
// rollback of a later deployment redeploys it (creator codeDeployRollback),
// and another tool may deploy the family's latest revision. Only a
// deployment a user created with cutover's description of the revision is
// cutover's, and so one it may follow and stop. Every status is listed: a
// deployment that ended while no cutover watched is still the one to
// record, not one to start again.
func (p *Platform) findBlueGreen(ctx context.Context, service, revID, td string, since time.Time, o BlueGreenOptions) (string, error) {
	spec, err := p.appSpec(ctx, service, td, o)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(spec))
	in := &codedeploy.ListDeploymentsInput{ApplicationName: &o.Application, DeploymentGroupName: &o.DeploymentGroup,
		CreateTimeRange: &cdtypes.TimeRange{Start: aws.Time(since.Add(-findSkew))}}
	for page := 0; page < 20; page++ {
		list, err := p.c.CodeDeploy.ListDeployments(ctx, in)
		if err != nil {
			return "", explain(err, "deployments of group "+o.Application+"/"+o.DeploymentGroup)
		}
		for _, id := range list.Deployments {
			out, err := p.c.CodeDeploy.GetDeployment(ctx, &codedeploy.GetDeploymentInput{DeploymentId: aws.String(id)})
			if err != nil {
				return "", explain(err, "deployment "+id)
			}
			if startedBy(out.DeploymentInfo, revID) && runsTaskDefinition(out.DeploymentInfo, td, hex.EncodeToString(sum[:])) {
				p.o.Log.Info("found CodeDeploy deployment", "service", service, "deployment", id, "task_definition", td)
				return id, nil
			}
		}
		if list.NextToken == nil {
			break
		}
		in.NextToken = list.NextToken
	}
	return "", nil
}

// deploymentDescription is the description of the CodeDeploy deployment
// cutover creates for revision revID: what findBlueGreen knows it by.
func deploymentDescription(revID string) string { return "cutover revision " + revID }

// startedBy says whether d is a deployment cutover created for revision
// revID: created by a user (the API's caller, not CodeDeploy's rollback,
// Auto Scaling or CloudFormation) with cutover's description.
func startedBy(d *cdtypes.DeploymentInfo, revID string) bool {
	return d != nil && d.Creator == cdtypes.DeploymentCreatorUser && aws.ToString(d.Description) == deploymentDescription(revID)
}

// runsTaskDefinition says whether a deployment's AppSpec deploys td: by
// its content, or by the content's SHA-256 when only that is returned.
func runsTaskDefinition(d *cdtypes.DeploymentInfo, td, sum string) bool {
	if d == nil || d.Revision == nil || d.Revision.AppSpecContent == nil {
		return false
	}
	c := d.Revision.AppSpecContent
	if content := aws.ToString(c.Content); content != "" {
		var spec struct {
			Resources []map[string]struct {
				Properties struct{ TaskDefinition string }
			}
		}
		if json.Unmarshal([]byte(content), &spec) == nil {
			for _, r := range spec.Resources {
				for _, t := range r {
					if t.Properties.TaskDefinition == td {
						return true
					}
				}
			}
			return false
		}
	}
	return strings.EqualFold(aws.ToString(c.Sha256), sum)
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
