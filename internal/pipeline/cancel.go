package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
)

// RequestCancel asks execution id to stop, on behalf of who: a queued
// execution (nobody runs it yet) ends cancelled at once; a running or
// waiting one gets a CancelEvent that its runner reads within Engine.Poll:
// commands are killed, an approval stops waiting, and a deployment in
// progress is stopped and rolled back the way `cutover stop` does it.
// It looks and asks in one transaction, so a cancel is never recorded for
// an execution that ended meanwhile (a recovering daemon reads the cancels
// of what it resumes in the transaction that ends it: MarkResumed). An
// execution that was resumed names its resumption, the one to cancel; one
// still active whose resumption is queued (its recovering daemon was killed
// before MarkResumed) passes the cancel on to it, which another daemon may
// already run.
// It returns the execution as it was when asked.
func RequestCancel(ctx context.Context, s *store.Store, id, who string) (store.Execution, error) {
	var x store.Execution
	err := s.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if x, err = tx.GetExecution(ctx, id); err != nil {
			return err
		}
		if !store.ExecutionActive(x.Status) {
			err := fmt.Errorf("execution %s already %s", x.ID, x.Status)
			// The resumption to name is the one that runs: a resumption
			// may have been resumed in its turn, or have ended.
			if rs, rerr := resumptions(ctx, tx, x.ID); rerr == nil && len(rs) > 0 {
				r := rs[len(rs)-1]
				if store.ExecutionActive(r.Status) {
					err = fmt.Errorf("%w; it was resumed as execution %s: cancel that one (cutover cancel %s)", err, r.ID, r.ID)
				} else {
					err = fmt.Errorf("%w; it was resumed as execution %s, already %s too", err, r.ID, r.Status)
				}
			}
			return err
		}
		if err := cancelIn(ctx, tx, x, who); err != nil {
			return err
		}
		// A daemon killed between queueing x's resumption and marking x
		// left x active: the resumption, which another daemon may already
		// run, is x's work, and is cancelled with it.
		return passOnCancel(ctx, tx, x.ID, who)
	})
	return x, err
}

// resumptions returns the resumption of execution id, the resumption of
// that one if it was resumed in its turn, and so on.
func resumptions(ctx context.Context, tx *store.Tx, id string) ([]store.Execution, error) {
	var rs []store.Execution
	for len(rs) < 100 { // each is newer than the one it resumes; bounded all the same
		next, err := tx.DeliveryExecution(ctx, store.Delivery{Source: ResumeSource, ID: id})
		if errors.Is(err, store.ErrNotFound) {
			return rs, nil
		}
		if err != nil {
			return rs, err
		}
		r, err := tx.GetExecution(ctx, next)
		if err != nil {
			return rs, err
		}
		rs = append(rs, r)
		id = r.ID
	}
	return rs, nil
}

// passOnCancel asks, inside tx, every active resumption of execution id
// (resumptions) to stop on behalf of who.
func passOnCancel(ctx context.Context, tx *store.Tx, id, who string) error {
	rs, err := resumptions(ctx, tx, id)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if store.ExecutionActive(r.Status) {
			if err := cancelIn(ctx, tx, r, who); err != nil {
				return err
			}
		}
	}
	return nil
}

// cancelIn asks active execution x to stop inside tx (RequestCancel).
func cancelIn(ctx context.Context, tx *store.Tx, x store.Execution, who string) error {
	if _, err := tx.AppendEvent(ctx, store.Event{Project: x.Project, Environment: EventScope(x.ID), Kind: CancelEvent, Message: who}); err != nil {
		return err
	}
	if x.Status != store.ExecutionQueued {
		return nil // its runner reads the event
	}
	x.Status, x.Error = store.ExecutionCancelled, "cancelled before it started by "+who
	if strings.HasPrefix(who, SupersededPrefix) { // passed on by endCancelled
		x.Status, x.Error = store.ExecutionSuperseded, who+" before it started"
	}
	_, err := tx.UpdateExecution(ctx, x, x.Generation)
	return err
}

// ResumeSource is the delivery source of an interrupted execution's
// resumption, whose ID is the interrupted execution's: queued once, and
// found from the execution it resumes.
const ResumeSource = "resume"

// cancelRequest returns the errCancelled error of a cancel of the
// execution found in the store, or nil (also when the store cannot be read:
// the next look tries again).
func cancelRequest(ctx context.Context, s *store.Store, project, id string) error {
	ev, err := cancelEvent(ctx, s.ListEvents, project, id)
	if err != nil || ev == nil {
		return nil
	}
	return cancelError(*ev)
}

// cancelEvent returns the first cancel of execution id, or nil; list is a
// store's or a transaction's ListEvents.
func cancelEvent(ctx context.Context, list func(context.Context, store.EventFilter) ([]store.Event, error), project, id string) (*store.Event, error) {
	evs, err := list(ctx, store.EventFilter{Project: project, Environment: EventScope(id)})
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if ev.Kind == CancelEvent {
			return &ev, nil
		}
	}
	return nil, nil
}

func cancelError(ev store.Event) error {
	return fmt.Errorf("%w by `cutover cancel`%s", errCancelled, prefixed(" ", ev.Message))
}

