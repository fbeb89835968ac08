package deploy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// Driven is the second kind of platform: one where the cloud runs the
// deployment itself (ECS rolling with its circuit breaker, CodeDeploy
// blue/green, ECS-native blue/green) and the controller starts it, follows
// it, and passes on stop, rollback and continue. The controller keeps the
// deployment record, maps what the cloud reports onto its own phases, and
// persists each transition before it acts on it, as for a Platform.
//
// Contract:
//   - Services are deployed one after the other, in the order Services
//     returns; each has its own cloud deployment, named by the ID Start
//     returns (persisted before the first Progress).
//   - Decide, persist, act: Prepare decides what the service's deployment
//     runs (on ECS it registers the task definition) and starts nothing; the
//     controller persists that Intent with a start marker, then calls Start.
//     A controller killed after Start's call reached the cloud but before
//     its ID was persisted leaves an Intent with a marker and no ID: the
//     next command asks Find for the deployment the cloud already runs (or
//     ran) for it and follows that one; it starts a new one only when Find
//     finds none.
//   - Progress only reads (and measures how long nothing moved: Stuck). It
//     is called again after a restart with the same service and ID.
//   - Stop stops the service's deployment and has the cloud roll it back;
//     Continue lets one that waits for `cutover continue` shift traffic;
//     Promote ends the wait the deployment is in (phase: ReadyWait or
//     TerminationWait) where the cloud allows it, else returns an error
//     wrapping ErrCannotSkip. All may be called more than once.
//   - After paces the polls: it fires after the delay of the attempt-th poll.
type Driven interface {
	Services() []string
	Prepare(ctx context.Context, service string, rev store.Revision) (Intent, error)
	Start(ctx context.Context, service string, in Intent) (id string, err error)
	Find(ctx context.Context, service string, in Intent) (id string, err error)
	// Progress reads where the service's deployment stands; health bounds
	// how long its new tasks may take to become healthy (--timeout), never
	// a healthy deployment's shifting, baking or termination wait.
	Progress(ctx context.Context, service, id string, health time.Duration) (DrivenState, error)
	Stop(ctx context.Context, service, id string) error
	Continue(ctx context.Context, service, id string) error
	Promote(ctx context.Context, service, id string, phase Phase) error
	After(attempt int) <-chan time.Time
}

// ErrCannotSkip marks a Promote the cloud has no API for in the phase the
// deployment is in (a linear or canary step, an ECS bake time).
var ErrCannotSkip = errors.New("the cloud cannot skip this wait")

// Intent is what the controller persists before it starts a service's
// cloud deployment: the revision, what the deployment runs (an ECS task
// definition ARN, unique to this registration), and the start marker.
type Intent struct {
	Revision string    `json:"revision"`
	Target   string    `json:"target"`
	Starting time.Time `json:"starting,omitzero"` // set, and persisted, just before Start is called
}

// Step is one step of a traffic shift: the share of production traffic on
// the new revision and the wait after it.
type Step struct {
	Percent int           `json:"percent"`
	Wait    time.Duration `json:"wait,omitempty"`
}

// Schedule is the timed waits of one service's deployment, as its cloud
// deployment configuration says (CodeDeploy's deployment config and
// termination wait, ECS's linear/canary configuration and bake time): what
// "step N of M, time left" is computed from.
type Schedule struct {
	ReadyWait       time.Duration `json:"ready_wait,omitempty"` // a timed wait before traffic moves (a wait for a continue counts 0)
	Steps           []Step        `json:"steps,omitempty"`
	Bake            time.Duration `json:"bake,omitempty"`
	TerminationWait time.Duration `json:"termination_wait,omitempty"`
}

// ScheduleOf is the schedule of a local strategy.
func ScheduleOf(s config.Strategy) Schedule {
	sc := Schedule{Bake: s.Bake.Std(), TerminationWait: s.TerminationWait.Std()}
	if !s.ManualContinue {
		sc.ReadyWait = s.ReadyWait.Std()
	}
	for _, st := range s.TrafficSteps() {
		sc.Steps = append(sc.Steps, Step{Percent: st.Percent, Wait: st.Wait.Std()})
	}
	return sc
}

