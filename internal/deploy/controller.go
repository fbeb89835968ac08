// Package deploy is cutover's deployment controller: blue/green with test
// traffic, lifecycle hooks, traffic shifting, alarms and instant rollback,
// and rolling updates with a circuit breaker.
//
// The state machine is the pure function Next (phase.go). The driver here
// persists every transition in the store before it acts on the new phase,
// so a controller killed at any point can be replaced by the next cutover
// command for the environment (Reconcile), which resumes or rolls back.
// The work itself is done through a Platform (platform.go), or, where the
// cloud runs the deployment, followed through a Driven (driven.go) in the
// same phases.
package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/store"
)

// Event is one line of a deployment's progress, for the terminal or a JSON stream.
type Event struct {
	Time       time.Time      `json:"time"`
	Deployment string         `json:"deployment"`
	Phase      string         `json:"phase"`
	Kind       string         `json:"kind"` // phase, progress, hook, alarm, result
	Message    string         `json:"message"`
	Traffic    map[string]int `json:"traffic,omitempty"`
	Healthy    int            `json:"healthy,omitempty"`
	Total      int            `json:"total,omitempty"`
	Alarms     []alarm.Status `json:"alarms,omitempty"`
	WaitLeft   time.Duration  `json:"wait_left,omitempty"`
	// Step of Steps is where the deployment stands in its strategy's phases
	// and Left the timed waits still ahead overall (filled in by the release
	// layer from the persisted state; 0 when unknown).
	Step        int           `json:"step,omitempty"`
	Steps       int           `json:"steps,omitempty"`
	Left        time.Duration `json:"left,omitempty"`
	Status      string        `json:"status,omitempty"`
	Description string        `json:"-"`
}

// Controller drives deployments of one environment.
type Controller struct {
	Config   *config.Config
	Env      string
	Platform Platform
	// Driven, when set, is the platform instead of Platform: the cloud runs
	// each deployment and the controller follows it (driven.go).
	Driven   Driven
	Store    *store.Store
	Hooks    hook.Env      // URLs and variables for lifecycle hooks
	Timeout  time.Duration // how long a new set may take to become healthy (default 5m)
	Tick     time.Duration // how often waits look for requests (default 25ms); health and alarms every 10 ticks
	Progress func(Event)   // optional
	Log      *slog.Logger
	Owner    string // who drives deployments, recorded on them, e.g. "pid 42 on host (cutover deploy)"
	// SuccessActs says a cloud-driven deployment's success is followed by
	// acts of the command that records it (on ECS: the static sites are
	// pointed at the revision's files). A look (Look) then leaves a
	// deployment whose services all succeeded in progress, for the next
	// command to record and act on, instead of recording its end.
	SuccessActs bool

	alarms  *alarm.Evaluator // lives from the first traffic shift to the end of baking
	lastSeq int64            // requests (continue/stop/rollback) after this event seq are new
	once    bool             // Look: one read of a cloud-driven deployment, nothing acted on
}

// State is what the driver keeps in Deployment.Data.
type State struct {
	OldColor     string    `json:"old_color,omitempty"` // "" on a first deployment
	NewColor     string    `json:"new_color"`
	Step         int       `json:"step"`          // traffic shifting step reached
	PhaseStarted time.Time `json:"phase_started"` // waits end at PhaseStarted + wait, also after a restart
	Cause        string    `json:"cause,omitempty"`
	Failed       int       `json:"failed_tasks,omitempty"` // rolling: tasks that failed (circuit breaker)
	RequestSeq   int64     `json:"request_seq"`            // events after this seq are requests for this deployment
	Continued    bool      `json:"continued,omitempty"`    // `cutover continue` arrived
	// FirstTraffic is when production traffic first reached the new set;
	// DetectedAt when the failure that ended the deployment was seen
	// (the daemon's metrics: time from first traffic to detection).
	FirstTraffic time.Time `json:"first_traffic,omitzero"`
	DetectedAt   time.Time `json:"detected_at,omitzero"`
	Promoted     bool      `json:"promoted,omitempty"` // `cutover promote` arrived: remaining steps and waits are skipped
	// Alarms are the alarm states as last evaluated (saved every few
	// seconds while alarms are watched), for status readers in other processes.
	Alarms []alarm.Status `json:"alarms,omitempty"`
	Cloud  *CloudState    `json:"cloud,omitempty"` // a Driven platform's deployments
}

// Request kinds, appended to the event log by other commands and read by the driver.
const (
	RequestContinue = "request.continue"
	RequestStop     = "request.stop"
	RequestRollback = "request.rollback"
	// RequestPromote skips the remaining traffic steps and waits (ready
	// wait, step waits, bake, termination wait): all production traffic
	// moves to the new set at once and the deployment finishes. The new
	// set must still become healthy.
	RequestPromote = "request.promote"
)

// failure is a phase's unhappy ending: the outcome and its evidence.
type failure struct {
	outcome  Outcome
	reason   string
	evidence any
}

