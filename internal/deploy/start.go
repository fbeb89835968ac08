package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// NewDeploymentID returns a sortable, unique deployment id.
func NewDeploymentID(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return "d-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func otherColor(c string) string {
	if c == "blue" {
		return "green"
	}
	return "blue"
}

// Deploy records a new deployment of rev and drives it to the end. The
// caller holds the environment's lease (Lock) and has reconciled.
func (c *Controller) Deploy(ctx context.Context, rev store.Revision) (store.Deployment, error) {
	if c.Driven != nil {
		return c.deployDriven(ctx, rev)
	}
	obs, err := c.Platform.Observe(ctx)
	if err != nil {
		return store.Deployment{}, err
	}
	old := obs.Routing.Serving()
	if old == "" {
		old = c.recordedServing(ctx, obs)
	}
	prevRev := ""
	if set, ok := obs.Set(old); ok {
		prevRev = set.Revision
	} else {
		old = ""
	}
	return c.start(ctx, rev, prevRev, State{OldColor: old, NewColor: otherColor(old)})
}

// recordedServing is the color the store says serves the environment
// (the last deployment's end: EnvState, written with it), when that set
// still runs the recorded revision, or "". It stands in when the load
// balancer routes nothing, as after its state file was lost or removed
// (what its error asks when the file is damaged): the set was taken for
// none, the deployment went into the other color, and the set that served
// was left running beside it, unrouted, with no previous revision to roll
// back to. Taken as the original set, its routes come back with the test
// traffic step and it is stopped when the deployment ends.
func (c *Controller) recordedServing(ctx context.Context, obs Observed) string {
	es, err := c.Store.GetEnvState(ctx, c.Config.Project, c.Env)
	if err != nil || es.Status != "up" || es.Revision == "" {
		return ""
	}
	var details struct {
		Color string `json:"color"`
	}
	if json.Unmarshal(es.Details, &details) != nil {
		return ""
	}
	if set, ok := obs.Set(details.Color); ok && set.Revision == es.Revision {
		return details.Color
	}
	return ""
}

// start records a deployment of rev replacing prevRev, with the driver's
// first state st, and drives it to the end.
func (c *Controller) start(ctx context.Context, rev store.Revision, prevRev string, st State) (store.Deployment, error) {
	st.PhaseStarted = time.Now().UTC()
	// The log position from which continue/stop/rollback requests count.
	seq, err := c.Store.AppendEvent(ctx, store.Event{Project: c.Config.Project, Environment: c.Env, Kind: "deployment.requested",
		Message: fmt.Sprintf("deploy revision %s", rev.ID)})
	if err != nil {
		return store.Deployment{}, err
	}
	st.RequestSeq = seq
	phase := PhasePending
	strategy := c.env().Strategy.Type
	if strategy == config.StrategyRolling {
		phase = PhaseRolling
	}
	d := store.Deployment{
		ID: NewDeploymentID(time.Now()), Project: c.Config.Project, Environment: c.Env,
		Revision: rev.ID, PreviousRevision: prevRev, Strategy: strategy,
		Phase: phase.String(), Status: "in_progress", Data: mustJSON(st), Owner: c.Owner,
	}
	if err := c.Store.CreateDeployment(ctx, d); err != nil {
		return d, err
	}
	if d, err = c.Store.GetDeployment(ctx, d.ID); err != nil {
		return d, err
	}
	err = c.Run(ctx, &d)
	return d, err
}