// endCancelled records interrupted execution x (read at generation gen) as
// ended by cancel ev, inside tx, and passes the cancel on to the resumption
// a recovering daemon queued for it, if there is one still active: it is
// x's work, and the cancel was asked before x ended.
func endCancelled(ctx context.Context, tx *store.Tx, x store.Execution, gen int64, ev store.Event) error {
	x.Status, x.Error = store.ExecutionCancelled, short.Line(cancelError(ev).Error())
	if strings.Contains(x.Error, SupersededPrefix) {
		x.Status = store.ExecutionSuperseded
	}
	if _, err := tx.UpdateExecution(ctx, x, gen); err != nil {
		return err
	}
	return passOnCancel(ctx, tx, x.ID, ev.Message)
}

// watchCancel ends the actions' context, with the cancel as its cause, as
// soon as a cancel of the execution is in the store. It returns when ctx
// ends.
func (r *run) watchCancel(ctx context.Context, stop context.CancelCauseFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.e.Poll):
		}
		if err := r.cancelled(ctx); err != nil && ctx.Err() == nil {
			stop(err)
			return
		}
	}
}

// ownerKey is the context key of the execution a deployment is made for.
type ownerKey struct{}

// deployFor is what a deploy action's context carries: the execution and
// who caused it (Trigger.Author and the trigger's kind).
type deployFor struct{ id, author, kind string }

// OwnerTag names the execution that ctx deploys for ("execution x-…"), or
// is "" outside a deploy action. A Deployer records it in the deployment's
// owner, which is how a cancel of the execution finds its deployment.
func OwnerTag(ctx context.Context) string {
	f, _ := ctx.Value(ownerKey{}).(deployFor)
	if f.id == "" {
		return ""
	}
	return "execution " + f.id
}

// DeployOwner is the owner a Deployer records on the deployment ctx makes,
// given the process's own, local ("alice (pid 42 on vm)"). Outside a deploy
// action it is local. In one, the execution's tag follows (OwnerTag), and
// whoever caused the execution — a webhook's sender, the API token that
// triggered it, "schedule" — leads, so history names them as the actor
// rather than the OS user the daemon runs as, who stays named after "as":
//
//	octocat (pid 42 on vm as cutover, push), execution x-20261203-101500-ab12
//
// The author comes from outside (a webhook payload): it is cut to a short
// name of letters, digits and . _ @ - so it cannot pose as another
// execution's tag or as a process.
func DeployOwner(ctx context.Context, local string) string {
	f, _ := ctx.Value(ownerKey{}).(deployFor)
	if f.id == "" {
		return local
	}
	tag := "execution " + f.id
	author := actorName(f.author)
	if author == "" {
		return local + ", " + tag
	}
	user, proc, ok := strings.Cut(local, " (pid ")
	if !ok {
		return fmt.Sprintf("%s (%s, by %s), %s", author, f.kind, local, tag)
	}
	return fmt.Sprintf("%s (pid %s as %s, %s), %s", author, strings.TrimSuffix(proc, ")"), user, f.kind, tag)
}

// actorName keeps the letters, digits and . _ @ - of an author's name
// (others become _), at most 64 bytes.
func actorName(s string) string {
	b := []byte(strings.TrimSpace(s))
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// deployStoppable runs a deploy action on the execution's hard context: a
// cancel must not abandon a deployment halfway through a traffic shift
// (an interrupted controller leaves it for the next command to reconcile).
// It asks the deployment's controller to stop instead, through the request
// `cutover stop` sends (deploy.Request), so traffic goes back to the
// original set at once and the deployment rolls back; the action then ends
// cancelled.
func (r *run) deployStoppable(ctx context.Context, a config.Action) (result, error) {
	dctx := context.WithValue(r.hard, ownerKey{}, deployFor{id: r.exec.ID, author: r.author, kind: r.kind})
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		if !errors.Is(context.Cause(ctx), errCancelled) {
			return // the hard context ended: the controller sees that itself
		}
		r.requestStop(dctx, a, done, context.Cause(ctx))
	}()
	res, err := r.deploy(dctx, a)
	close(done)
	<-stopped
	if cause := context.Cause(ctx); ctx.Err() != nil && errors.Is(cause, errCancelled) {
		if err != nil {
			r.logf(a.Name, "%v", err)
		}
		return res, cause
	}
	return res, err
}

// requestStop sends a stop request to this execution's deployment of the
// action's environment as soon as it exists (the deploy action may still
// be waiting for the environment's lease), until the action ends.
func (r *run) requestStop(ctx context.Context, a config.Action, done <-chan struct{}, why error) {
	tag := OwnerTag(ctx)
	for {
		d, err := r.e.Store.ActiveDeployment(ctx, r.exec.Project, a.Environment)
		if err == nil && strings.Contains(d.Owner, tag) {
			if _, err := deploy.Request(ctx, r.e.Store, r.exec.Project, a.Environment, deploy.RequestStop, short.Line(why.Error())); err == nil {
				r.logf(a.Name, "execution cancelled: asked deployment %s to stop and roll back", d.ID)
				return
			}
		}
		select {
		case <-done:
			return
		case <-time.After(r.e.Poll):
		}
	}
}
