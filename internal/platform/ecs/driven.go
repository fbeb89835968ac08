package ecs

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// Prepare implements deploy.Driven: it registers the revision's task
// definition for the service; the deployment that runs it starts in Start.
func (d *Driven) Prepare(ctx context.Context, service string, rev store.Revision) (deploy.Intent, error) {
	if _, ok := d.p.o.Services[service]; !ok {
		return deploy.Intent{}, fmt.Errorf("ecs: no service %s in this environment", service)
	}
	if d.o.Engine == EngineNative {
		// What UpdateService will need, checked before anything is registered.
		if _, err := d.p.nativeLoadBalancer(service, d.o.Native.RoleARN); err != nil {
			return deploy.Intent{}, err
		}
	}
	td, err := d.p.RegisterTaskDefinition(ctx, service, rev)
	if err != nil {
		return deploy.Intent{}, err
	}
	return deploy.Intent{Revision: rev.ID, Target: td}, nil
}

// blueGreen is the CodeDeploy options of service.
func (d *Driven) blueGreen(service string) BlueGreenOptions {
	return BlueGreenOptions{Application: d.o.Application, DeploymentGroup: d.o.Groups[service], Traffic: d.o.Traffic, Hooks: d.o.Hooks}
}

// Start implements deploy.Driven: CodeDeploy's CreateDeployment, or ECS's
// UpdateService, of the intent's task definition.
func (d *Driven) Start(ctx context.Context, service string, in deploy.Intent) (string, error) {
	s, ok := d.p.o.Services[service]
	if !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	td := in.Target
	if td == "" {
		return "", fmt.Errorf("ecs: service %s: no task definition to deploy", service)
	}
	now := d.p.o.Clock.Now()
	if d.o.Engine == EngineCodeDeploy {
		id, err := d.p.createBlueGreen(ctx, service, in.Revision, td, d.blueGreen(service))
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
	nc, err := d.p.network(ctx, service)
	if err != nil {
		return "", err
	}
	in2 := &ecs.UpdateServiceInput{Cluster: &d.p.o.Cluster, Service: &s.ECSService, TaskDefinition: &td, DeploymentConfiguration: cfg, LoadBalancers: lbs, NetworkConfiguration: nc}
	if s.DesiredCount > 0 {
		in2.DesiredCount = aws.Int32(int32(s.DesiredCount))
	}
	out, err := d.p.c.ECS.UpdateService(ctx, in2)
	if err != nil {
		return "", explain(err, "service "+s.ECSService+" in cluster "+d.p.o.Cluster)
	}
	id, r := d.adopt(*out.Service, td, now, true)
	if id == "" {
		return "", fmt.Errorf("ecs: service %s lists no primary deployment after the update to %s", s.ECSService, td)
	}
	d.p.o.Log.Info("started "+kind+" deployment", "service", service, "deployment", id, "task_definition", td)
	d.runs[id] = r
	return id, nil
}

// adopt returns the ECS deployment of svc that runs task definition td
// (with updated, the primary one: UpdateService's answer), with what its
// polls remember.
func (d *Driven) adopt(svc types.Service, td string, now time.Time, updated bool) (string, *run) {
	r := &run{started: now, since: now, td: td}
	var id string
	for _, dep := range svc.Deployments {
		primary := aws.ToString(dep.Status) == "PRIMARY"
		switch {
		case updated && primary, !updated && aws.ToString(dep.TaskDefinition) == td && (id == "" || primary):
			id = aws.ToString(dep.Id)
			if dep.CreatedAt != nil && dep.CreatedAt.Before(now) {
				r.started = *dep.CreatedAt
			}
		case aws.ToString(dep.Status) == "ACTIVE":
			r.previous = aws.ToString(dep.TaskDefinition)
		}
	}
	r.news = newActivity(r.started)
	return id, r
}

// Find implements deploy.Driven: the deployment AWS runs, or ran, of the
// intent's task definition (a task definition ARN names one registration:
// a deployment that runs it is the one cutover started). CodeDeploy: the
// deployments of the service's group since the start marker whose AppSpec
// names it. ECS: the service's deployment that runs it; one that is no
// longer listed (ECS rolled it back) is found among the service deployments
// since the marker by their service revision's task definition.
func (d *Driven) Find(ctx context.Context, service string, in deploy.Intent) (string, error) {
	if in.Target == "" {
		return "", nil
	}
	s, ok := d.p.o.Services[service]
	if !ok {
		return "", fmt.Errorf("ecs: no service %s in this environment", service)
	}
	now := d.p.o.Clock.Now()
	if d.o.Engine == EngineCodeDeploy {
		id, err := d.p.findBlueGreen(ctx, service, in.Revision, in.Target, in.Starting, d.blueGreen(service))
		if id != "" {
			d.runs[id] = &run{started: now, since: now, news: newActivity(now)}
		}
		return id, err
	}
	svc, err := d.p.describe(ctx, service)
	if err != nil {
		return "", err
	}
	if id, r := d.adopt(svc, in.Target, now, false); id != "" {
		d.runs[id] = r
		return id, nil
	}
	list, err := d.p.c.ECS.ListServiceDeployments(ctx, &ecs.ListServiceDeploymentsInput{Cluster: &d.p.o.Cluster, Service: &s.ECSService,
		CreatedAt: &types.CreatedAt{After: aws.Time(in.Starting.Add(-findSkew))}})
	if err != nil {
		return "", explain(err, "deployments of service "+s.ECSService)
	}
	byRevision := map[string]string{} // service revision ARN -> service deployment ARN
	var revisions []string
	for _, b := range list.ServiceDeployments {
		if r := aws.ToString(b.TargetServiceRevisionArn); r != "" {
			byRevision[r] = aws.ToString(b.ServiceDeploymentArn)
			revisions = append(revisions, r)
		}
	}
	for len(revisions) > 0 {
		n := min(len(revisions), 20) // DescribeServiceRevisions takes at most 20 ARNs
		out, err := d.p.c.ECS.DescribeServiceRevisions(ctx, &ecs.DescribeServiceRevisionsInput{ServiceRevisionArns: revisions[:n]})
		if err != nil {
			return "", explain(err, "service revisions of "+s.ECSService)
		}
		revisions = revisions[n:]
		for _, sr := range out.ServiceRevisions {
			if aws.ToString(sr.TaskDefinition) != in.Target {
				continue
			}
			// No longer among the service's deployments: ECS replaced it.
			// Its service deployment ARN names it; Progress reads its end.
			arn := byRevision[aws.ToString(sr.ServiceRevisionArn)]
			d.runs[arn] = &run{started: now, since: now, td: in.Target, arn: arn, news: newActivity(now)}
			return arn, nil
		}
	}
	return "", nil
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
	if ro.Phase != RolloutCompleted && !strings.HasPrefix(id, "arn:") {
		// Why new tasks stopped: what the user needs while it goes wrong.
		// (An ID that is a service deployment's ARN was found after ECS
		// replaced it: its tasks are not started by it any more.)
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
		if svc.DeploymentConfiguration != nil {
			sc := NativeSchedule(svc.DeploymentConfiguration)
			st.Schedule = &sc
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

// NativeSchedule is the timed waits of an ECS-native deployment, from the
// service's deployment configuration: the canary's or each linear step's
// bake, and the bake time (both revisions kept: the controller's
// termination wait). The pause before production traffic counts 0.
func NativeSchedule(c *types.DeploymentConfiguration) deploy.Schedule {
	var sc deploy.Schedule
	if c == nil {
		return sc
	}
	mins := func(m *int32) time.Duration { return time.Duration(aws.ToInt32(m)) * time.Minute }
	sc.TerminationWait = mins(c.BakeTimeInMinutes)
	switch {
	case c.Strategy == types.DeploymentStrategyCanary && c.CanaryConfiguration != nil:
		if p := int(aws.ToFloat64(c.CanaryConfiguration.CanaryPercent)); p > 0 && p < 100 {
			sc.Steps = append(sc.Steps, deploy.Step{Percent: p, Wait: mins(c.CanaryConfiguration.CanaryBakeTimeInMinutes)})
		}
	case c.Strategy == types.DeploymentStrategyLinear && c.LinearConfiguration != nil:
		if step := aws.ToFloat64(c.LinearConfiguration.StepPercent); step > 0 {
			for p := step; p < 100; p += step {
				sc.Steps = append(sc.Steps, deploy.Step{Percent: int(p), Wait: mins(c.LinearConfiguration.StepBakeTimeInMinutes)})
			}
		}
	}
	sc.Steps = append(sc.Steps, deploy.Step{Percent: 100})
	return sc
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
	sc := CodeDeploySchedule(*out.DeploymentInfo)
	st := deploy.DrivenState{Phase: CodeDeployPhase(bg), Traffic: int(bg.Traffic), News: r.news.events(svc), Reason: bg.Reason, Schedule: &sc}
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
