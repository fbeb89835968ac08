package ecs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// Engines that run an ECS deployment.
const (
	EngineRolling    = "rolling"    // ECS rolling update with the circuit breaker (ECS deployment controller)
	EngineCodeDeploy = "codedeploy" // CodeDeploy blue/green, one deployment group per service (CODE_DEPLOY controller)
	EngineNative     = "ecs"        // ECS-native blue/green, linear or canary (ECS deployment controller)
)

// DrivenOptions say how an environment's deployments run on AWS.
type DrivenOptions struct {
	Engine string
	Alarms []string // rolling and native: CloudWatch alarms that roll the deployment back
	// CodeDeploy: the application, each service's deployment group, the
	// traffic configuration and the AppSpec hooks.
	Application string
	Groups      map[string]string
	Traffic     string
	Hooks       map[string]string
	Native      NativeOptions // ECS-native blue/green
}

// DrivenOptionsFor maps an environment of cutover.yaml onto the options of
// its engine: rolling for strategy rolling, else CodeDeploy or ECS-native
// blue/green by ecs.blue_green.
func DrivenOptionsFor(env string, e *config.Environment, services []string) DrivenOptions {
	x := e.ECS
	if x == nil {
		x = &config.ECS{}
	}
	o := DrivenOptions{Engine: EngineRolling, Alarms: x.Alarms}
	if e.Strategy.Type != config.StrategyBlueGreen {
		return o
	}
	if x.BlueGreenEngine() == config.BlueGreenCodeDeploy {
		o.Engine, o.Groups, o.Traffic, o.Hooks = EngineCodeDeploy, map[string]string{}, e.Strategy.Traffic, x.LambdaHooks
		if x.CodeDeploy != nil {
			o.Application = x.CodeDeploy.Application
		}
		for _, name := range services {
			o.Groups[name] = x.DeploymentGroupOf(env, name)
		}
		return o
	}
	o.Engine = EngineNative
	n := NativeOptions{BakeTime: e.Strategy.Bake.Std(), RoleARN: x.RoleARN, Alarms: x.Alarms}
	if e.Strategy.ManualContinue {
		// ECS pauses before production traffic moves until `cutover continue`.
		n.ManualWait = max(e.Strategy.ReadyWait.Std(), time.Minute)
	}
	arns, stages := x.NativeHookStages()
	for _, arn := range arns {
		n.Hooks = append(n.Hooks, Hook{LambdaARN: arn, Stages: stages[arn], RoleARN: x.RoleARN})
	}
	strategy, percent, wait := e.Strategy.NativeStrategy()
	n.Strategy, n.StepWait = strategy, wait.Std()
	switch strategy {
	case "CANARY":
		n.CanaryPercent = percent
	case "LINEAR":
		n.LinearPercent = percent
	}
	o.Native = n
	return o
}

// Driven runs an environment's deployments on AWS for the deployment
// controller (deploy.Driven): AWS shifts the tasks and the traffic, the
// controller follows, records and passes on stop, rollback and continue.
type Driven struct {
	p    *Platform
	o    DrivenOptions
	runs map[string]*run // cloud deployment ID -> what its polls remember
}

var _ deploy.Driven = (*Driven)(nil)

// run is what polls of one deployment remember. After a restart it is
// rebuilt from what AWS lists.
type run struct {
	started  time.Time // when cutover started following it (health and timeouts count from here)
	since    time.Time // when it last moved
	key      string    // what it looked like then
	td       string    // rolling/native: its task definition
	previous string    // rolling/native: the task definition it replaces
	arn      string    // rolling/native: its service deployment ARN
	news     *activity
}

