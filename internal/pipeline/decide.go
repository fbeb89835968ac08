package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// Errors of Decide, beside the store's (ErrNotFound for an unknown
// execution, ErrConflict for a decided or expired approval).
var (
	// ErrNotAllowed: this identity may not decide this approval (API: 403).
	ErrNotAllowed = errors.New("not allowed to decide this approval")
	// ErrNotWaiting: the execution waits for no approval (API: 409).
	ErrNotWaiting = errors.New("not waiting for an approval")
)

// Decide approves or rejects the approval execution execID waits for, as
// who, under the approval rules of cfg (the trusted configuration the
// daemon or the CLI loaded, never the execution's own commit). It is the
// one place both the API and `cutover approve|reject` decide: the role, the
// environment's approval.approvers and approval.role, and
// approval.forbid_author are checked here, and the decision is recorded
// under who.Name.
func Decide(ctx context.Context, st *store.Store, cfg *config.Config, who auth.Identity, execID string, approve bool, comment string) (store.Approval, error) {
	x, err := st.GetExecution(ctx, execID)
	if err != nil {
		return store.Approval{}, err
	}
	if x.Project != cfg.Project {
		// As for one that does not exist: the store may hold other
		// projects', and their names are theirs.
		return store.Approval{}, store.NoExecution(execID)
	}
	pending, err := st.PendingApprovals(ctx, x.Project)
	if err != nil {
		return store.Approval{}, err
	}
	i := slices.IndexFunc(pending, func(a store.Approval) bool { return a.Execution == execID })
	if i < 0 {
		return store.Approval{}, fmt.Errorf("execution %s is %w (see `cutover executions %s`)", execID, ErrNotWaiting, execID)
	}
	p := pending[i]
	env := approvalEnvironment(cfg, p)
	var policy *config.Approval
	if e, ok := cfg.Environments[env]; ok {
		policy = e.Approval
	}
	if err := mayDecide(policy, env, who, triggerOf(x).Author, approve); err != nil {
		return store.Approval{}, err
	}
	// The approval whose rules were checked, by its stage too: another
	// stage's approval of the same name has other rules.
	return st.DecideStageApproval(ctx, execID, p.Stage, p.Action, approve, who.Name, comment)
}

// approvalEnvironment is the environment an approval guards: as the trusted
// pipeline names it, else as the evidence recorded when it was requested.
func approvalEnvironment(cfg *config.Config, a store.Approval) string {
	for _, st := range cfg.EffectivePipeline().Stages {
		if st.Name != a.Stage {
			continue
		}
		for _, act := range st.Actions {
			if act.Name == a.Action && act.Kind == config.ActionApproval {
				return act.Environment
			}
		}
	}
	var ev Evidence
	_ = json.Unmarshal(a.Evidence, &ev)
	return ev.Environment
}

// triggerOf is the trigger an execution recorded: under TriggerVar in its
// variables, or, before its first save, as the variables themselves.
func triggerOf(x store.Execution) Trigger {
	var vars map[string]json.RawMessage
	var t Trigger
	if json.Unmarshal(x.Variables, &vars) != nil {
		return t
	}
	var raw string
	if json.Unmarshal(vars[TriggerVar], &raw) == nil && raw != "" {
		_ = json.Unmarshal([]byte(raw), &t)
		return t
	}
	_ = json.Unmarshal(x.Variables, &t)
	return t
}

// mayDecide is the approval rule: who must hold the approver role, be
// allowed by the environment's approvers or role when it names any, and,
// to approve, not be the change's author when forbid_author is set.
func mayDecide(p *config.Approval, env string, who auth.Identity, author string, approve bool) error {
	if !who.Role.Allows(auth.RoleApprover) {
		return fmt.Errorf("%w: %s holds the %s role; approving or rejecting needs approver or admin", ErrNotAllowed, who.Name, who.Role)
	}
	if p == nil {
		return nil
	}
	if len(p.Approvers) > 0 || p.Role != "" {
		named := slices.ContainsFunc(p.Approvers, func(n string) bool { return strings.EqualFold(strings.TrimSpace(n), who.Name) })
		byRole := false
		if r, err := auth.ParseRole(p.Role); p.Role != "" && err == nil {
			byRole = who.Role.Allows(r)
		}
		if !named && !byRole {
			return fmt.Errorf("%w: environments.%s.approval allows %s; %s is not allowed", ErrNotAllowed, env, allowedList(p), who.Name)
		}
	}
	if approve && p.ForbidAuthor && author != "" && strings.EqualFold(author, who.Name) {
		return fmt.Errorf("%w: %s is the author of this change and environments.%s.approval.forbid_author is set: someone else must approve it", ErrNotAllowed, who.Name, env)
	}
	return nil
}

func allowedList(p *config.Approval) string {
	var parts []string
	if len(p.Approvers) > 0 {
		parts = append(parts, strings.Join(p.Approvers, ", "))
	}
	if p.Role != "" {
		parts = append(parts, "the "+p.Role+" role or stronger")
	}
	return strings.Join(parts, " and ")
}
