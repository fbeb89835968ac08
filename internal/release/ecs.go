package release

// Environments on platform ecs: deploy, stop and status through
// internal/platform/ecs (moved from internal/cli as it was). ECS and CodeDeploy run the deployment; cutover
// records the revision and the outcome so `cutover history` shows it.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/cutoverdev/cutover/internal/ecr"
	"github.com/cutoverdev/cutover/internal/runtime/docker"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/export"
	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/store"
)

func isECS(cfg *config.Config, env string) bool {
	e := cfg.Environments[env]
	return e != nil && e.Platform == config.PlatformECS
}

// ecsSession is what an ecs use case needs: no Docker, no local proxy.
type ecsSession struct {
	m     *Manager
	cfg   *config.Config // a copy: fromStack completes the environment's ecs section in it
	env   string
	store *store.Store
	diff  bool // show each service's task definition change before deploying
}

func (m *Manager) openECS(env string) *ecsSession {
	cfg := *m.Config
	cfg.Environments = maps.Clone(m.Config.Environments)
	e := *cfg.Environments[env]
	if e.ECS != nil {
		x := *e.ECS
		e.ECS = &x
	}
	cfg.Environments[env] = &e
	return &ecsSession{m: m, cfg: &cfg, env: env, store: m.Store}
}

// clients connects to AWS with the environment's region, profile and endpoint.
func (s *ecsSession) clients(ctx context.Context) (ecs.Clients, error) {
	x := s.cfg.Environments[s.env].ECS
	return ecs.NewClients(ctx, ecs.ClientOptions{Region: x.Region, Profile: x.Profile, Endpoint: x.Endpoint})
}

// fromStack completes the environment's ecs settings from the outputs of
// its app stack (environments.<env>.ecs.stack), once per session.
func (s *ecsSession) fromStack(ctx context.Context, c ecs.Clients) error {
	x := s.cfg.Environments[s.env].ECS
	if x.Stack == "" {
		return nil
	}
	outputs, err := ecs.StackOutputs(ctx, c.CloudFormation, x.Stack)
	if err != nil {
		return err
	}
	filled, err := export.ECSFromOutputs(s.cfg, s.env, outputs)
	if err != nil {
		return fmt.Errorf("environments.%s.ecs.stack %s: %w", s.env, x.Stack, err)
	}
	filled.Stack = ""
	s.cfg.Environments[s.env].ECS = filled
	return nil
}