// Driven returns the controller's view of p for deployments run by o.Engine.
func (p *Platform) Driven(o DrivenOptions) (*Driven, error) {
	switch o.Engine {
	case EngineRolling:
	case EngineCodeDeploy:
		if o.Application == "" {
			return nil, errors.New("ecs: CodeDeploy blue/green needs the application: set environments.<env>.ecs.codedeploy.application in cutover.yaml")
		}
		for _, name := range p.names() {
			if o.Groups[name] == "" {
				return nil, fmt.Errorf("ecs: service %s has no CodeDeploy deployment group: set environments.<env>.ecs.codedeploy.deployment_groups.%s in cutover.yaml", name, name)
			}
		}
		if _, err := DeploymentConfigName(o.Traffic); err != nil {
			return nil, err
		}
	case EngineNative:
		if _, err := NativeConfiguration(o.Native); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("ecs: unknown deployment engine %q", o.Engine)
	}
	return &Driven{p: p, o: o, runs: map[string]*run{}}, nil
}

// Services implements deploy.Driven: the services in name order.
func (d *Driven) Services() []string { return d.p.names() }

// After implements deploy.Driven: the delay doubles from PollInterval up to MaxPollDelay.
func (d *Driven) After(attempt int) <-chan time.Time {
	delay := d.p.o.PollInterval
	for i := 0; i < attempt && delay < d.p.o.MaxPollDelay; i++ {
		delay *= 2
	}
	return d.p.o.Clock.After(min(delay, d.p.o.MaxPollDelay))
}

// Start implements deploy.Driven.
func (d *Driven) Start(ctx context.Context, service string, rev store.Revision) (string, error) {
	s, ok := d.p.o.Services[service]
	if !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	now := d.p.o.Clock.Now()
	if d.o.Engine == EngineCodeDeploy {
		id, err := d.p.StartBlueGreen(ctx, service, rev, BlueGreenOptions{Application: d.o.Application, DeploymentGroup: d.o.Groups[service], Traffic: d.o.Traffic, Hooks: d.o.Hooks})
		if err != nil {
			return "", err
		}
		d.runs[id] = &run{started: now, since: now, news: newActivity(now)}
		return id, nil
	}
	cfg := &types.DeploymentConfiguration{DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}}
	var lbs []types.LoadBalancer
	kind := "rolling"
	if d.o.Engine == EngineNative {
		var err error
		if cfg, err = NativeConfiguration(d.o.Native); err != nil {
			return "", err
		}
		lb, err := d.p.nativeLoadBalancer(service, d.o.Native.RoleARN)
		if err != nil {
			return "", err
		}
		lbs, kind = []types.LoadBalancer{lb}, "native blue/green ("+d.o.Native.Strategy+")"
	} else if len(d.o.Alarms) > 0 {
		cfg.Alarms = &types.DeploymentAlarms{AlarmNames: d.o.Alarms, Enable: true, Rollback: true}
	}
	td, err := d.p.RegisterTaskDefinition(ctx, service, rev)
	if err != nil {
		return "", err
	}
	in := &ecs.UpdateServiceInput{Cluster: &d.p.o.Cluster, Service: &s.ECSService, TaskDefinition: &td, DeploymentConfiguration: cfg, LoadBalancers: lbs}
	if s.DesiredCount > 0 {
		in.DesiredCount = aws.Int32(int32(s.DesiredCount))
	}
	out, err := d.p.c.ECS.UpdateService(ctx, in)
	if err != nil {
		return "", explain(err, "service "+s.ECSService+" in cluster "+d.p.o.Cluster)
	}
	r := &run{started: now, since: now, td: td}
	var id string
	for _, dep := range out.Service.Deployments {
		switch aws.ToString(dep.Status) {
		case "PRIMARY":
			id = aws.ToString(dep.Id)
			if dep.CreatedAt != nil && dep.CreatedAt.Before(now) {
				r.started = *dep.CreatedAt
			}
		case "ACTIVE":
			r.previous = aws.ToString(dep.TaskDefinition)
		}
	}
	if id == "" {
		return "", fmt.Errorf("ecs: service %s lists no primary deployment after the update to %s", s.ECSService, td)
	}
	r.news = newActivity(r.started)
	d.runs[id] = r
	d.p.o.Log.Info("started "+kind+" deployment", "service", service, "deployment", id, "task_definition", td)
	return id, nil
}

