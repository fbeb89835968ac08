package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// actionWait is how long a form waits for its action before the page comes
// back saying it started: a stop or an approval is done by then, a
// redeploy goes on and shows on the page as it progresses.
const actionWait = 3 * time.Second

// action serves one action route: a form POST (Origin, session, action key), the
// role the policy needs (403 otherwise, audited), then the release use
// case, audited with its outcome, then back to the page it came from with
// what happened.
func (h *Handler) action(p policy, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.checkPost(w, r)
		if !ok {
			return
		}
		env, id := r.PathValue("env"), r.PathValue("id")
		target, back := id, "/executions/"+id+"/approval"
		if env != "" {
			target, back = env, "/environments/"+env
		}
		revision := strings.TrimSpace(r.PostFormValue("revision"))
		if revision != "" {
			target += " " + revision
		}
		record := func(err error) {
			if aerr := auth.Record(context.WithoutCancel(r.Context()), h.Store, s.Identity, p.action, target, err); aerr != nil {
				h.Log.Error("cannot write the audit log", "action", p.action, "err", aerr)
			}
		}
		if !s.Identity.Role.Allows(p.role) {
			err := fmt.Errorf("forbidden: %s has the %s role; %s needs %s", s.Identity.Name, s.Identity.Role, name, p.role)
			record(fmt.Errorf("403 %w", err))
			h.refuse(w, r, http.StatusForbidden, err.Error())
			return
		}
		if _, known := h.Config.Environments[env]; env != "" && !known {
			record(fmt.Errorf("404 no environment named %q", env))
			h.refuse(w, r, http.StatusNotFound, fmt.Sprintf("no environment named %q", env))
			return
		}
		rel := h.Release(s.Identity)
		decision := release.Decision{Who: s.Identity, Comment: strings.TrimSpace(r.PostFormValue("comment"))}
		run := func(ctx context.Context) (string, error) {
			var d store.Deployment
			var err error
			switch name {
			case "rollback":
				d, err = rel.Rollback(ctx, env, release.RollbackOptions{To: revision})
			case "redeploy":
				if revision == "" {
					return "", fmt.Errorf("choose the revision to deploy again")
				}
				d, err = rel.Deploy(ctx, env, release.DeployOptions{Revision: revision, Command: "cutover dashboard"})
			case "stop":
				d, err = rel.Stop(ctx, env)
			case "continue":
				d, err = rel.Continue(ctx, env)
			case "promote":
				d, err = rel.Promote(ctx, env)
			case "approve", "reject":
				f := rel.Approve
				if name == "reject" {
					f = rel.Reject
				}
				a, err := f(ctx, id, decision)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s: %s %s by %s", id, a.Action, a.Status, a.DecidedBy), nil
			default:
				return "", fmt.Errorf("unknown action %q", name)
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s: deployment %s %s", name, d.ID, strings.ReplaceAll(d.Status, "_", " ")), nil
		}
		done := make(chan result, 1)
		go func() {
			// The action outlives the request (a redeploy takes minutes),
			// not the daemon.
			msg, err := run(h.ctx)
			done <- result{msg, err}
		}()
		// The audit entry is written when the form is answered: with the
		// outcome when the action is over by then, else as accepted (the
		// deployment's own outcome is in its history), as the API's 202.
		select {
		case res := <-done:
			record(res.err)
			if res.err != nil {
				h.flash.put(s, errorf("%s failed: %s", name, auth.Mask(res.err.Error())))
			} else {
				h.flash.put(s, flash{Message: res.msg})
			}
		case <-time.After(actionWait):
			h.flash.put(s, flash{Message: name + " started; it goes on below"})
			h.goesOn(record, name, target, s, done)
		case <-r.Context().Done():
			h.goesOn(record, name, target, s, done)
			return
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

type result struct {
	msg string
	err error
}

// goesOn audits an action still running when its form is answered as
// accepted, and logs how it ends if it fails.
func (h *Handler) goesOn(record func(error), name, target string, s auth.Session, done <-chan result) {
	record(nil)
	go func() {
		if res := <-done; res.err != nil {
			h.Log.Warn("dashboard action failed", "action", name, "target", target, "who", s.Identity.Name, "err", auth.Mask(res.err.Error()))
		}
	}()
}
