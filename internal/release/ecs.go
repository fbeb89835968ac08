package release

// Environments on platform ecs. AWS runs each deployment (ECS rolling with
// the circuit breaker, CodeDeploy or ECS-native blue/green); the deployment
// controller starts it, follows it in its own phases and records it, as for
// a local environment (deploy.Driven, implemented by internal/platform/ecs).
// Stop, rollback and continue are the controller's requests, here as there.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
		if svc.Static != nil {
			continue // published to S3 and CloudFront (ecs_static.go)
		}
		es := x.Services[name]
		if es == nil {
			es = &config.ECSService{}
		}
		services[name] = ecs.Service{
			ECSService: cmp.Or(es.Service, name), Container: es.Container, Port: svc.Port, Env: svc.Env, Secrets: s.cfg.ECSSecrets(s.env, name),
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

// deployECS records a revision of the environment's images and deploys it.
// ECS pulls images from a registry, so each is deployed by digest: an image
// given pinned (REPO@sha256:...) as it is; from the pipeline (o.Source
// set), an image of this machine's engine, which the execution built, is
// pushed to ECR first; from the command line, a service given no image is
// built from the working tree and pushed.
func (m *Manager) deployECS(ctx context.Context, env string, o DeployOptions) (store.Deployment, error) {
	s := m.openECS(env)
	s.diff = o.Diff
	images := maps.Clone(o.Images)
	if images == nil {
		images = map[string]string{}
	}
	build, push, err := ecsImages(s.cfg, env, images, o.Source != "")
	if err != nil {
		return store.Deployment{}, err
	}
	source := cmp.Or(o.Source, "images")
	sites, err := s.uploadStatic(ctx, o.Source != "", o.Images)
	if err != nil {
		return store.Deployment{}, err
	}
	if len(sites) > 0 && o.Source == "" {
		source = "working tree"
	}
	maps.Copy(images, sites)
	if len(build) > 0 {
		// Build what was not given, push it to ECR, and deploy the scanned digests.
		built, err := s.buildToECR(ctx, build)
		if err != nil {
			return store.Deployment{}, err
		}
		maps.Copy(images, built)
		source = "working tree"
	}
	if len(push) > 0 {
		pushed, err := s.pushToECR(ctx, push, images)
		if err != nil {
			return store.Deployment{}, err
		}
		maps.Copy(images, pushed)
	}
	rev := local.NewRevision(s.cfg, env, images, source)
	if err := s.store.CreateRevision(ctx, rev); err != nil {
		return store.Deployment{}, err
	}
	return s.deploy(ctx, rev, cmp.Or(o.Command, "cutover deploy"), o.Wait, o.Timeout)
}

// ecsImages decides what becomes of each service's image on ECS: pinned by
// digest, it is deployed as it is; given none, it is built (not from the
// pipeline, whose execution built what it deploys); a local image from the
// pipeline is pushed to ECR. Anything else (a tag) is refused.
func ecsImages(cfg *config.Config, env string, images map[string]string, pipeline bool) (build, push []string, err error) {
	for name := range images {
		if _, ok := cfg.Services[name]; !ok {
			return nil, nil, UsageError{fmt.Sprintf("--image %s=...: no service named %q (services: %s)", name, name, strings.Join(cfg.ServiceNames(), ", "))}
		}
		if cfg.Services[name].Static != nil && !pipeline {
			return nil, nil, UsageError{fmt.Sprintf("--image %s=...: service %s is static: on ECS its files (static.dir) are published to S3 and CloudFront, it has no image", name, name)}
		}
	}
	for _, name := range cfg.ServiceNames() {
		if cfg.Services[name].Static != nil {
			delete(images, name) // its files are published instead (uploadStatic)
			continue
		}
		ref := images[name]
		switch {
		case strings.Contains(ref, "@sha256:"):
		case ref == "" && pipeline:
			return nil, nil, fmt.Errorf("service %s has no image built in this execution; environment %s is on ECS, which deploys images by digest", name, env)
		case ref == "":
			build = append(build, name)
		case pipeline && strings.HasPrefix(ref, "sha256:"):
			push = append(push, name)
		case pipeline:
			return nil, nil, fmt.Errorf("service %s: image %s is neither pinned by digest nor built by this execution; environment %s is on ECS, which deploys images by digest (write image: REGISTRY/REPO@sha256:DIGEST)", name, ref, env)
		default:
			return nil, nil, UsageError{fmt.Sprintf("--image %s=%s: environment %s is on ECS, which needs an image pinned by digest (write %s=REGISTRY/REPO@sha256:DIGEST)", name, ref, env, name)}
		}
	}
	return build, push, nil
}

// controller is the deployment controller of the environment on AWS.
func (s *ecsSession) controller(ctx context.Context, timeout time.Duration) (*deploy.Controller, *ecs.Platform, error) {
	p, err := s.platform(ctx, s.m.log())
	if err != nil {
		return nil, nil, err
	}
	driven, err := p.Driven(ecs.DrivenOptionsFor(s.env, s.cfg.Environments[s.env], s.containers()))
	if err != nil {
		return nil, nil, fmt.Errorf("environments.%s: %w", s.env, err)
	}
	return &deploy.Controller{Config: s.cfg, Env: s.env, Driven: driven, Store: s.store, Timeout: timeout,
		Progress: s.m.withSteps(s.cfg.Environments[s.env].Strategy), Log: s.m.log(), Owner: s.m.Actor}, p, nil
}

// deploy runs one deployment of rev through the controller under the
// environment's lease, after following to its end one whose cutover died.
func (s *ecsSession) deploy(ctx context.Context, rev store.Revision, command string, wait bool, timeout time.Duration) (store.Deployment, error) {
	if err := export.StackSecrets(s.cfg, s.env); err != nil {
		return store.Deployment{}, err
	}
	lctx, release, err := deploy.Lock(ctx, s.store, s.cfg.Project, s.env, command, wait)
	if err != nil {
		return store.Deployment{}, err
	}
	defer release()
	ctrl, p, err := s.controller(lctx, timeout)
	if err != nil {
		return store.Deployment{}, err
	}
	if d, err := ctrl.Reconcile(lctx, false); err != nil {
		return store.Deployment{}, fmt.Errorf("following the deployment left by a stopped cutover: %w", err)
	} else if d != nil {
		s.m.note("followed deployment %s, left by a stopped cutover, to its end: %s (%s)", d.ID, d.Status, d.Reason)
		if err := s.activateFollowed(lctx, *d); err != nil {
			return store.Deployment{}, err
		}
	}
	if s.diff {
		for _, name := range s.containers() {
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
	d, err := ctrl.Deploy(lctx, rev)
	if err == nil && d.Status == store.DeploymentSucceeded {
		err = s.activateStatic(lctx, rev)
	}
	return d, err
}

// reconcileECS brings the environment's deployment whose cutover died to
// its end (rolled back when rollback is set); the caller holds the lease.
func (m *Manager) reconcileECS(ctx context.Context, env string, rollback bool) error {
	ctrl, _, err := m.openECS(env).controller(ctx, 5*time.Minute)
	if err != nil {
		return err
	}
	_, err = ctrl.Reconcile(ctx, rollback)
	return err
}

// stopECS asks the controller of the deployment in progress to stop it
// (command "cutover stop") or roll it back ("cutover rollback"): it stops
// the AWS deployment with rollback and records the end. When no cutover
// drives it any more, this command does.
func (m *Manager) stopECS(ctx context.Context, env, command string) (store.Deployment, error) {
	kind := deploy.RequestStop
	if command == "cutover rollback" {
		kind = deploy.RequestRollback
	}
	d, err := deploy.Request(ctx, m.Store, m.Config.Project, env, kind, m.Actor)
	if err != nil {
		return d, err
	}
	return m.finishRequested(ctx, env, d, command)
}

// promoteECS asks the controller of the deployment in progress to end each
// wait AWS lets it end as the deployment reaches it: CodeDeploy's wait for a
// continue and termination wait (ContinueDeployment READY_WAIT and
// TERMINATION_WAIT), ECS-native's pause before production traffic
// (ContinueServiceDeployment). It is refused, saying what AWS allows and
// when, where AWS has no API for what the deployment does now: the steps of
// a linear or canary shift, an ECS bake time, a rolling update.
func (m *Manager) promoteECS(ctx context.Context, env string) (store.Deployment, error) {
	d, err := m.Store.ActiveDeployment(ctx, m.Config.Project, env)
	if errors.Is(err, store.ErrNotFound) {
		return d, fmt.Errorf("no deployment of %s/%s is in progress", m.Config.Project, env)
	} else if err != nil {
		return d, err
	}
	phase, err := deploy.ParsePhase(d.Phase)
	if err != nil {
		return d, err
	}
	o := ecs.DrivenOptionsFor(env, m.Config.Environments[env], m.Config.ServiceNames())
	if err := ecs.PromoteRefusal(o, phase); err != nil {
		return d, UsageError{fmt.Sprintf("cannot promote deployment %s of %s now (it is in %s): %v", d.ID, env, d.Phase, err)}
	}
	return deploy.Request(ctx, m.Store, m.Config.Project, env, deploy.RequestPromote, m.Actor)
}

// lookECS follows a deployment of env whose cutover died, for `status`:
// under the environment's lease, taken without waiting (a live cutover that
// holds it follows the deployment itself). AWS is read once, bounded in
// time: what it reports is recorded, and the deployment's end when AWS
// says it ended; nothing is started, stopped or waited for (a 16-minute
// deployment is followed to its end by the next deploy, stop or rollback,
// or looked at again by the next status).
func (m *Manager) lookECS(ctx context.Context, env string) error {
	if _, err := m.Store.ActiveDeployment(ctx, m.Config.Project, env); err != nil {
		return nil // nothing in progress (or nothing readable: fromStore says)
	}
	lctx, release, err := deploy.Lock(ctx, m.Store, m.Config.Project, env, "cutover status", false)
	if errors.Is(err, store.ErrLeaseHeld) {
		return nil // a live cutover follows it
	} else if err != nil {
		return err
	}
	defer release()
	cctx, cancel := context.WithTimeout(lctx, 10*time.Second)
	defer cancel()
	ctrl, _, err := m.openECS(env).controller(cctx, 5*time.Minute)
	if err != nil {
		return err
	}
	ctrl.Progress = nil // status renders the recorded state, not the controller's lines
	// A deployment's static sites are switched by the command that records
	// its success (deploy: activateFollowed), never by status.
	ctrl.SuccessActs = len(staticNames(m.Config)) > 0
	d, err := ctrl.Look(cctx)
	if err == nil && d != nil && d.Status != store.DeploymentInProgress {
		m.note("followed deployment %s, left by a stopped cutover, to its end: %s", d.ID, d.Status)
	}
	return err
}

// continueECS asks the controller of the deployment in progress to let it
// shift production traffic (CodeDeploy's ContinueDeployment, ECS's
// ContinueServiceDeployment on the PAUSE hook).
func (m *Manager) continueECS(ctx context.Context, env string) (store.Deployment, error) {
	return deploy.Request(ctx, m.Store, m.Config.Project, env, deploy.RequestContinue, m.Actor)
}

// rollbackECS rolls back a deployment in progress, or else redeploys the
// revision that ran before the last completed deployment (or to).
func (m *Manager) rollbackECS(ctx context.Context, env, to string, timeout time.Duration) (store.Deployment, error) {
	if _, err := m.Store.ActiveDeployment(ctx, m.Config.Project, env); err == nil && to == "" {
		return m.stopECS(ctx, env, "cutover rollback")
	}
	rev, err := m.rollbackTarget(ctx, env, to)
	if err != nil {
		return store.Deployment{}, err
	}
	m.note("redeploying the previous revision %s on ECS", rev.ID)
	return m.openECS(env).deploy(ctx, rev, "cutover rollback", false, timeout)
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
		if cfg.Services[name].Static != nil {
			out = append(out, s.staticStatus(cctx, name))
			continue
		}
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
	built, err := s.m.buildImages(ctx, rt, s.only(services), nil)
	if err != nil {
		return nil, err
	}
	return buildAndPushECR(ctx, s.only(services), s.env, ecrOptions(s.cfg.Environments[s.env].ECS), rt, built, s.m.noteWriter())
}

// pushToECR pushes the named services' local images (image IDs of this
// machine's engine, as the pipeline built them) to ECR and returns their digests.
func (s *ecsSession) pushToECR(ctx context.Context, services []string, images map[string]string) (map[string]string, error) {
	rt, err := docker.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (the execution's images are pushed to ECR from this machine's engine)", err)
	}
	defer rt.Close()
	given := map[string]string{}
	for _, name := range services {
		given[name] = images[name]
	}
	return buildAndPushECR(ctx, s.only(services), s.env, ecrOptions(s.cfg.Environments[s.env].ECS), rt, given, s.m.noteWriter())
}

// only is the session's configuration with just the named services.
func (s *ecsSession) only(services []string) *config.Config {
	only := *s.cfg
	only.Services = map[string]*config.Service{}
	for _, name := range services {
		only.Services[name] = s.cfg.Services[name]
	}
	return &only
}

// ecrOptions maps environments.<env>.ecs.ecr onto the ECR client's options.
func ecrOptions(x *config.ECS) ecr.Options {
	if x == nil || x.ECR == nil {
		return ecr.Options{}
	}
	return ecr.Options{RepositoryPrefix: x.ECR.RepositoryPrefix, FailOnSeverity: x.ECR.FailOnSeverity, LifecycleKeep: x.ECR.LifecycleKeep, KMSKey: x.ECR.KMSKey}
}