// runOf returns what polls remember of deployment id, rebuilt after a restart.
func (d *Driven) runOf(svc types.Service, id string) *run {
	if r := d.runs[id]; r != nil {
		return r
	}
	now := d.p.o.Clock.Now()
	r := &run{started: now, since: now, news: newActivity(now)}
	for _, dep := range svc.Deployments {
		if aws.ToString(dep.Id) == id {
			r.td = aws.ToString(dep.TaskDefinition)
		} else if aws.ToString(dep.Status) == "ACTIVE" {
			r.previous = aws.ToString(dep.TaskDefinition)
		}
	}
	d.runs[id] = r
	return r
}

// Progress implements deploy.Driven. A read that may succeed later
// (throttled, AWS not reached) is marked deploy.ErrTryAgain.
func (d *Driven) Progress(ctx context.Context, service, id string, health time.Duration) (deploy.DrivenState, error) {
	st, err := d.progress(ctx, service, id, health)
	if err != nil && transient(err) {
		err = fmt.Errorf("%w (%w)", err, deploy.ErrTryAgain)
	}
	return st, err
}

func (d *Driven) progress(ctx context.Context, service, id string, health time.Duration) (deploy.DrivenState, error) {
	if d.o.Engine == EngineCodeDeploy {
		return d.codeDeployProgress(ctx, service, id, health)
	}
	svc, err := d.p.describe(ctx, service)
	if err != nil {
		return deploy.DrivenState{}, err
	}
	r := d.runOf(svc, id)
	ro := DecideRollout(svc, id, r.td)
	st := deploy.DrivenState{News: r.news.events(svc), Reason: ro.Reason,
		Status: fmt.Sprintf("ECS deployment %s %s, %d/%d running, %d pending, %d failed tasks", id, ro.Phase, ro.Running, ro.Desired, ro.Pending, ro.FailedTasks)}
	if ro.Phase != RolloutCompleted {
		// Why new tasks stopped: what the user needs while it goes wrong.
		stopped, err := d.p.stopped(ctx, service, id, r.news)
		if err != nil {
			return st, err
		}
		st.News = append(st.News, stopped...)
	}
	if err := ro.Err(); err != nil {
		st.Reason = err.Error()
	}
	switch ro.Phase {
	case RolloutCompleted:
		st.Phase, st.Traffic = deploy.PhaseSucceeded, 100
	case RolloutRolledBack:
		st.Phase = deploy.PhaseRolledBack
	case RolloutFailed:
		st.Phase = deploy.PhaseFailed
	default:
		st.Phase = deploy.PhaseRolling
		if ro.Desired > 0 {
			st.Traffic = 100 * ro.Running / ro.Desired
		}
	}
	allow := health
	if d.o.Engine == EngineNative {
		if err := d.nativeProgress(ctx, service, r, &st); err != nil {
			return st, err
		}
		// The strategy's own shifting and bake time are not cut into.
		allow += ShiftTime(d.o.Native)
	}
	if st.Phase.Terminal() || st.Phase == deploy.PhaseRollingBack {
		return st, nil
	}
	if len(d.o.Alarms) > 0 {
		// ECS rolls back on its own when an alarm fires, after its own
		// evaluation; cutover does not wait for it once one is in ALARM.
		states, err := d.p.AlarmStates(ctx, d.o.Alarms)
		if err != nil {
			return st, err
		}
		if a, firing := FiringAlarm(states); firing {
			st.Problem, st.Alarm, st.StopOnProblem = "alarm "+a.Name+" is in ALARM: "+a.Reason, true, true
			return st, nil
		}
	}
	if waited := d.p.o.Clock.Now().Sub(r.started); health > 0 && waited > allow {
		st.Problem = fmt.Sprintf("ECS deployment %s of service %s not finished within %s (--timeout %s for the new tasks to become healthy", id, d.p.o.Services[service].ECSService, allow, health)
		if allow > health {
			st.Problem += fmt.Sprintf(", %s for shifting and baking", allow-health)
		}
		st.Problem += ")"
		st.StopOnProblem = st.Phase != deploy.PhaseTerminationWait && st.Phase != deploy.PhaseTerminating
	}
	return st, nil
}

