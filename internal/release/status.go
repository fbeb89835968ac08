package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/secretstore"
	"github.com/cutoverdev/cutover/internal/store"
)

// Status reports env, or every environment when env is "". What the store
// knows is reported even while the Docker engine or the proxy is down; what
// could not be read is named in each Status's Unread instead of failing.
// A deployment left behind by a killed controller is reconciled first (on
// ECS: looked at once on AWS, and its end recorded if AWS says it ended).
func (m *Manager) Status(ctx context.Context, env string) ([]Status, error) {
	names := m.Config.EnvironmentNames()
	if env != "" {
		if _, err := m.environment(env); err != nil {
			return nil, err
		}
		names = []string{env}
	}
	var unread []string
	var rt *docker.Runtime
	pc := m.proxyClient()
	if m.needsDocker(env) {
		var err error
		if rt, err = m.runtime(ctx); err != nil {
			var down *docker.EngineUnreachableError
			if !errors.As(err, &down) {
				return nil, err
			}
			unread = append(unread, "tasks: "+err.Error())
		}
	}
	var targets []proxy.TargetStatus
	var proxyState *proxy.State
	targetsRead := false
	if ts, err := pc.Targets(ctx); err == nil {
		targets, targetsRead = ts, true
		if st, _, err := pc.State(ctx); err == nil {
			proxyState = &st
		}
	} else if m.needsDocker(env) {
		unread = append(unread, "target health: "+err.Error())
	}
	health := map[string]string{} // task ID -> state at the proxy
	for _, t := range targets {
		health[t.ID] = t.State
	}
	out := []Status{}
	for _, name := range names {
		if rt != nil {
			if err := m.Reconcile(ctx, name); err != nil {
				return nil, err
			}
		}
		e := m.Config.Environments[name]
		s := Status{Environment: name, Platform: e.Platform, Status: "never started", Tasks: []Task{}}
		var looked error
		if isECS(m.Config, name) {
			// A deployment left by a dead cutover: one look at AWS, recorded.
			looked = m.lookECS(ctx, name)
		}
		if err := m.fromStore(ctx, &s); err != nil {
			return nil, err
		}
		if isECS(m.Config, name) {
			if looked != nil {
				s.Unread = append(s.Unread, "deployment on AWS: "+looked.Error())
			}
			s.ECS = m.ecsStatus(ctx, name)
			out = append(out, s)
			continue
		}
		s.Unread = slices.Clip(unread) // its own appends must not write into the next environment's
		var missing secretstore.MissingError
		if _, err := m.secrets().Lookup(name, m.Config.SecretNames()); errors.As(err, &missing) {
			s.MissingSecrets = missing.Names
		} else if err != nil {
			s.Unread = append(s.Unread, "secrets: "+err.Error())
		}
		if d := s.Deployment; d != nil && d.Status == store.DeploymentInProgress && !deploy.Held(ctx, m.Store, m.Config.Project, name) {
			// Reconcile could not end it (no proxy answers, or no engine):
			// its times left are not running down, and nothing moves it on.
			start := "the load balancer (`cutover proxy start`)"
			if rt == nil {
				start = "the Docker engine"
			}
			s.Unread = append(s.Unread, fmt.Sprintf("deployment %s: the cutover that drove it (%s) is gone and it could not be rolled back here: "+
				"start %s and run `cutover status %s` again", d.ID, d.Owner, start, name))
		}
		scope := local.Scope(m.Config.Project, name) + "/"
		if proxyState != nil {
			s.Traffic = productionTraffic(*proxyState, scope)
		}
		s.Health = targetHealth(targets, scope)
		if rt != nil {
			tasks, err := rt.ListTasks(ctx, docker.Labels{Project: m.Config.Project, Environment: name})
			if err != nil {
				return nil, err
			}
			for _, t := range tasks {
				h := health[t.ID]
				switch {
				case !targetsRead:
					h = "unknown" // the proxy did not answer (Unread says why), not a task it lacks
				case h == "":
					h = "not registered"
				}
				s.Tasks = append(s.Tasks, Task{Service: t.Labels.Service, Name: t.Name, Color: t.Labels.Color,
					Revision: t.Labels.Revision, State: t.State, HostPort: t.HostPort, Health: h})
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// fromStore fills in what the store knows: the environment's state, the
// serving revision, the active (else last) deployment, where it stands and
// its alarms as last evaluated.
func (m *Manager) fromStore(ctx context.Context, s *Status) error {
	st, err := m.Store.GetEnvState(ctx, m.Config.Project, s.Environment)
	switch {
	case err == nil:
		s.Status, s.Revision = st.Status, st.Revision
		u := st.UpdatedAt
		s.UpdatedAt = &u
		if st.Revision != "" {
			if rev, err := m.Store.GetRevision(ctx, st.Revision); err == nil {
				s.Serving = &rev
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if d, err := m.Store.ActiveDeployment(ctx, m.Config.Project, s.Environment); err == nil {
		s.Deployment = &d
		s.Progress = progressOf(m.Config.Environments[s.Environment].Strategy, d, time.Now())
		var st deploy.State
		if json.Unmarshal(d.Data, &st) == nil {
			s.Alarms = st.Alarms
		}
	} else if ds, err := m.Store.ListDeployments(ctx, m.Config.Project, s.Environment, 1); err == nil && len(ds) == 1 {
		s.Deployment = &ds[0]
	}
	return nil
}

// progressOf is where an active blue/green deployment stands: its phase as
// step N of M, and the timed waits left, from its persisted state. The
// waits are the strategy's, or, for a deployment AWS runs, those its
// deployment configuration reported (deploy.CloudState.Schedule), for the
// current service and each service still to deploy.
func progressOf(s config.Strategy, d store.Deployment, now time.Time) *Progress {
	p, err := deploy.ParsePhase(d.Phase)
	if err != nil {
		return nil
	}
	pr := &Progress{Phase: d.Phase, Step: 1, Steps: 1}
	if p == deploy.PhaseRolling || p == deploy.PhaseRollingBack || p.Terminal() {
		return pr
	}
	var st deploy.State
	_ = json.Unmarshal(d.Data, &st)
	pr.Step, pr.Steps = int(p-deploy.PhasePending)+1, int(deploy.PhaseTerminating-deploy.PhasePending)+1
	sc, step, later := deploy.ScheduleOf(s), st.Step, 0
	if cs := st.Cloud; cs != nil {
		if cs.Schedule == nil {
			return pr // AWS has not said yet what this deployment waits for
		}
		sc, step = *cs.Schedule, cs.Schedule.StepAt(d.TrafficPercent)
		later = max(0, len(cs.Services)-len(cs.Done)-1)
	}
	wait := func(q deploy.Phase) time.Duration { // the length of q's timed wait
		switch q {
		case deploy.PhaseReadyWait:
			return sc.ReadyWait
		case deploy.PhaseBaking:
			return sc.Bake
		case deploy.PhaseTerminationWait:
			return sc.TerminationWait
		case deploy.PhaseShifting:
			var t time.Duration
			for _, step := range sc.Steps {
				t += step.Wait
			}
			return t
		}
		return 0
	}
	left := func(total time.Duration) time.Duration {
		if st.PhaseStarted.IsZero() {
			return total
		}
		return max(0, st.PhaseStarted.Add(total).Sub(now)).Round(time.Second)
	}
	switch {
	case p == deploy.PhaseShifting && st.Cloud != nil && d.TrafficPercent == 0:
		// AWS reports no weights while it shifts (ECS-native): the whole
		// shift is one timed wait from when it began.
		pr.PhaseLeft = left(wait(p))
	case p == deploy.PhaseShifting:
		if step < len(sc.Steps) {
			pr.PhaseLeft = left(sc.Steps[step].Wait)
			for _, st := range sc.Steps[step+1:] {
				pr.Left += st.Wait
			}
		}
	default:
		pr.PhaseLeft = left(wait(p))
	}
	pr.Left += pr.PhaseLeft
	for q := p + 1; q <= deploy.PhaseTerminating; q++ {
		pr.Left += wait(q)
	}
	pr.Left += time.Duration(later) * sc.Total()
	return pr
}

// productionTraffic is the production listener's split by color in the proxy's state.
func productionTraffic(st proxy.State, scope string) map[string]int {
	for _, l := range st.Listeners {
		if l.Name != scope+"production" || len(l.Rules) == 0 {
			continue
		}
		out := map[string]int{}
		for _, f := range l.Rules[0].Forward {
			out[f.TargetGroup[strings.LastIndexByte(f.TargetGroup, '/')+1:]] = f.Weight
		}
		return out
	}
	return nil
}

// targetHealth counts the scope's targets per service and color by state.
func targetHealth(targets []proxy.TargetStatus, scope string) []TargetHealth {
	var out []TargetHealth
	idx := map[string]int{}
	for _, t := range targets {
		rest, ok := strings.CutPrefix(t.Group, scope)
		if !ok {
			continue
		}
		service, color, _ := strings.Cut(rest, "/")
		i, ok := idx[rest]
		if !ok {
			i = len(out)
			idx[rest] = i
			out = append(out, TargetHealth{Service: service, Color: color})
		}
		switch t.State {
		case "healthy":
			out[i].Healthy++
		case "unhealthy":
			out[i].Unhealthy++
		default:
			out[i].Other++
		}
	}
	return out
}

// Watch is how `status --watch` repeats: every interval (never when 0),
// and whether --watch was given bare, without an interval of its own.
type Watch struct {
	Every time.Duration
	Bare  bool
}

// WatchStatus passes env's status (every environment's when env is "") to
// fn, then again every w.Every until ctx ends; once when it is 0.
//
// An unknown env that reads as an interval, after a bare --watch, was meant
// for it: its value is optional and so must follow it with "=": `--watch 2`
// is --watch (every 2s) and the environment "2". The error says so.
func (m *Manager) WatchStatus(ctx context.Context, env string, w Watch, fn func([]Status) error) error {
	every := w.Every
	for {
		out, err := m.Status(ctx, env)
		if err != nil {
			if interval, ok := looksLikeInterval(env); ok && w.Bare && m.Config.Environments[env] == nil {
				return UsageError{fmt.Sprintf("--watch %s: write --watch=%s (its interval follows \"=\"): after a space, %s is read as an environment, and %s has none named %q (environments: %s)",
					env, interval, env, m.configFile(), env, strings.Join(m.Config.EnvironmentNames(), ", "))}
			}
			return err
		}
		if err := fn(out); err != nil || every <= 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// looksLikeInterval tells whether s is a number of seconds or a duration,
// and returns it as a duration --watch takes ("2" is "2s").
func looksLikeInterval(s string) (string, bool) {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s + "s", true
	}
	if _, err := time.ParseDuration(s); err == nil {
		return s, true
	}
	return "", false
}
