package deploy

import "fmt"

// Phase is where a deployment stands. Blue/green phases follow CodeDeploy's
// ECS lifecycle; rolling deployments use PhaseRolling. The names are what
// the store keeps and what users see.
type Phase int

const (
	PhasePending Phase = iota
	PhaseBeforeInstall
	PhaseInstall // start the replacement set and wait until it is healthy
	PhaseAfterInstall
	PhaseAllowTestTraffic
	PhaseAfterAllowTestTraffic
	PhaseBeforeAllowTraffic
	PhaseReadyWait // ready wait, or wait for `cutover continue`
	PhaseShifting  // production traffic moves step by step; alarms watched
	PhaseAfterAllowTraffic
	PhaseBaking          // all traffic on the new set; alarms watched
	PhaseTerminationWait // the original set stays alive: rollback is a flip
	PhaseTerminating     // drain and stop the original set
	PhaseRolling         // rolling update in batches
	PhaseRollingBack
	PhaseSucceeded
	PhaseRolledBack
	PhaseFailed // could not roll back cleanly; a person must look
)

var phaseNames = [...]string{
	"Pending", "BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic",
	"BeforeAllowTraffic", "ReadyWait", "Shifting", "AfterAllowTraffic", "Baking", "TerminationWait",
	"Terminating", "Rolling", "RollingBack", "Succeeded", "RolledBack", "Failed",
}

func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseNames[p]
}

// ParsePhase is the inverse of String.
func ParsePhase(s string) (Phase, error) {
	for i, n := range phaseNames {
		if n == s {
			return Phase(i), nil
		}
	}
	return 0, fmt.Errorf("unknown deployment phase %q", s)
}

// Terminal reports whether nothing more will happen to the deployment.
func (p Phase) Terminal() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// NewSetHasProductionTraffic reports whether the replacement set may be
// serving production traffic in this phase.
func (p Phase) NewSetHasProductionTraffic() bool {
	return p >= PhaseShifting && p <= PhaseTerminating || p == PhaseRolling
}

// Outcome is what the driver observed when a phase's work ended.
type Outcome int

const (
	Done     Outcome = iota // the phase's work finished well
	Failed                  // a task, health check, hook or timeout failed
	Alarmed                 // an alarm went into alarm state
	Stopped                 // `cutover stop`
	Rollback                // `cutover rollback`
)

func (o Outcome) String() string {
	return [...]string{"done", "failed", "alarm", "stopped", "rollback requested"}[o]
}

// Next is the whole blue/green and rolling state machine: the phase that
// follows p when its work ended with o. It is pure, so it is table-tested.
// autoRollback says whether failures, alarms and stops roll back (the
// environment's auto_rollback settings); without it a failed deployment
// stops where it is, as CodeDeploy does, and is marked Failed.
func Next(p Phase, o Outcome, autoRollback bool) Phase {
	if p.Terminal() {
		return p
	}
	switch p {
	case PhaseRollingBack:
		if o == Done {
			return PhaseRolledBack
		}
		return PhaseFailed
	case PhaseTerminating:
		// The original set is being removed: there is nothing to go back to.
		if o == Done {
			return PhaseSucceeded
		}
		return PhaseFailed
	}
	if o != Done {
		if o == Rollback || autoRollback {
			return PhaseRollingBack
		}
		return PhaseFailed
	}
	switch p {
	case PhaseRolling:
		return PhaseSucceeded
	case PhasePending:
		return PhaseBeforeInstall
	}
	return p + 1
}

// Status is the deployment status kept in the store for a phase.
func Status(p Phase, cause Outcome) string {
	switch p {
	case PhaseSucceeded:
		return "succeeded"
	case PhaseFailed:
		return "failed"
	case PhaseRolledBack:
		if cause == Stopped {
			return "stopped"
		}
		return "rolled_back"
	}
	return "in_progress"
}