// nativeStages maps an ECS-native deployment's lifecycle stage onto the
// controller's phases.
var nativeStages = map[types.ServiceDeploymentLifecycleStage]deploy.Phase{
	types.ServiceDeploymentLifecycleStageReconcileService:           deploy.PhaseBeforeInstall,
	types.ServiceDeploymentLifecycleStagePreScaleUp:                 deploy.PhaseBeforeInstall,
	types.ServiceDeploymentLifecycleStageScaleUp:                    deploy.PhaseInstall,
	types.ServiceDeploymentLifecycleStagePostScaleUp:                deploy.PhaseAfterInstall,
	types.ServiceDeploymentLifecycleStageTestTrafficShift:           deploy.PhaseAllowTestTraffic,
	types.ServiceDeploymentLifecycleStagePostTestTrafficShift:       deploy.PhaseAfterAllowTestTraffic,
	types.ServiceDeploymentLifecycleStageProductionTrafficShift:     deploy.PhaseShifting,
	types.ServiceDeploymentLifecycleStagePostProductionTrafficShift: deploy.PhaseAfterAllowTraffic,
	types.ServiceDeploymentLifecycleStageBakeTime:                   deploy.PhaseTerminationWait, // both revisions kept: a rollback is a flip
	types.ServiceDeploymentLifecycleStageCleanUp:                    deploy.PhaseTerminating,
}

// NativePhase is the controller's phase of an ECS-native service deployment.
func NativePhase(sd types.ServiceDeployment) deploy.Phase {
	switch sd.Status {
	case types.ServiceDeploymentStatusSuccessful:
		return deploy.PhaseSucceeded
	case types.ServiceDeploymentStatusRollbackSuccessful, types.ServiceDeploymentStatusStopped:
		return deploy.PhaseRolledBack
	case types.ServiceDeploymentStatusRollbackFailed:
		return deploy.PhaseFailed
	case types.ServiceDeploymentStatusRollbackRequested, types.ServiceDeploymentStatusRollbackInProgress, types.ServiceDeploymentStatusStopRequested:
		return deploy.PhaseRollingBack
	case types.ServiceDeploymentStatusPending:
		return deploy.PhasePending
	}
	for _, h := range sd.LifecycleHookDetails {
		if h.TargetType == types.DeploymentLifecycleHookTargetTypePause && h.Status == types.DeploymentLifecycleHookStatusAwaitingAction {
			return deploy.PhaseReadyWait
		}
	}
	if p, ok := nativeStages[sd.LifecycleStage]; ok {
		return p
	}
	return deploy.PhaseInstall
}

// serviceDeployment finds the service deployment of r: the newest of the
// service started no earlier than r (ListServiceDeployments lists newest first).
func (d *Driven) serviceDeployment(ctx context.Context, service string, r *run) (string, error) {
	if r.arn != "" {
		return r.arn, nil
	}
	s := d.p.o.Services[service]
	list, err := d.p.c.ECS.ListServiceDeployments(ctx, &ecs.ListServiceDeploymentsInput{Cluster: &d.p.o.Cluster, Service: &s.ECSService})
	if err != nil {
		return "", explain(err, "deployments of service "+s.ECSService)
	}
	var best *types.ServiceDeploymentBrief
	for i := range list.ServiceDeployments {
		b := &list.ServiceDeployments[i]
		if best == nil || (b.CreatedAt != nil && best.CreatedAt != nil && b.CreatedAt.After(*best.CreatedAt)) {
			best = b
		}
	}
	if best == nil {
		return "", fmt.Errorf("ecs: service %s lists no service deployment", s.ECSService)
	}
	r.arn = aws.ToString(best.ServiceDeploymentArn)
	return r.arn, nil
}

