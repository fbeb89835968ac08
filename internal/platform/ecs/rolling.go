package ecs

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/store"
)

// RolloutPhase is where an ECS rolling deployment stands.
type RolloutPhase string

const (
	RolloutInProgress RolloutPhase = "in_progress"
	RolloutCompleted  RolloutPhase = "completed"
	RolloutFailed     RolloutPhase = "failed"      // ECS gave up and did not roll back
	RolloutRolledBack RolloutPhase = "rolled_back" // the circuit breaker or an alarm made ECS roll back: a failure
)

// Rollout is the state of one ECS deployment, decided from DescribeServices.
type Rollout struct {
	Phase        RolloutPhase `json:"phase"`
	DeploymentID string       `json:"deployment_id"`
	Reason       string       `json:"reason,omitempty"`
	Desired      int          `json:"desired"`
	Running      int          `json:"running"`
	Pending      int          `json:"pending"`
	FailedTasks  int          `json:"failed_tasks"`
	// News are the service events and stopped-task reasons ECS gave since
	// the previous poll, for the deploying user to see as they happen.
	News []string `json:"news,omitempty"`
}

// Done says whether waiting is over.
func (r Rollout) Done() bool { return r.Phase != RolloutInProgress }

// Err is nil only for a completed rollout: CI must see a rollback as a failure.
func (r Rollout) Err() error {
	switch r.Phase {
	case RolloutCompleted, RolloutInProgress:
		return nil
	case RolloutRolledBack:
		return fmt.Errorf("ecs: deployment %s failed and ECS rolled back to the previous task definition: %s", r.DeploymentID, r.Reason)
	}
	return fmt.Errorf("ecs: deployment %s failed: %s", r.DeploymentID, r.Reason)
}

// DecideRollout is the pure decision on deployment id of svc. A deployment
// that is no longer listed was replaced: by an ECS rollback when the primary
// deployment runs another task definition.
func DecideRollout(svc types.Service, id, taskDef string) Rollout {
	r := Rollout{Phase: RolloutInProgress, DeploymentID: id}
	var mine, primary *types.Deployment
	for i := range svc.Deployments {
		d := &svc.Deployments[i]
		if aws.ToString(d.Id) == id {
			mine = d
		}
		if aws.ToString(d.Status) == "PRIMARY" {
			primary = d
		}
	}
	if mine == nil {
		r.Phase = RolloutFailed
		r.Reason = "the deployment is no longer listed; another deployment replaced it"
		if primary != nil && aws.ToString(primary.TaskDefinition) != taskDef {
			r.Phase = RolloutRolledBack
			r.Reason = "the deployment is gone and the service runs " + aws.ToString(primary.TaskDefinition) + " again"
		}
		return r
	}
	r.Desired, r.Running, r.Pending, r.FailedTasks = int(mine.DesiredCount), int(mine.RunningCount), int(mine.PendingCount), int(mine.FailedTasks)
	r.Reason = aws.ToString(mine.RolloutStateReason)
	switch mine.RolloutState {
	case types.DeploymentRolloutStateCompleted:
		r.Phase = RolloutCompleted
	case types.DeploymentRolloutStateFailed:
		r.Phase = RolloutFailed
		if primary != nil && primary != mine {
			r.Phase = RolloutRolledBack
		}
	case types.DeploymentRolloutStateInProgress:
		if primary != mine {
			// ECS started rolling back: a new primary deployment replaces ours.
			r.Phase = RolloutRolledBack
			if r.Reason == "" {
				r.Reason = "ECS started another deployment of " + aws.ToString(primary.TaskDefinition)
			}
		}
	case "":
		// Services without the circuit breaker report no rollout state:
		// judge by counts, as the services-stable waiter does.
		if primary == mine && len(svc.Deployments) == 1 && r.Running == r.Desired && r.Pending == 0 {
			r.Phase = RolloutCompleted
		}
	default:
		r.Phase = RolloutFailed
		r.Reason = fmt.Sprintf("unknown rollout state %q from ECS: upgrade cutover", mine.RolloutState)
	}
	return r
}

// RollingOptions are the ECS-native settings of a rolling deployment.
type RollingOptions struct {
	Alarms  []string      // CloudWatch alarm names that roll back the deployment
	Timeout time.Duration // 0: wait until ctx ends
}