// platform maps cutover.yaml's ecs section onto the ecs package's options.
func (s *ecsSession) platform(ctx context.Context, log *slog.Logger) (*ecs.Platform, error) {
	c, err := s.clients(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.fromStack(ctx, c); err != nil {
		return nil, err
	}
	x := s.cfg.Environments[s.env].ECS
	services := map[string]ecs.Service{}
	for name, svc := range s.cfg.Services {
		es := x.Services[name]
		if es == nil {
			es = &config.ECSService{}
		}
		services[name] = ecs.Service{
			ECSService: cmp.Or(es.Service, name), Container: es.Container, Port: svc.Port, Env: svc.Env, Secrets: es.Secrets,
			DesiredCount: svc.DesiredCount, CPU: es.CPU, Memory: es.Memory,
			TargetGroups: map[string]string{"blue": es.TargetGroups.Blue, "green": es.TargetGroups.Green},
			Listener:     es.Listener, Rule: es.Rule, TestListener: es.TestListener, TestRule: es.TestRule,
			TaskRoleARN: es.TaskRoleARN, StopTimeout: svc.StopTimeout.Std(),
		}
	}
	return ecs.New(c, ecs.Options{
		Cluster: x.Cluster, Region: x.Region, FamilyPrefix: s.cfg.Project + "-" + s.env + "-",
		ExecutionRoleARN: x.ExecutionRoleARN, TaskRoleARN: x.TaskRoleARN, LogGroup: x.LogGroup,
		LaunchType: ecstypes.LaunchType(x.LaunchType), Subnets: x.Subnets, SecurityGroups: x.SecurityGroups,
		Services: services, Log: log,
		// Each task definition revision is recorded against cutover's revision, in the event log.
		OnTaskDefinition: func(revision, service, arn string) {
			data, _ := json.Marshal(map[string]string{"revision": revision, "service": service, "task_definition": arn})
			if _, err := s.store.AppendEvent(context.WithoutCancel(ctx), store.Event{Project: s.cfg.Project, Environment: s.env,
				Kind: "ecs.task_definition", Message: fmt.Sprintf("revision %s: %s runs %s", revision, service, arn), Data: data}); err != nil {
				log.Warn("recording the task definition", "arn", arn, "err", err)
			}
		},
	})
}

// ecsData is what an ecs deployment keeps in store.Deployment.Data: the
// CodeDeploy deployment of each service, so `cutover stop` can stop them.
type ecsData struct {
	CodeDeploy map[string]string `json:"codedeploy,omitempty"`
}

// deployECS records a revision of the given images and deploys it. Images
// are not built: ECS pulls them from a registry, so they must be given by digest.
func (m *Manager) deployECS(ctx context.Context, env string, images map[string]string, wait bool, timeout time.Duration, diff bool) (store.Deployment, error) {
	s := m.openECS(env)
	s.diff = diff
	var missing []string
	for _, name := range s.cfg.ServiceNames() {
		if images[name] == "" {
			missing = append(missing, name)
		}
	}
	for name, ref := range images {
		if _, ok := s.cfg.Services[name]; !ok {
			return store.Deployment{}, m.unknownService(name)
		}
		if !strings.Contains(ref, "@sha256:") {
			return store.Deployment{}, UsageError{fmt.Sprintf("--image %s=%s: environment %s is on ECS, which needs an image pinned by digest (write %s=REGISTRY/REPO@sha256:DIGEST)", name, ref, env, name)}
		}
	}
	source := "images"
	if len(missing) > 0 {
		// Build what was not given, push it to ECR, and deploy the scanned digests.
		built, err := s.buildToECR(ctx, missing)
		if err != nil {
			return store.Deployment{}, err
		}
		for name, ref := range built {
			images[name] = ref
		}
		source = "working tree"
	}
	rev := local.NewRevision(s.cfg, env, images, source)
	if err := s.store.CreateRevision(ctx, rev); err != nil {
		return store.Deployment{}, err
	}
	return s.deploy(ctx, rev, "cutover deploy", wait, timeout)
}

// deploy runs one deployment of rev under the environment's lease and records it.
func (s *ecsSession) deploy(ctx context.Context, rev store.Revision, command string, wait bool, timeout time.Duration) (store.Deployment, error) {
	lctx, release, err := deploy.Lock(ctx, s.store, s.cfg.Project, s.env, command, wait)
	if err != nil {
		return store.Deployment{}, err
	}
	defer release()
	p, err := s.platform(lctx, s.m.log())
	if err != nil {
		return store.Deployment{}, err
	}
	if s.diff {
		for _, name := range s.cfg.ServiceNames() {
			lines, err := p.TaskDefinitionDiff(lctx, name, rev)
			if err != nil {
				return store.Deployment{}, err
			}
			if len(lines) == 0 {
				lines = []string{"(no change but the revision)"}
			}
			s.m.note("%s: task definition change\n  %s", name, strings.Join(lines, "\n  "))
		}
	}
	e := s.cfg.Environments[s.env]
	d := store.Deployment{
		ID: deploy.NewDeploymentID(time.Now()), Project: s.cfg.Project, Environment: s.env, Revision: rev.ID,
		Strategy: e.Strategy.Type, Phase: "deploying", Status: store.DeploymentInProgress, Owner: s.m.Actor,
	}
	if last, err := s.store.LastSucceededDeployment(lctx, s.cfg.Project, s.env); err == nil {
		d.PreviousRevision = last.Revision
	}
	if err := s.store.CreateDeployment(lctx, d); err != nil {
		return store.Deployment{}, err
	}
	gen := int64(1)
	save := func() error {
		// The outcome is recorded even when the lease or ctx ended.
		var err error
		gen, err = s.store.UpdateDeployment(context.WithoutCancel(lctx), d, gen)
		return err
	}
	status, reason := store.DeploymentSucceeded, ""
	if e.Strategy.Type == config.StrategyBlueGreen && e.ECS.BlueGreenEngine() == config.BlueGreenCodeDeploy {
		status, reason = s.blueGreen(lctx, p, rev, &d, save, timeout)
	}
	for _, name := range s.cfg.ServiceNames() {
		switch {
		case e.Strategy.Type != config.StrategyBlueGreen:
			status, reason = s.rolling(lctx, p, name, rev, timeout)
		case e.ECS.BlueGreenEngine() == config.BlueGreenECS:
			status, reason = s.native(lctx, p, name, rev, timeout)
		}
		if status != store.DeploymentSucceeded {
			break
		}
	}
	d.Status, d.Reason, d.Phase = status, reason, "done"
	if status == store.DeploymentSucceeded {
		d.TrafficPercent = 100
	}
	if err := save(); err != nil {
		return store.Deployment{}, err
	}
	if status == store.DeploymentSucceeded {
		if _, err := s.store.PutEnvState(context.WithoutCancel(lctx), store.EnvState{Project: s.cfg.Project, Environment: s.env, Revision: rev.ID, Status: "up"}, store.AnyGeneration); err != nil {
			return store.Deployment{}, err
		}
	}
	return d, nil
}

// rolling runs an ECS rolling deployment of one service; an ECS rollback is a failure.
func (s *ecsSession) rolling(ctx context.Context, p *ecs.Platform, name string, rev store.Revision, timeout time.Duration) (string, string) {
	x := s.cfg.Environments[s.env].ECS
	return s.rollout(name, timeout, func(progress func(ecs.Rollout)) (ecs.Rollout, error) {
		return p.DeployRolling(ctx, name, rev, ecs.RollingOptions{Alarms: x.Alarms, Timeout: timeout}, progress)
	})
}

// native runs an ECS-native blue/green (BLUE_GREEN, LINEAR or CANARY by the
// strategy's traffic setting) of one service; a rollback is a failure.
func (s *ecsSession) native(ctx context.Context, p *ecs.Platform, name string, rev store.Revision, timeout time.Duration) (string, string) {
	e := s.cfg.Environments[s.env]
	o := ecs.NativeOptions{Strategy: "BLUE_GREEN", BakeTime: e.Strategy.Bake.Std(), RoleARN: e.ECS.RoleARN, Alarms: e.ECS.Alarms, Timeout: timeout}
	if e.Strategy.ManualContinue {
		// ECS pauses before production traffic moves until `cutover continue`.
		o.ManualWait = max(e.Strategy.ReadyWait.Std(), time.Minute)
	}
	arns, stages := e.ECS.NativeHookStages()
	for _, arn := range arns {
		o.Hooks = append(o.Hooks, ecs.Hook{LambdaARN: arn, Stages: stages[arn], RoleARN: e.ECS.RoleARN})
	}
	strategy, percent, wait := e.Strategy.NativeStrategy()
	o.Strategy, o.StepWait = strategy, wait.Std()
	switch strategy {
	case "CANARY":
		o.CanaryPercent = percent
	case "LINEAR":
		o.LinearPercent = percent
	}
	return s.rollout(name, timeout, func(progress func(ecs.Rollout)) (ecs.Rollout, error) {
		return p.DeployNative(ctx, name, rev, o, progress)
	})
}

// rollout runs one ECS deployment with progress lines and maps its outcome.
func (s *ecsSession) rollout(name string, timeout time.Duration, run func(progress func(ecs.Rollout)) (ecs.Rollout, error)) (string, string) {
	last := ""
	r, err := run(func(r ecs.Rollout) {
		for _, n := range r.News {
			s.m.note("%s: %s", name, n)
		}
		line := fmt.Sprintf("%s: ECS deployment %s %s, %d/%d running, %d pending, %d failed tasks", name, r.DeploymentID, r.Phase, r.Running, r.Desired, r.Pending, r.FailedTasks)
		if line != last {
			s.m.note("%s", line)
			last = line
		}
	})
	switch {
	case err == nil:
		return store.DeploymentSucceeded, ""
	case r.Phase == ecs.RolloutRolledBack:
		return store.DeploymentRolledBack, fmt.Sprintf("service %s: %v", name, err)
	case errors.Is(err, context.DeadlineExceeded):
		return store.DeploymentFailed, fmt.Sprintf("service %s: ECS deployment %s not finished within --timeout %s; ECS goes on with it and its circuit breaker decides", name, r.DeploymentID, timeout)
	}
	return store.DeploymentFailed, fmt.Sprintf("service %s: %v", name, err)
}

// blueGreen runs the CodeDeploy deployments of the services, each through
// its own deployment group, recording each deployment ID before waiting so
// `cutover stop` can stop it. The wait is bounded by what a deployment waits
// for (timeout bounds the new tasks' health and each hook; each traffic step
// and the termination wait get their own length), and the platform decides
// whether to stop one that stalls: see ecs.Platform.WaitBlueGreen.
func (s *ecsSession) blueGreen(ctx context.Context, p *ecs.Platform, rev store.Revision, d *store.Deployment, save func() error, timeout time.Duration) (string, string) {
	e := s.cfg.Environments[s.env]
	groups := map[string]string{}
	for _, name := range s.cfg.ServiceNames() {
		groups[name] = e.ECS.DeploymentGroupOf(s.env, name)
	}
	last := ""
	name, st, err := p.DeployBlueGreen(ctx, rev, ecs.BlueGreenRun{
		Application: e.ECS.CodeDeploy.Application, Groups: groups, Traffic: e.Strategy.Traffic, Hooks: e.ECS.LambdaHooks, Health: timeout,
		Started: func(name, id string) error {
			s.m.note("%s: CodeDeploy deployment %s created in deployment group %s", name, id, groups[name])
			var data ecsData
			_ = json.Unmarshal(d.Data, &data)
			if data.CodeDeploy == nil {
				data.CodeDeploy = map[string]string{}
			}
			data.CodeDeploy[name] = id
			d.Data, _ = json.Marshal(data)
			d.Phase = "codedeploy " + name
			return save()
		},
		Progress: func(name string, st ecs.BlueGreenState) {
			for _, n := range st.News {
				s.m.note("%s: %s", name, n)
			}
			line := fmt.Sprintf("%s: CodeDeploy deployment %s %s (%s), %g%% of traffic on the new tasks", name, st.DeploymentID, st.Phase, st.Status, st.Traffic)
			for _, ev := range st.Events {
				line += fmt.Sprintf(" %s=%s", ev.Name, ev.Status)
			}
			if line != last {
				s.m.note("%s", line)
				last = line
			}
		},
	})
	switch {
	case err == nil:
		return store.DeploymentSucceeded, ""
	case st.StoppedByCutover, st.Done() && (st.RolledBack || st.Phase == ecs.BlueGreenStopped):
		return store.DeploymentRolledBack, fmt.Sprintf("service %s: %v", name, err)
	}
	return store.DeploymentFailed, fmt.Sprintf("service %s: %v", name, err)
}

// stopECS stops the CodeDeploy deployments of the environment's deployment
// in progress with automatic rollback (`cutover stop` and `cutover rollback`).
// The deploying cutover sees them stop and records the outcome; when it is
// gone, this command records it.
func (m *Manager) stopECS(ctx context.Context, env, command string) (store.Deployment, error) {
	s := m.openECS(env)
	d, err := s.store.ActiveDeployment(ctx, s.cfg.Project, env)
	if errors.Is(err, store.ErrNotFound) {
		return d, fmt.Errorf("%s/%s has no deployment in progress to stop", s.cfg.Project, env)
	} else if err != nil {
		return d, err
	}
	var data ecsData
	_ = json.Unmarshal(d.Data, &data)
	if len(data.CodeDeploy) == 0 {
		return d, fmt.Errorf("deployment %s is an ECS rolling deployment: cutover cannot stop it; ECS rolls it back itself when its circuit breaker or an alarm trips", d.ID)
	}
	p, err := s.platform(ctx, m.log())
	if err != nil {
		return d, err
	}
	var stopped []string
	for _, name := range slices.Sorted(maps.Keys(data.CodeDeploy)) {
		if err := p.StopBlueGreen(ctx, data.CodeDeploy[name]); err != nil {
			return d, fmt.Errorf("deployment %s, service %s: %w", d.ID, name, err)
		}
		stopped = append(stopped, data.CodeDeploy[name])
	}
	if _, release, err := deploy.Lock(ctx, s.store, s.cfg.Project, env, command, false); err == nil {
		defer release()
		d.Status, d.Phase = store.DeploymentRolledBack, "done"
		d.Reason = "stopped by " + command + " with automatic rollback of CodeDeploy deployment " + strings.Join(stopped, ", ")
		if _, err := s.store.UpdateDeployment(ctx, d, d.Generation); err != nil {
			return d, err
		}
	}
	m.note("stopped CodeDeploy deployment %s of deployment %s with automatic rollback", strings.Join(stopped, ", "), d.ID)
	return d, nil
}

// continueECS lets the environment's deployment in progress shift
// production traffic: each CodeDeploy deployment waiting in Ready, or each
// service's ECS-native deployment paused at its PAUSE hook.
func (m *Manager) continueECS(ctx context.Context, env string) (store.Deployment, error) {
	s := m.openECS(env)
	d, err := s.store.ActiveDeployment(ctx, s.cfg.Project, env)
	if errors.Is(err, store.ErrNotFound) {
		return d, fmt.Errorf("%s/%s has no deployment in progress to continue", s.cfg.Project, env)
	} else if err != nil {
		return d, err
	}
	p, err := s.platform(ctx, m.log())
	if err != nil {
		return d, err
	}
	e := s.cfg.Environments[env]
	var data ecsData
	_ = json.Unmarshal(d.Data, &data)
	var continued []string
	switch {
	case len(data.CodeDeploy) > 0:
		for _, name := range slices.Sorted(maps.Keys(data.CodeDeploy)) {
			if err := p.ContinueBlueGreen(ctx, data.CodeDeploy[name]); err != nil {
				return d, fmt.Errorf("deployment %s, service %s: %w", d.ID, name, err)
			}
			continued = append(continued, name+" (CodeDeploy "+data.CodeDeploy[name]+")")
		}
	case e.Strategy.Type == config.StrategyBlueGreen && e.ECS.BlueGreenEngine() == config.BlueGreenECS:
		for _, name := range s.cfg.ServiceNames() {
			arn, err := p.ContinueNative(ctx, name)
			if err != nil {
				return d, fmt.Errorf("deployment %s, service %s: %w", d.ID, name, err)
			}
			continued = append(continued, name+" ("+arn+")")
		}
	default:
		return d, fmt.Errorf("deployment %s is an ECS rolling deployment: it has no wait for a continue", d.ID)
	}
	m.note("continued deployment %s: %s", d.ID, strings.Join(continued, ", "))
	return d, nil
}

// rollbackECS stops a deployment in progress, or else redeploys the
// revision that ran before the last successful deployment.
func (m *Manager) rollbackECS(ctx context.Context, env, to string, timeout time.Duration) (store.Deployment, error) {
	s := m.openECS(env)
	if _, err := s.store.ActiveDeployment(ctx, s.cfg.Project, env); err == nil && to == "" {
		return m.stopECS(ctx, env, "cutover rollback")
	}
	rev, err := m.rollbackTarget(ctx, env, to)
	if err != nil {
		return store.Deployment{}, err
	}
	m.note("redeploying the previous revision %s on ECS", rev.ID)
	return s.deploy(ctx, rev, "cutover rollback", false, timeout)
}

// ecsStatus describes the environment's ECS services, best effort: an AWS
// error is shown in the status, not returned.
func (m *Manager) ecsStatus(ctx context.Context, env string) []ECSService {
	s := m.openECS(env)
	cfg := s.cfg
	var out []ECSService
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := s.clients(cctx)
	if err == nil {
		err = s.fromStack(cctx, c)
	}
	if err != nil {
		return []ECSService{{Error: err.Error()}}
	}
	x := cfg.Environments[env].ECS // completed from the stack
	for _, name := range cfg.ServiceNames() {
		st := ECSService{Service: name, ECSService: x.Services[name].Service}
		res, err := c.ECS.DescribeServices(cctx, &awsecs.DescribeServicesInput{Cluster: &x.Cluster, Services: []string{st.ECSService}})
		switch {
		case err != nil:
			st.Error = err.Error()
		case len(res.Services) == 0:
			st.Error = "not found in cluster " + x.Cluster
		default:
			svc := res.Services[0]
			st.Status, st.TaskDefinition = aws.ToString(svc.Status), aws.ToString(svc.TaskDefinition)
			st.Desired, st.Running, st.Pending = int(svc.DesiredCount), int(svc.RunningCount), int(svc.PendingCount)
			for _, dep := range svc.Deployments {
				st.Deployments = append(st.Deployments, fmt.Sprintf("%s %s %s (%d/%d running)", aws.ToString(dep.Id), aws.ToString(dep.Status), dep.RolloutState, dep.RunningCount, dep.DesiredCount))
			}
		}
		tgs := x.Services[name].TargetGroups
		for _, tg := range []struct{ color, arn string }{{"blue", tgs.Blue}, {"green", tgs.Green}} {
			if tg.arn == "" {
				continue
			}
			th, err := c.ELB.DescribeTargetHealth(cctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg.arn)})
			if err != nil {
				st.TargetHealth = append(st.TargetHealth, tg.color+": "+err.Error())
				continue
			}
			for _, d := range th.TargetHealthDescriptions {
				id := ""
				if d.Target != nil {
					id = aws.ToString(d.Target.Id)
				}
				state := ""
				if d.TargetHealth != nil {
					state = string(d.TargetHealth.State)
				}
				st.TargetHealth = append(st.TargetHealth, fmt.Sprintf("%s: %s %s", tg.color, id, state))
			}
		}
		out = append(out, st)
	}
	return out
}