// nativeProgress reads the lifecycle stage of an ECS-native deployment.
func (d *Driven) nativeProgress(ctx context.Context, service string, r *run, st *deploy.DrivenState) error {
	arn, err := d.serviceDeployment(ctx, service, r)
	if err != nil {
		return err
	}
	out, err := d.p.c.ECS.DescribeServiceDeployments(ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{arn}})
	if err != nil {
		return explain(err, "deployment "+arn)
	}
	if len(out.ServiceDeployments) == 0 {
		return fmt.Errorf("ecs: service deployment %s not found", arn)
	}
	sd := out.ServiceDeployments[0]
	st.Phase = NativePhase(sd)
	switch {
	case st.Phase == deploy.PhaseSucceeded || st.Phase >= deploy.PhaseAfterAllowTraffic && !st.Phase.Terminal():
		st.Traffic = 100
	default:
		st.Traffic = 0
	}
	if r := aws.ToString(sd.StatusReason); r != "" {
		st.Reason = r
	}
	st.Status = fmt.Sprintf("ECS deployment %s %s, stage %s", arn, sd.Status, sd.LifecycleStage)
	return nil
}

// codeDeployPhases maps the ECS lifecycle events of a CodeDeploy deployment
// onto the controller's phases: they share CodeDeploy's names but AllowTraffic.
var codeDeployPhases = map[string]deploy.Phase{
	"BeforeInstall": deploy.PhaseBeforeInstall, "Install": deploy.PhaseInstall, "AfterInstall": deploy.PhaseAfterInstall,
	"AllowTestTraffic": deploy.PhaseAllowTestTraffic, "AfterAllowTestTraffic": deploy.PhaseAfterAllowTestTraffic,
	"BeforeAllowTraffic": deploy.PhaseBeforeAllowTraffic, "AllowTraffic": deploy.PhaseShifting, "AfterAllowTraffic": deploy.PhaseAfterAllowTraffic,
}

// CodeDeployPhase is the controller's phase of a CodeDeploy deployment.
func CodeDeployPhase(s BlueGreenState) deploy.Phase {
	switch s.Phase {
	case BlueGreenSucceeded:
		return deploy.PhaseSucceeded
	case BlueGreenFailed, BlueGreenStopped:
		if s.RolledBack {
			return deploy.PhaseRolledBack
		}
		return deploy.PhaseFailed
	case BlueGreenBaking:
		return deploy.PhaseTerminationWait
	case BlueGreenWaiting:
		if s.Status == string(cdtypes.DeploymentStatusReady) {
			return deploy.PhaseReadyWait
		}
		return deploy.PhasePending
	}
	// In progress: the first lifecycle event not over yet.
	for _, e := range s.Events {
		if e.Status == string(cdtypes.LifecycleEventStatusSucceeded) || e.Status == string(cdtypes.LifecycleEventStatusSkipped) {
			continue
		}
		if p, ok := codeDeployPhases[e.Name]; ok {
			return p
		}
	}
	if len(s.Events) == 0 {
		return deploy.PhaseInstall // the ECS target appears once CodeDeploy provisions the replacement tasks
	}
	return deploy.PhaseTerminationWait
}