// Reconcile finds a deployment whose controller died (the caller now holds
// the lease, so nobody drives it) and brings it to an end: one in the
// termination wait is finished (or flipped back when rollback is true);
// anything earlier rolls back, since its alarms and hooks can no longer be
// trusted. It returns nil when there was nothing to reconcile.
func (c *Controller) Reconcile(ctx context.Context, rollback bool) (*store.Deployment, error) {
	d, err := c.Store.ActiveDeployment(ctx, c.Config.Project, c.Env)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	phase, err := ParsePhase(d.Phase)
	if err != nil {
		return nil, err
	}
	st, err := loadState(&d)
	if err != nil {
		return nil, err
	}
	who := "the cutover process that drove it"
	if d.Owner != "" {
		who += " (" + d.Owner + ")"
	}
	if c.Driven != nil {
		return &d, c.reconcileDriven(ctx, &d, st, rollback, who)
	}
	switch {
	case phase == PhaseRollingBack:
		// keep rolling back
	case (phase == PhaseTerminationWait || phase == PhaseTerminating) && !rollback:
		phase = PhaseTerminating
		d.Reason = fmt.Sprintf("%s stopped during %s; finished by the next command", who, d.Phase)
	default:
		st.Cause = Failed.String()
		if rollback {
			st.Cause = Rollback.String()
		}
		d.Reason = fmt.Sprintf("%s stopped during %s; rolled back", who, d.Phase)
		phase = PhaseRollingBack
	}
	if _, err := c.Store.AppendEvent(ctx, store.Event{Project: c.Config.Project, Environment: c.Env, Kind: "deployment.reconciled",
		Message: fmt.Sprintf("deployment %s: %s", d.ID, d.Reason)}); err != nil {
		return nil, err
	}
	d.Phase = phase.String()
	d.Owner = c.Owner
	st.PhaseStarted = time.Now().UTC()
	// Requests sent to the dead controller are void.
	if evs, err := c.Store.ListEvents(ctx, store.EventFilter{Project: c.Config.Project, Environment: c.Env, AfterSeq: st.RequestSeq}); err == nil && len(evs) > 0 {
		st.RequestSeq = evs[len(evs)-1].Seq
	}
	if err := c.save(ctx, &d, st); err != nil {
		return nil, err
	}
	err = c.Run(ctx, &d)
	return &d, err
}

// EndForDown records the deployment of env that a killed controller left
// in progress as stopped, before `cutover down` removes the environment's
// routes and tasks: the caller holds the environment's lease, so nobody
// drives it. Left in progress, the next command that looked at the
// environment (`cutover status`) reconciled it and rolled it back, starting
// the original set again and routing production to it: the environment came
// back up after `down`. It returns nil when no deployment was in progress.
func EndForDown(ctx context.Context, s *store.Store, project, env, who string) (*store.Deployment, error) {
	var ended *store.Deployment
	err := s.Tx(ctx, func(tx *store.Tx) error {
		d, err := tx.ActiveDeployment(ctx, project, env)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		owner := "the cutover process that drove it"
		if d.Owner != "" {
			owner += " (" + d.Owner + ")"
		}
		d.Reason = fmt.Sprintf("%s stopped during %s; the environment was then taken down by `cutover down` (%s)", owner, d.Phase, who)
		d.Phase = PhaseRolledBack.String()
		d.Status = store.DeploymentStopped
		d.TrafficPercent = 0
		if d.Generation, err = tx.UpdateDeployment(ctx, d, d.Generation); err != nil {
			return fmt.Errorf("ending deployment %s before taking %s/%s down: %w", d.ID, project, env, err)
		}
		if _, err := tx.AppendEvent(ctx, store.Event{Project: project, Environment: env, Kind: "deployment." + d.Status,
			Message: fmt.Sprintf("deployment %s: %s", d.ID, d.Reason)}); err != nil {
			return err
		}
		ended = &d
		return nil
	})
	return ended, err
}

// Request asks the controller of the environment's active deployment to
// continue, stop or roll back, through the event log it polls.
func Request(ctx context.Context, s *store.Store, project, env, kind, who string) (store.Deployment, error) {
	d, err := s.ActiveDeployment(ctx, project, env)
	if errors.Is(err, store.ErrNotFound) {
		return d, fmt.Errorf("no deployment of %s/%s is in progress", project, env)
	}
	if err != nil {
		return d, err
	}
	if kind == RequestContinue {
		// A continue is read by the wait it ends: one sent earlier would
		// end the wait for `cutover continue` before anyone saw the new set
		// there. AWS refuses one itself (a driven deployment, st.Cloud).
		var st State
		if json.Unmarshal(d.Data, &st) == nil && st.Cloud == nil && d.Phase != PhaseReadyWait.String() {
			return d, fmt.Errorf("deployment %s of %s/%s is in phase %s, not waiting for `cutover continue` (it waits in phase ReadyWait): run it once `cutover status %s` shows it waiting",
				d.ID, project, env, d.Phase, env)
		}
	}
	_, err = s.AppendEvent(ctx, store.Event{Project: project, Environment: env, Kind: kind, Message: who})
	return d, err
}
