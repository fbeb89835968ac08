package pipeline

import (
	"slices"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
)

// Status values of stages and actions.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusWaiting   = "waiting" // an approval waits for a person
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusCancelled = "cancelled"
)

// StageState is a stage of an execution as stored (Execution.Stages).
type StageState struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Reason   string        `json:"reason,omitempty"` // why it was skipped or failed
	Actions  []ActionState `json:"actions"`
	Started  *time.Time    `json:"started,omitempty"`
	Finished *time.Time    `json:"finished,omitempty"`
}

// ActionState is an action of an execution as stored.
type ActionState struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	RunOrder int               `json:"run_order"`
	Status   string            `json:"status"`
	Summary  string            `json:"summary,omitempty"` // one line: what it did, or why it failed
	Reports  []Suite           `json:"reports,omitempty"`
	Outputs  map[string]string `json:"outputs,omitempty"` // variables it exported
	Started  *time.Time        `json:"started,omitempty"`
	Finished *time.Time        `json:"finished,omitempty"`
}

// Plan decides, before anything runs, which stages and actions an
// execution runs: a stage with branches runs only for pushes to those
// branches; an untrusted run never runs deploy or approval actions (nor
// verify, which checks a deployed environment): noDeploy is why, "" for a
// trusted run. It is pure and tested.
func Plan(p *config.Pipeline, noDeploy, branch string) []StageState {
	untrusted := noDeploy
	var out []StageState
	for _, st := range p.Stages {
		s := StageState{Name: st.Name, Status: StatusPending}
		switch {
		case untrusted != "" && len(st.Branches) > 0:
			s.Status, s.Reason = StatusSkipped, noDeploy
		case len(st.Branches) > 0 && !slices.Contains(st.Branches, branch):
			s.Status, s.Reason = StatusSkipped, "runs for pushes to "+joinQuoted(st.Branches)
		}
		for _, a := range st.Actions {
			as := ActionState{Name: a.Name, Kind: a.Kind, RunOrder: a.RunOrder, Status: StatusPending}
			if s.Status == StatusSkipped {
				as.Status = StatusSkipped
			} else if untrusted != "" && (a.Kind == config.ActionDeploy || a.Kind == config.ActionApproval || a.Kind == config.ActionVerify) {
				as.Status, as.Summary = StatusSkipped, noDeploy
			}
			s.Actions = append(s.Actions, as)
		}
		if s.Status != StatusSkipped && len(s.Actions) > 0 && allSkipped(s.Actions) {
			s.Status, s.Reason = StatusSkipped, noDeploy
		}
		out = append(out, s)
	}
	return out
}

func allSkipped(as []ActionState) bool {
	for _, a := range as {
		if a.Status != StatusSkipped {
			return false
		}
	}
	return true
}

func joinQuoted(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}