// codeDeployProgress reads a CodeDeploy deployment and its ECS target.
func (d *Driven) codeDeployProgress(ctx context.Context, service, id string, health time.Duration) (deploy.DrivenState, error) {
	target := d.p.o.Cluster + ":" + d.p.o.Services[service].ECSService
	out, err := d.p.c.CodeDeploy.GetDeployment(ctx, &codedeploy.GetDeploymentInput{DeploymentId: &id})
	if err != nil {
		return deploy.DrivenState{}, explain(err, "deployment "+id)
	}
	var ecsTarget *cdtypes.ECSTarget
	t, err := d.p.c.CodeDeploy.GetDeploymentTarget(ctx, &codedeploy.GetDeploymentTargetInput{DeploymentId: &id, TargetId: &target})
	var missing *cdtypes.DeploymentTargetDoesNotExistException
	switch {
	case errors.As(err, &missing):
		// The target appears once CodeDeploy starts the ECS deployment.
	case err != nil:
		return deploy.DrivenState{}, explain(err, "deployment target "+target)
	case t.DeploymentTarget != nil:
		ecsTarget = t.DeploymentTarget.EcsTarget
	}
	bg := DecideBlueGreen(*out.DeploymentInfo, ecsTarget)
	r := d.runs[id]
	if r == nil {
		now := d.p.o.Clock.Now()
		r = &run{started: now, since: now, news: newActivity(now)}
		d.runs[id] = r
	}
	svc, err := d.p.describe(ctx, service)
	if err != nil {
		return deploy.DrivenState{}, err
	}
	st := deploy.DrivenState{Phase: CodeDeployPhase(bg), Traffic: int(bg.Traffic), News: r.news.events(svc), Reason: bg.Reason}
	if !bg.Done() {
		stopped, err := d.p.stopped(ctx, service, bg.GreenTaskSet, r.news)
		if err != nil {
			return st, err
		}
		st.News = append(st.News, stopped...)
	}
	st.Status = fmt.Sprintf("CodeDeploy deployment %s %s (%s), %g%% of traffic on the new tasks", id, bg.Phase, bg.Status, bg.Traffic)
	for _, ev := range bg.Events {
		st.Status += fmt.Sprintf(" %s=%s", ev.Name, ev.Status)
	}
	if bg.Done() {
		if err := bg.Err(); err != nil {
			st.Reason = err.Error()
		}
		return st, nil
	}
	now := d.p.o.Clock.Now()
	if k := bg.progressKey(); k != r.key {
		r.key, r.since = k, now
	}
	if allow, stop := Allowance(bg, health); health > 0 && now.Sub(r.since) > allow {
		st.Problem = (&StuckError{State: bg, Waited: now.Sub(r.since)}).Error()
		st.StopOnProblem = stop
	}
	return st, nil
}

// Stop implements deploy.Driven: CodeDeploy's StopDeployment with automatic
// rollback, or ECS's StopServiceDeployment with rollback.
func (d *Driven) Stop(ctx context.Context, service, id string) error {
	if d.o.Engine == EngineCodeDeploy {
		return d.p.StopBlueGreen(ctx, id)
	}
	r := d.runs[id]
	if r == nil {
		svc, err := d.p.describe(ctx, service)
		if err != nil {
			return err
		}
		r = d.runOf(svc, id)
	}
	arn, err := d.serviceDeployment(ctx, service, r)
	if err != nil {
		return err
	}
	if _, err := d.p.c.ECS.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: &arn, StopType: types.StopServiceDeploymentStopTypeRollback}); err != nil {
		return explain(err, "deployment "+arn)
	}
	d.p.o.Log.Info("stopped ECS deployment with rollback", "service", service, "deployment", arn)
	return nil
}

// Continue implements deploy.Driven: CodeDeploy's ContinueDeployment, or
// ECS's ContinueServiceDeployment on the PAUSE hook.
func (d *Driven) Continue(ctx context.Context, service, id string) error {
	switch d.o.Engine {
	case EngineCodeDeploy:
		return d.p.ContinueBlueGreen(ctx, id)
	case EngineNative:
		_, err := d.p.ContinueNative(ctx, service)
		return err
	}
	return fmt.Errorf("ecs: deployment %s is an ECS rolling deployment: it has no wait for a continue", id)
}