func (f *failure) Error() string { return f.reason }

func fail(o Outcome, evidence any, format string, a ...any) *failure {
	return &failure{outcome: o, reason: fmt.Sprintf(format, a...), evidence: evidence}
}

func (c *Controller) env() *config.Environment { return c.Config.Environments[c.Env] }

func (c *Controller) emit(d *store.Deployment, ev Event) {
	if c.Progress == nil {
		return
	}
	ev.Time = time.Now()
	ev.Deployment = d.ID
	if ev.Phase == "" {
		ev.Phase = d.Phase
	}
	c.Progress(ev)
}

func loadState(d *store.Deployment) (State, error) {
	var st State
	if len(d.Data) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(d.Data, &st); err != nil {
		return st, fmt.Errorf("deployment %s: unreadable controller state: %v", d.ID, err)
	}
	return st, nil
}

// save persists d with st; the generation check means a second controller
// that somehow runs the same deployment fails instead of interleaving.
func (c *Controller) save(ctx context.Context, d *store.Deployment, st State) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	d.Data = raw
	gen, err := c.Store.UpdateDeployment(context.WithoutCancel(ctx), *d, d.Generation)
	if err != nil {
		return fmt.Errorf("saving deployment %s: %w", d.ID, err)
	}
	d.Generation = gen
	return nil
}

// servingSet is the revision and color that serve once d is over. What
// serves is what has the traffic: a deployment that failed after all traffic
// moved (auto rollback off, or stopping the old set failed) leaves the new
// revision serving.
func servingSet(d *store.Deployment, st State) (revision, color string) {
	if d.Status != store.DeploymentSucceeded && d.TrafficPercent < 100 {
		return d.PreviousRevision, st.OldColor
	}
	return d.Revision, st.NewColor
}

// saveFinal persists a finished deployment together with the environment's
// state (the revision now serving) and an event, in one transaction.
func (c *Controller) saveFinal(ctx context.Context, d *store.Deployment, st State) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	d.Data = raw
	serving, color := servingSet(d, st)
	details := mustJSON(map[string]string{"color": color, "deployment": d.ID})
	ctx = context.WithoutCancel(ctx)
	return c.Store.Tx(ctx, func(tx *store.Tx) error {
		gen, err := tx.UpdateDeployment(ctx, *d, d.Generation)
		if err != nil {
			return fmt.Errorf("saving deployment %s: %w", d.ID, err)
		}
		d.Generation = gen
		status := "up"
		if serving == "" {
			status = "down"
		}
		if _, err := tx.PutEnvState(ctx, store.EnvState{Project: d.Project, Environment: d.Environment, Revision: serving, Status: status, Details: details}, store.AnyGeneration); err != nil {
			return err
		}
		_, err = tx.AppendEvent(ctx, store.Event{Project: d.Project, Environment: d.Environment, Kind: "deployment." + d.Status, Message: resultMessage(d), Data: d.Evidence})
		return err
	})
}