// Total is the sum of the schedule's timed waits.
func (s Schedule) Total() time.Duration {
	t := s.ReadyWait + s.Bake + s.TerminationWait
	for _, st := range s.Steps {
		t += st.Wait
	}
	return t
}

// StepAt is the index of the step that puts percent of production traffic
// on the new revision (the last step at or below it).
func (s Schedule) StepAt(percent int) int {
	i := 0
	for j, st := range s.Steps {
		if st.Percent <= percent {
			i = j
		}
	}
	return i
}

// DrivenState is where a cloud-driven deployment of one service stands, in
// the controller's vocabulary.
type DrivenState struct {
	Phase   Phase    // a terminal phase ends the service's deployment
	Traffic int      // percent of production traffic on the new revision
	Status  string   // one line in the cloud's own words, for the terminal
	Reason  string   // why it failed or rolled back
	News    []string // service events and stopped-task reasons since the last poll
	// Problem, when set, says the deployment must not go on as it is: an
	// alarm fired (Alarm), or it made no progress for longer than what it
	// waits for allows. StopOnProblem says stopping it (with rollback) is
	// safe: false during a termination wait or a wait for a continue, which
	// the cloud ends itself.
	Problem       string
	Alarm         bool
	StopOnProblem bool
	// Schedule, when known, is the deployment's timed waits as its cloud
	// configuration says; the controller keeps it for time-left estimates.
	Schedule *Schedule
}

// CloudState is what the controller keeps of a cloud-driven deployment in
// State: each service's cloud deployment and how far the run got.
type CloudState struct {
	IDs       map[string]string `json:"ids,omitempty"`        // service -> cloud deployment ID
	Done      []string          `json:"done,omitempty"`       // services whose deployment succeeded
	Stopped   map[string]bool   `json:"stopped,omitempty"`    // services whose deployment cutover stopped
	StopFirst bool              `json:"stop_first,omitempty"` // stop the current deployment on the next look (reconcile with rollback)
	// Intents are what each service's deployment runs, persisted before it
	// starts (with its start marker): a deployment started by a controller
	// that died before persisting its ID is found from it, not started twice.
	Intents  map[string]Intent `json:"intents,omitempty"`
	Services []string          `json:"services,omitempty"` // the services in deployment order
	Schedule *Schedule         `json:"schedule,omitempty"` // the current service's timed waits, as the cloud reports them
	Promoted map[string]string `json:"promoted,omitempty"` // service -> the phase whose wait a promote ended
}

// KindNews is the Event kind of what the cloud tells about a deployment it
// runs (its status when it changes, service events, stopped tasks' reasons):
// each is told once, as a line of its own.
const KindNews = "news"

// errInterrupted ends a follow when ctx ends: the deployment stays as
// persisted and the cloud goes on; the next command re-attaches.
var errInterrupted = errors.New("interrupted")

// deployDriven records a deployment of rev on a Driven platform and follows it.
func (c *Controller) deployDriven(ctx context.Context, rev store.Revision) (store.Deployment, error) {
	// The revision that serves now is what the last finished deployment
	// recorded, the same record a local environment's rollback reads.
	prevRev := ""
	if es, err := c.Store.GetEnvState(ctx, c.Config.Project, c.Env); err == nil && es.Status == "up" {
		prevRev = es.Revision
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Deployment{}, err
	}
	return c.start(ctx, rev, prevRev, State{NewColor: "new", Cloud: &CloudState{}})
}

// reconcileDriven re-attaches to a cloud-driven deployment whose controller
// died: the cloud went on with it, so it is followed to its end, after
// stopping it when rollback is asked.
func (c *Controller) reconcileDriven(ctx context.Context, d *store.Deployment, st State, rollback bool, who string) error {
	if st.Cloud == nil {
		st.Cloud = &CloudState{}
	}
	d.Reason = fmt.Sprintf("%s stopped during %s; followed by the next command", who, d.Phase)
	if rollback {
		st.Cloud.StopFirst = true
		st.Cause = Rollback.String()
		d.Reason = fmt.Sprintf("%s stopped during %s; rolled back", who, d.Phase)
	}
	if _, err := c.Store.AppendEvent(ctx, store.Event{Project: c.Config.Project, Environment: c.Env, Kind: "deployment.reconciled",
		Message: fmt.Sprintf("deployment %s: %s", d.ID, d.Reason)}); err != nil {
		return err
	}
	d.Owner = c.Owner
	if !rollback {
		d.Reason = ""
	}
	if evs, err := c.Store.ListEvents(ctx, store.EventFilter{Project: c.Config.Project, Environment: c.Env, AfterSeq: st.RequestSeq}); err == nil && len(evs) > 0 {
		st.RequestSeq = evs[len(evs)-1].Seq
	}
	if err := c.save(ctx, d, st); err != nil {
		return err
	}
	return c.Run(ctx, d)
}

