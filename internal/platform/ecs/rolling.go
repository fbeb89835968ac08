package ecs

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
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
}

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