// DeployRolling registers the revision's task definition of one service whose
// ECS service uses the ECS deployment controller, starts a rolling
// deployment with the circuit breaker (rollback on) and the alarms, and
// waits for its outcome, telling progress each poll. A rollback by ECS is
// returned as an error.
func (p *Platform) DeployRolling(ctx context.Context, service string, rev store.Revision, o RollingOptions, progress func(Rollout)) (Rollout, error) {
	s, ok := p.o.Services[service]
	if !ok {
		return Rollout{}, fmt.Errorf("ecs: no service %s in this environment", service)
	}
	cfg := &types.DeploymentConfiguration{
		DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true},
	}
	if len(o.Alarms) > 0 {
		cfg.Alarms = &types.DeploymentAlarms{AlarmNames: o.Alarms, Enable: true, Rollback: true}
	}
	return p.updateService(ctx, service, s, rev, "rolling", cfg, nil, o.Alarms, o.Timeout, progress)
}

// updateService registers the revision's task definition of service (s),
// starts the deployment UpdateService with cfg (and lbs, when given)
// describes, and waits for its outcome.
func (p *Platform) updateService(ctx context.Context, service string, s Service, rev store.Revision, kind string,
	cfg *types.DeploymentConfiguration, lbs []types.LoadBalancer, alarms []string, timeout time.Duration, progress func(Rollout)) (Rollout, error) {
	td, err := p.RegisterTaskDefinition(ctx, service, rev)
	if err != nil {
		return Rollout{}, err
	}
	in := &ecs.UpdateServiceInput{
		Cluster:                 &p.o.Cluster,
		Service:                 &s.ECSService,
		TaskDefinition:          &td,
		DeploymentConfiguration: cfg,
		LoadBalancers:           lbs,
	}
	if s.DesiredCount > 0 {
		in.DesiredCount = aws.Int32(int32(s.DesiredCount))
	}
	out, err := p.c.ECS.UpdateService(ctx, in)
	if err != nil {
		return Rollout{}, explain(err, "service "+s.ECSService+" in cluster "+p.o.Cluster)
	}
	p.o.Log.Info("started "+kind+" deployment", "service", service, "task_definition", td)
	return p.waitDeployment(ctx, service, out.Service, td, alarms, timeout, progress)
}

// waitDeployment waits for the primary deployment of svc (as UpdateService
// returned it) to finish. When alarms are named it reads them each poll: ECS
// rolls back on its own when they fire (the deployment configuration says
// so), but only after its own evaluation; if one is in ALARM first, cutover
// rolls back itself with UpdateService to the previous task definition and
// reports the deployment as rolled back.
func (p *Platform) waitDeployment(ctx context.Context, service string, svc *types.Service, td string, alarms []string, timeout time.Duration, progress func(Rollout)) (Rollout, error) {
	s := p.o.Services[service]
	var id, previous string
	since := p.o.Clock.Now()
	for _, d := range svc.Deployments {
		switch aws.ToString(d.Status) {
		case "PRIMARY":
			id = aws.ToString(d.Id)
			if d.CreatedAt != nil {
				since = *d.CreatedAt
			}
		case "ACTIVE":
			previous = aws.ToString(d.TaskDefinition)
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var last Rollout
	news := newActivity(since)
	err := p.poll(ctx, func() (bool, error) {
		svc, err := p.describe(ctx, service)
		if err != nil {
			return false, err
		}
		last = DecideRollout(svc, id, td)
		last.News = news.events(svc)
		if last.Phase != RolloutCompleted {
			// Why new tasks stopped: what the user needs while it goes wrong.
			stopped, err := p.stopped(ctx, service, id, news)
			if err != nil {
				return false, err
			}
			last.News = append(last.News, stopped...)
		}
		if !last.Done() && len(alarms) > 0 {
			states, err := p.AlarmStates(ctx, alarms)
			if err != nil {
				return false, err
			}
			if a, firing := FiringAlarm(states); firing {
				last.Phase, last.Reason = RolloutRolledBack, "alarm "+a.Name+" is in ALARM: "+a.Reason
				if previous != "" {
					if _, err := p.c.ECS.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: &p.o.Cluster, Service: &s.ECSService, TaskDefinition: &previous}); err != nil {
						return false, explain(err, "rolling back service "+s.ECSService+" to "+previous)
					}
					last.Reason += "; rolled back to " + previous
				}
				p.o.Log.Warn("alarm fired during deployment", "service", service, "alarm", a.Name, "previous", previous)
			}
		}
		if progress != nil {
			progress(last)
		}
		return last.Done(), nil
	})
	if err != nil {
		return last, fmt.Errorf("ecs: waiting for deployment %s of service %s: %w", id, s.ECSService, err)
	}
	return last, last.Err()
}

// poll calls check until it is done, with a delay doubling from
// PollInterval up to MaxPollDelay.
func (p *Platform) poll(ctx context.Context, check func() (bool, error)) error {
	delay := p.o.PollInterval
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.o.Clock.After(delay):
		}
		delay = min(delay*2, p.o.MaxPollDelay)
	}
}