// runDriven follows d's services one after the other until one does not
// succeed or all did, then saves the end with the environment's state.
func (c *Controller) runDriven(ctx context.Context, d *store.Deployment, st *State) error {
	if st.Cloud == nil {
		st.Cloud = &CloudState{}
	}
	cs := st.Cloud
	if cs.IDs == nil {
		cs.IDs = map[string]string{}
	}
	if cs.Stopped == nil {
		cs.Stopped = map[string]bool{}
	}
	if cs.Intents == nil {
		cs.Intents = map[string]Intent{}
	}
	if cs.Promoted == nil {
		cs.Promoted = map[string]string{}
	}
	cs.Services = c.Driven.Services()
	rev, err := c.Store.GetRevision(ctx, d.Revision)
	if err != nil {
		return err
	}
	end := DrivenState{Phase: PhaseSucceeded}
	for _, svc := range c.Driven.Services() {
		if contains(cs.Done, svc) {
			continue
		}
		id, end0, err := c.startService(ctx, d, st, rev, svc)
		if err != nil {
			return err
		}
		if end0 != nil {
			end = *end0
			break
		}
		s, err := c.follow(ctx, d, st, svc, id)
		if errors.Is(err, errInterrupted) {
			return fmt.Errorf("deployment %s interrupted in %s (AWS goes on with %s; the next command for %s follows it): %w", d.ID, d.Phase, id, c.Env, ctx.Err())
		}
		if err != nil {
			return err
		}
		if s.Phase != PhaseSucceeded {
			end = s
			if s.Reason == "" {
				s.Reason = fmt.Sprintf("deployment %s ended %s", id, s.Phase)
			}
			end.Reason = "service " + svc + ": " + s.Reason
			if len(cs.Done) > 0 {
				end.Reason += fmt.Sprintf(" (%v already run revision %s)", cs.Done, d.Revision)
			}
			break
		}
		cs.Done = append(cs.Done, svc)
		cs.Schedule = nil // the next service's deployment reports its own
		if err := c.save(ctx, d, *st); err != nil {
			return err
		}
	}
	if c.once && c.SuccessActs && end.Phase == PhaseSucceeded {
		// A look acts on nothing, and what follows this success is to be
		// done: the next command records the end and does it.
		return errLooked
	}
	d.Phase = end.Phase.String()
	if st.Cause == "" && end.Phase != PhaseSucceeded {
		st.Cause = Failed.String()
	}
	d.Status = Status(end.Phase, causeOf(*st))
	if d.Reason == "" {
		d.Reason = end.Reason
	} else if end.Reason != "" && end.Reason != d.Reason {
		d.Reason += "; " + end.Reason
	}
	if end.Phase == PhaseSucceeded {
		d.TrafficPercent = 100
		d.Reason = ""
	} else if end.Phase == PhaseRolledBack && len(cs.Done) == 0 {
		d.TrafficPercent = 0 // traffic went back to the previous revision
	}
	st.PhaseStarted = time.Now().UTC()
	if err := c.saveFinal(ctx, d, *st); err != nil {
		return err
	}
	c.emit(d, Event{Kind: "result", Status: d.Status, Message: resultMessage(d)})
	return nil
}

