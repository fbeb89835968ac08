package release

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// Stop asks the running deployment's controller to stop and roll back, and
// waits until it has; when no live controller holds the lease, Stop takes
// over and rolls it back itself. The deployment is returned as it ended.
func (m *Manager) Stop(ctx context.Context, env string) (store.Deployment, error) {
	if _, err := m.environment(env); err != nil {
		return store.Deployment{}, err
	}
	if isECS(m.Config, env) {
		return m.stopECS(ctx, env, "cutover stop")
	}
	d, err := deploy.Request(ctx, m.Store, m.Config.Project, env, deploy.RequestStop, m.Actor)
	if err != nil {
		return d, err
	}
	return m.finishRequested(ctx, env, d, "cutover stop")
}

// Continue lets a deployment waiting for approval shift production
// traffic. It returns once the request is recorded; the controller acts on
// it within a tick.
func (m *Manager) Continue(ctx context.Context, env string) (store.Deployment, error) {
	if _, err := m.environment(env); err != nil {
		return store.Deployment{}, err
	}
	if isECS(m.Config, env) {
		return m.continueECS(ctx, env)
	}
	return deploy.Request(ctx, m.Store, m.Config.Project, env, deploy.RequestContinue, m.Actor)
}

// Promote asks the running deployment to skip its remaining steps and
// waits: all production traffic moves to the new set at once and the
// deployment finishes. Alarms and the termination wait's instant rollback
// are given up for this deployment; health checks still apply. It returns
// once the request is recorded.
func (m *Manager) Promote(ctx context.Context, env string) (store.Deployment, error) {
	if _, err := m.environment(env); err != nil {
		return store.Deployment{}, err
	}
	if isECS(m.Config, env) {
		return m.promoteECS(ctx, env)
	}
	return deploy.Request(ctx, m.Store, m.Config.Project, env, deploy.RequestPromote, m.Actor)
}

// Rollback: with o.To, that revision of the environment is deployed again
// through its strategy, without a build. Without it, a deployment in
// progress (including its termination wait) flips back to the original set
// at once and is returned as it ended; with none in progress, the revision
// that ran before the last completed deployment is deployed again. A
// redeployment that does not succeed is returned with a DeploymentFailed error.
func (m *Manager) Rollback(ctx context.Context, env string, o RollbackOptions) (store.Deployment, error) {
	if _, err := m.environment(env); err != nil {
		return store.Deployment{}, err
	}
	timeout := orDefault(o.Timeout, 5*time.Minute)
	if isECS(m.Config, env) {
		return finished(m.rollbackECS(ctx, env, o.To, timeout))
	}
	if o.To == "" {
		if d, err := deploy.Request(ctx, m.Store, m.Config.Project, env, deploy.RequestRollback, m.Actor); err == nil {
			return m.finishRequested(ctx, env, d, "cutover rollback")
		}
	}
	rev, err := m.rollbackTarget(ctx, env, o.To)
	if err != nil {
		return store.Deployment{}, err
	}
	m.note("redeploying the previous revision %s (no rebuild)", rev.ID)
	return m.redeploy(ctx, env, rev, "cutover rollback", false, timeout)
}

// rollbackTarget is the revision a rollback deploys: to, or else the one
// that ran before the last completed deployment (PreviousRevision, the one
// source of "previous" for every platform).
func (m *Manager) rollbackTarget(ctx context.Context, env, to string) (store.Revision, error) {
	project := m.Config.Project
	if to != "" {
		return m.revisionOf(ctx, env, to)
	}
	last, err := m.Store.LastSucceededDeployment(ctx, project, env)
	if errors.Is(err, store.ErrNotFound) {
		return store.Revision{}, fmt.Errorf("%s/%s has no completed deployment to roll back from", project, env)
	} else if err != nil {
		return store.Revision{}, err
	}
	if last.PreviousRevision == "" {
		return store.Revision{}, fmt.Errorf("deployment %s (revision %s) was the first in %s/%s: there is no previous revision to roll back to", last.ID, last.Revision, project, env)
	}
	return m.Store.GetRevision(ctx, last.PreviousRevision)
}

// revisionOf is a stored revision of env, refused when it belongs elsewhere.
func (m *Manager) revisionOf(ctx context.Context, env, id string) (store.Revision, error) {
	rev, err := m.Store.GetRevision(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && rev.Project != m.Config.Project {
		// Another project's is answered as a missing one: the store may
		// hold other projects', and their names are theirs.
		return store.Revision{}, UsageError{fmt.Sprintf("revision %s: no such revision of %s/%s (see `cutover history %s`)", id, m.Config.Project, env, env)}
	} else if err != nil {
		return rev, err
	}
	if rev.Project != m.Config.Project || rev.Environment != env {
		return store.Revision{}, UsageError{fmt.Sprintf("revision %s belongs to %s/%s, not %s/%s: revisions are per environment (see `cutover history %s`)", id, rev.Project, rev.Environment, m.Config.Project, env, env)}
	}
	return rev, nil
}

// finishRequested waits for the controller to act on a stop or rollback
// request; when no live controller holds the lease, it takes over and
// rolls the deployment back itself.
func (m *Manager) finishRequested(ctx context.Context, env string, d store.Deployment, command string) (store.Deployment, error) {
	for {
		lctx, release, err := deploy.Lock(ctx, m.Store, m.Config.Project, env, command, false)
		if err == nil {
			// Nobody drives it: reconcile it here, as a rollback.
			err := m.rollBackOrphan(lctx, env)
			release()
			if err != nil {
				return d, err
			}
			break
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			return d, err
		}
		got, err := m.Store.GetDeployment(ctx, d.ID)
		if err != nil {
			return d, err
		}
		if got.Status != store.DeploymentInProgress {
			break
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return m.Store.GetDeployment(ctx, d.ID)
}

func (m *Manager) rollBackOrphan(ctx context.Context, env string) error {
	if isECS(m.Config, env) {
		return m.reconcileECS(ctx, env, true)
	}
	rt, err := m.runtime(ctx)
	if err != nil {
		return err
	}
	pc, err := m.startedProxy(ctx)
	if err != nil {
		return err
	}
	_, err = m.controller(m.Config, env, rt, pc, 5*time.Minute).Reconcile(ctx, true)
	return err
}

// Request records a request (deploy.RequestStop, RequestContinue,
// RequestRollback or RequestPromote) for the controller of env's running
// deployment and returns at once: the asynchronous form of Stop, Continue,
// Rollback and Promote, for the API. The controller acts within a tick;
// a deployment whose controller died is rolled back by the next command
// that looks at the environment. On ECS the controller passes stop,
// rollback and continue on to AWS.
func (m *Manager) Request(ctx context.Context, env, kind string) (store.Deployment, error) {
	if _, err := m.environment(env); err != nil {
		return store.Deployment{}, err
	}
	switch kind {
	case deploy.RequestStop, deploy.RequestContinue, deploy.RequestRollback, deploy.RequestPromote:
	default:
		return store.Deployment{}, fmt.Errorf("%q is not a deployment request", kind)
	}
	if isECS(m.Config, env) && kind == deploy.RequestPromote {
		return m.promoteECS(ctx, env) // refused where AWS cannot skip what the deployment waits for
	}
	// On ECS too: the deployment's controller passes the request on to AWS.
	return deploy.Request(ctx, m.Store, m.Config.Project, env, kind, m.Actor)
}

// As is m acting for actor (an API token's name, say), sharing m's
// configuration, store and connections.
func (m *Manager) As(actor string) *Manager {
	x := *m
	x.conns = m.connections()
	x.Actor = actor
	x.closeStore = false
	return &x
}