// Run drives d from its persisted phase to a terminal one. Each transition
// is saved before the new phase's work starts.
func (c *Controller) Run(ctx context.Context, d *store.Deployment) error {
	if c.Tick <= 0 {
		c.Tick = 25 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	st, err := loadState(d)
	if err != nil {
		return err
	}
	c.lastSeq = st.RequestSeq
	// Alarms belong to one deployment: a controller reused for the next one
	// must take a fresh baseline of the new set's metrics.
	c.alarms = nil
	phase, err := ParsePhase(d.Phase)
	if err != nil {
		return err
	}
	if c.Driven != nil && !phase.Terminal() {
		return c.runDriven(ctx, d, &st)
	}
	for !phase.Terminal() {
		c.emit(d, Event{Kind: "phase", Message: c.phaseMessage(phase, st)})
		f := c.runPhase(ctx, d, &st, phase)
		if ctx.Err() != nil {
			// Interrupted (Ctrl-C, SIGTERM): leave the deployment as persisted;
			// the next command for this environment reconciles it.
			return fmt.Errorf("deployment %s interrupted in %s: %w", d.ID, phase, ctx.Err())
		}
		outcome := Done
		if f != nil {
			outcome = f.outcome
			if phase != PhaseRollingBack && phase != PhaseTerminating {
				st.Cause = outcome.String()
				st.DetectedAt = time.Now().UTC()
				d.Reason = f.reason
				d.Evidence = mustJSON(f.evidence)
			} else {
				d.Reason += "; then " + f.reason
			}
			c.emit(d, Event{Kind: "failure", Message: f.reason})
		}
		next := Next(phase, outcome, c.autoRollback(outcome))
		if next.Terminal() {
			// The set that serves from now on gets its restart policy while
			// the deployment is still in progress: a controller killed in
			// between leaves this phase for the next command to do again.
			// Recorded as ended first, nobody gave it the policy, and a
			// crash of its tasks later took production down for good.
			end := *d
			end.Status = Status(next, causeOf(st))
			if next == PhaseSucceeded {
				end.TrafficPercent = 100
			}
			c.keepServing(ctx, &end, st)
			if ctx.Err() != nil {
				return fmt.Errorf("deployment %s interrupted in %s: %w", d.ID, phase, ctx.Err())
			}
		}
		d.Phase = next.String()
		d.Status = Status(next, causeOf(st))
		st.PhaseStarted = time.Now().UTC()
		if next == PhaseSucceeded {
			d.TrafficPercent = 100
		}
		save := c.save
		if next.Terminal() {
			save = c.saveFinal
		}
		if err := save(ctx, d, st); err != nil {
			return err
		}
		phase = next
	}
	c.emit(d, Event{Kind: "result", Status: d.Status, Message: resultMessage(d)})
	return nil
}

// keepServing asks the platform to keep the set that serves once d is over
// running (deploy.Keeper). A failure is a warning: the set serves anyway.
func (c *Controller) keepServing(ctx context.Context, d *store.Deployment, st State) {
	k, ok := c.Platform.(Keeper)
	if !ok {
		return
	}
	if rev, color := servingSet(d, st); rev != "" && color != "" {
		if err := k.KeepRunning(ctx, color); err != nil && ctx.Err() == nil {
			c.Log.Warn("serving tasks will not be restarted if they crash", "deployment", d.ID, "color", color, "err", err)
		}
	}
}

func causeOf(st State) Outcome {
	for o := Done; o <= Rollback; o++ {
		if o.String() == st.Cause {
			return o
		}
	}
	return Done
}

func (c *Controller) autoRollback(o Outcome) bool {
	ar := c.env().Strategy.AutoRollback
	switch o {
	case Alarmed:
		return ar.OnAlarm
	case Stopped:
		return ar.OnStop
	case Failed:
		if c.env().Strategy.Type == config.StrategyRolling {
			return c.env().Strategy.CircuitBreaker.Rollback
		}
		return ar.OnFailure
	}
	return true
}

func (c *Controller) phaseMessage(p Phase, st State) string {
	hooks := map[Phase][]config.Hook{
		PhaseBeforeInstall: c.env().Hooks.BeforeInstall, PhaseAfterInstall: c.env().Hooks.AfterInstall,
		PhaseAfterAllowTestTraffic: c.env().Hooks.AfterAllowTestTraffic, PhaseBeforeAllowTraffic: c.env().Hooks.BeforeAllowTraffic,
		PhaseAfterAllowTraffic: c.env().Hooks.AfterAllowTraffic,
	}
	if hs, ok := hooks[p]; ok {
		if len(hs) == 0 {
			return "no hooks"
		}
		return fmt.Sprintf("running %d hooks", len(hs))
	}
	s := c.env().Strategy
	switch p {
	case PhasePending:
		return fmt.Sprintf("%s deployment into the %s set", s.Type, st.NewColor)
	case PhaseInstall:
		return fmt.Sprintf("starting the %s set", st.NewColor)
	case PhaseAllowTestTraffic:
		return "test listener to " + st.NewColor
	case PhaseReadyWait:
		if st.Promoted {
			return "ready wait skipped (promoted)"
		}
		if s.ManualContinue {
			return "waiting for `cutover continue " + c.Env + "`"
		}
		return "ready wait " + s.ReadyWait.String()
	case PhaseShifting:
		return "shifting production traffic to " + st.NewColor
	case PhaseBaking:
		if st.Promoted {
			return "bake time skipped (promoted)"
		}
		return "bake time " + s.Bake.String() + ", alarms watched"
	case PhaseTerminationWait:
		if st.OldColor == "" {
			return "no original set"
		}
		if st.Promoted {
			return fmt.Sprintf("termination wait skipped (promoted): the %s set is stopped now", st.OldColor)
		}
		return fmt.Sprintf("%s stays alive for %s: `cutover rollback %s` is a traffic flip", st.OldColor, s.TerminationWait, c.Env)
	case PhaseRolling:
		return fmt.Sprintf("rolling update into the %s set (maximum %d%%, minimum healthy %d%%)", st.NewColor, s.MaximumPercent, s.MinimumHealthyPercent)
	case PhaseRollingBack:
		if st.OldColor != "" {
			return "rolling back: production traffic to " + st.OldColor
		}
		return "rolling back: removing the new set"
	case PhaseTerminating:
		if st.OldColor == "" {
			return "nothing to stop"
		}
		return fmt.Sprintf("draining and stopping the %s set", st.OldColor)
	}
	return p.String()
}

func resultMessage(d *store.Deployment) string {
	switch d.Status {
	case "succeeded":
		return fmt.Sprintf("deployment %s succeeded: revision %s serves all traffic", d.ID, d.Revision)
	case "rolled_back", "stopped":
		return fmt.Sprintf("deployment %s %s: %s", d.ID, map[string]string{"rolled_back": "rolled back", "stopped": "stopped and rolled back"}[d.Status], d.Reason)
	}
	return fmt.Sprintf("deployment %s failed: %s", d.ID, d.Reason)
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