// startService returns the cloud deployment of svc: the one persisted; else
// the one the cloud already runs for the persisted intent (a controller
// died between starting it and persisting its ID); else a new one, started
// after its intent and start marker are persisted. end, when not nil, ends
// the run without a deployment (a stop asked before it started, or Start
// failed). In a look (Look) nothing is started: errLooked.
func (c *Controller) startService(ctx context.Context, d *store.Deployment, st *State, rev store.Revision, svc string) (id string, end *DrivenState, err error) {
	cs := st.Cloud
	if id := cs.IDs[svc]; id != "" {
		return id, nil, nil
	}
	in, ok := cs.Intents[svc]
	if ok && in.Revision == d.Revision && !in.Starting.IsZero() {
		found, err := c.Driven.Find(ctx, svc, in)
		if err != nil {
			// Starting another could deploy the service twice: the next command looks again.
			return "", nil, fmt.Errorf("deployment %s: looking for the deployment of %s (%s) started before cutover stopped: %w; nothing started, the next command for %s looks again", d.ID, svc, in.Target, err, c.Env)
		}
		if found != "" {
			cs.IDs[svc] = found
			if err := c.save(ctx, d, *st); err != nil {
				return "", nil, err
			}
			c.emit(d, Event{Kind: KindNews, Message: fmt.Sprintf("%s: deployment %s of %s, started before cutover stopped, followed (not started again)", svc, found, in.Target)})
			return found, nil, nil
		}
	}
	// A stop or rollback asked before this service started ends the run here.
	if cs.StopFirst {
		cs.StopFirst = false
		return "", &DrivenState{Phase: PhaseRolledBack, Reason: fmt.Sprintf("service %s not started", svc)}, nil
	}
	if stop := c.drivenRequests(ctx, d, st, "", ""); stop != nil {
		st.Cause = stop.outcome.String()
		return "", &DrivenState{Phase: PhaseRolledBack, Reason: stop.reason}, nil
	}
	if c.once {
		return "", nil, errLooked
	}
	if !ok || in.Revision != d.Revision || in.Target == "" {
		if in, err = c.Driven.Prepare(ctx, svc, rev); err != nil {
			if ctx.Err() != nil {
				return "", nil, fmt.Errorf("deployment %s interrupted while preparing %s: %w", d.ID, svc, ctx.Err())
			}
			return "", &DrivenState{Phase: PhaseFailed, Reason: fmt.Sprintf("service %s: %v", svc, err)}, nil
		}
		in.Revision = d.Revision
	}
	// Decide, persist, act: the marker is persisted before the call.
	in.Starting = time.Now().UTC()
	cs.Intents[svc] = in
	if err := c.save(ctx, d, *st); err != nil {
		return "", nil, err
	}
	if id, err = c.Driven.Start(ctx, svc, in); err != nil {
		if ctx.Err() != nil {
			return "", nil, fmt.Errorf("deployment %s interrupted while starting %s: %w", d.ID, svc, ctx.Err())
		}
		return "", &DrivenState{Phase: PhaseFailed, Reason: fmt.Sprintf("service %s: %v", svc, err)}, nil
	}
	cs.IDs[svc] = id
	if err := c.save(ctx, d, *st); err != nil {
		return "", nil, err
	}
	c.emit(d, Event{Kind: KindNews, Message: fmt.Sprintf("%s: deployment %s started", svc, id)})
	return id, nil, nil
}

// errLooked ends a look (Look) before the deployment's end: it stays as
// persisted and the next command follows it.
var errLooked = errors.New("looked once")

// Look reads, once, where a cloud-driven deployment whose controller died
// stands, for `cutover status`: the caller holds the lease. It adopts a
// deployment the dead controller started but did not persist, records
// what the cloud reports (phase, traffic, schedule) and, when the cloud
// says the deployment ended, records its end with the environment's state.
// It starts, stops and continues nothing, and never waits for a poll. It
// returns the deployment as it stands (nil when none is in progress).
func (c *Controller) Look(ctx context.Context) (*store.Deployment, error) {
	if c.Driven == nil {
		return nil, errors.New("deploy: Look follows cloud-driven deployments only")
	}
	d, err := c.Store.ActiveDeployment(ctx, c.Config.Project, c.Env)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.once = true
	defer func() { c.once = false }()
	if err := c.Run(ctx, &d); err != nil && !errors.Is(err, errLooked) {
		return &d, err
	}
	return &d, nil
}