// buildToECR builds the named services from the working tree and pushes them
// to ECR (one repository per service, immutable tags, scan gate).
func (s *ecsSession) buildToECR(ctx context.Context, services []string) (map[string]string, error) {
	rt, err := docker.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (ECS environments build their images locally before pushing them to ECR; or pass --image SERVICE=REPO@sha256:...)", err)
	}
	defer rt.Close()
	only := *s.cfg
	only.Services = map[string]*config.Service{}
	for _, name := range services {
		only.Services[name] = s.cfg.Services[name]
	}
	built, err := local.BuildImages(ctx, rt, &only, local.NewBuildID(time.Now()), nil, s.m.noteWriter())
	if err != nil {
		return nil, err
	}
	return buildAndPushECR(ctx, &only, s.env, ecrOptions(s.cfg.Environments[s.env].ECS), rt, built, s.m.noteWriter())
}

// ecrOptions maps environments.<env>.ecs.ecr onto the ECR client's options.
func ecrOptions(x *config.ECS) ecr.Options {
	if x == nil || x.ECR == nil {
		return ecr.Options{}
	}
	return ecr.Options{RepositoryPrefix: x.ECR.RepositoryPrefix, FailOnSeverity: x.ECR.FailOnSeverity, LifecycleKeep: x.ECR.LifecycleKeep, KMSKey: x.ECR.KMSKey}
}