// follow polls one service's cloud deployment to a terminal phase,
// persisting each phase change, passing on requests, and stopping a
// deployment that is stuck where stopping is safe.
func (c *Controller) follow(ctx context.Context, d *store.Deployment, st *State, svc, id string) (DrivenState, error) {
	cs := st.Cloud
	if cs.StopFirst && !c.once {
		cs.StopFirst = false
		if err := c.stopCloud(ctx, d, st, svc, id, causeOf(*st), d.Reason); err != nil {
			return DrivenState{}, err
		}
	}
	lastStatus, errs := "", 0
	for attempt := 0; ; attempt++ {
		s, err := c.Driven.Progress(ctx, svc, id, c.Timeout)
		if err != nil && c.once {
			// A look that cannot read AWS says so; the deployment stays as it is.
			return s, fmt.Errorf("reading deployment %s of %s: %w", id, svc, err)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return s, errInterrupted
		case err != nil && errors.Is(err, ErrTryAgain) && errs+1 < maxReadErrors:
			// A read that fails (the network, a throttle past the SDK's
			// retries) is tried again at the next poll: the deployment goes on.
			errs++
			c.emit(d, Event{Kind: KindNews, Message: fmt.Sprintf("%s: reading deployment %s: %v (trying again)", svc, id, err)})
		case err != nil:
			return DrivenState{Phase: PhaseFailed, Reason: fmt.Sprintf("following deployment %s: %v (AWS goes on with it)", id, err)}, nil
		default:
			errs = 0
		}
		if err != nil {
			if err := c.waitDriven(ctx, d, st, svc, id, attempt); err != nil {
				return s, err
			}
			continue
		}
		for _, n := range s.News {
			c.emit(d, Event{Kind: KindNews, Message: svc + ": " + n})
		}
		if s.Status != "" && s.Status != lastStatus {
			lastStatus = s.Status
			c.emit(d, Event{Kind: KindNews, Message: svc + ": " + s.Status})
		}
		if s.Schedule != nil && !reflect.DeepEqual(s.Schedule, cs.Schedule) {
			cs.Schedule = s.Schedule
			if err := c.save(ctx, d, *st); err != nil {
				return s, err
			}
		}
		if s.Phase.Terminal() {
			return s, nil
		}
		if cs.Stopped[svc] {
			s.Phase = PhaseRollingBack // until the cloud reports the rollback's end
		}
		if p := s.Phase.String(); p != d.Phase || s.Traffic != d.TrafficPercent {
			changed := p != d.Phase
			d.Phase, d.TrafficPercent = p, s.Traffic
			st.PhaseStarted = time.Now().UTC()
			if err := c.save(ctx, d, *st); err != nil {
				return s, err
			}
			if changed {
				c.emit(d, Event{Kind: "phase", Message: fmt.Sprintf("%s: %s", svc, s.Status)})
			}
		}
		if c.once {
			return s, errLooked // a look acts on nothing
		}
		c.promote(ctx, d, st, svc, id, s.Phase)
		if s.Problem != "" && !cs.Stopped[svc] {
			if !s.StopOnProblem {
				return DrivenState{Phase: PhaseFailed, Reason: s.Problem + "; not stopped: AWS finishes it (it waits for its own end)"}, nil
			}
			o := Failed
			if s.Alarm {
				o = Alarmed
			}
			if err := c.stopCloud(ctx, d, st, svc, id, o, s.Problem); err != nil {
				return s, err
			}
		}
		if err := c.waitDriven(ctx, d, st, svc, id, attempt); err != nil {
			return s, err
		}
	}
}

// promote ends the wait svc's deployment is in once a promote was asked:
// the wait for a continue, the termination wait (or bake). Each wait is
// ended once; a phase the cloud cannot skip is told, not retried.
func (c *Controller) promote(ctx context.Context, d *store.Deployment, st *State, svc, id string, p Phase) {
	cs := st.Cloud
	if !st.Promoted || cs.Stopped[svc] || cs.Promoted[svc] == p.String() {
		return
	}
	switch p {
	case PhaseReadyWait, PhaseBaking, PhaseTerminationWait:
	default:
		return // health checks and hooks are never skipped; the next wait is
	}
	cs.Promoted[svc] = p.String()
	if err := c.save(ctx, d, *st); err != nil {
		c.emit(d, Event{Kind: "failure", Message: err.Error()})
		return
	}
	if err := c.Driven.Promote(ctx, svc, id, p); err != nil {
		c.emit(d, Event{Kind: "request", Message: fmt.Sprintf("%s: promote in %s: %v", svc, p, err)})
		return
	}
	c.emit(d, Event{Kind: "request", Message: fmt.Sprintf("%s: promoted: AWS ends the %s of deployment %s", svc, p, id)})
}

// ErrTryAgain marks a Progress error worth trying again at the next poll
// (throttled, the cloud not reached); any other ends the following.
var ErrTryAgain = errors.New("try again later")

// maxReadErrors is how many reads of a cloud deployment in a row may fail
// before the controller gives up following it.
const maxReadErrors = 5

// waitDriven waits for the next poll, passing on requests every tick.
func (c *Controller) waitDriven(ctx context.Context, d *store.Deployment, st *State, svc, id string, attempt int) error {
	next := c.Driven.After(attempt)
	for {
		if f := c.drivenRequests(ctx, d, st, svc, id); f != nil && !st.Cloud.Stopped[svc] {
			if err := c.stopCloud(ctx, d, st, svc, id, f.outcome, f.reason); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return errInterrupted
		case <-next:
			return nil
		case <-time.After(c.Tick):
		}
	}
}

// stopCloud records why the deployment is stopped, then stops it; the
// cloud rolls it back and follow sees it end.
func (c *Controller) stopCloud(ctx context.Context, d *store.Deployment, st *State, svc, id string, o Outcome, reason string) error {
	st.Cause = o.String()
	d.Reason = reason
	st.Cloud.Stopped[svc] = true
	d.Phase = PhaseRollingBack.String()
	st.PhaseStarted = time.Now().UTC()
	if err := c.save(ctx, d, *st); err != nil {
		return err
	}
	c.emit(d, Event{Kind: "failure", Message: reason})
	if err := c.Driven.Stop(context.WithoutCancel(ctx), svc, id); err != nil {
		c.emit(d, Event{Kind: "failure", Message: fmt.Sprintf("%s: stopping deployment %s: %v", svc, id, err)})
		d.Reason += fmt.Sprintf("; stopping deployment %s failed: %v", id, err)
		return c.save(ctx, d, *st)
	}
	c.emit(d, Event{Kind: "phase", Message: fmt.Sprintf("%s: deployment %s stopped; AWS rolls it back", svc, id)})
	return nil
}

// drivenRequests reads the requests appended since the last look: a
// continue is passed on at once; a stop or rollback is returned.
func (c *Controller) drivenRequests(ctx context.Context, d *store.Deployment, st *State, svc, id string) *failure {
	events, err := c.Store.ListEvents(ctx, store.EventFilter{Project: c.Config.Project, Environment: c.Env, AfterSeq: c.lastSeq})
	if err != nil {
		return nil // the next tick tries again
	}
	for _, e := range events {
		c.lastSeq = e.Seq
		switch e.Kind {
		case RequestContinue:
			st.Continued = true
			msg := "continue requested" + by(e)
			if id != "" {
				if err := c.Driven.Continue(ctx, svc, id); err != nil {
					msg += ": " + err.Error()
				} else {
					msg += fmt.Sprintf(": %s deployment %s continued", svc, id)
				}
			}
			c.emit(d, Event{Kind: "request", Message: msg})
		case RequestPromote:
			st.Continued, st.Promoted = true, true
			c.emit(d, Event{Kind: "request", Message: "promote requested" + by(e) + ": the waits AWS lets cutover end are skipped as the deployment reaches them"})
			if id != "" {
				if p, err := ParsePhase(d.Phase); err == nil {
					c.promote(ctx, d, st, svc, id, p)
				}
			}
		case RequestStop:
			return fail(Stopped, nil, "stopped by `cutover stop`%s", by(e))
		case RequestRollback:
			return fail(Rollback, nil, "rollback requested with `cutover rollback`%s", by(e))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
