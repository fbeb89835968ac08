package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/secretstore"
	"github.com/cutoverdev/cutover/internal/store"
)

// Platform implements deploy.Platform for one environment: task sets are
// Docker containers labelled with their color, target groups and weights
// live in the cutover proxy under the environment's scope.
type Platform struct {
	Config  *config.Config
	Env     string
	Runtime *docker.Runtime
	Proxy   *proxy.Client
	Log     *slog.Logger
	// Secrets holds the values of services.NAME.secrets, read each time
	// tasks start and given to them only (never stored with the revision).
	Secrets secretstore.Store

	routing     *deploy.Routing                  // last routing applied; read from the proxy on first use
	sets        map[string]map[string][]taskAddr // tasks last published: color -> service -> tasks
	portChecked map[string]bool
	given       map[string]string // secret values given to tasks this process started, masked in what a task's logs quote
}

var _ deploy.Platform = (*Platform)(nil)

func (p *Platform) scope() string { return Scope(p.Config.Project, p.Env) }

func (p *Platform) labels(color string) docker.Labels {
	return docker.Labels{Project: p.Config.Project, Environment: p.Env, Color: color}
}

// Desired returns each service's desired count from cutover.yaml.
func (p *Platform) Desired() map[string]int {
	d := map[string]int{}
	for name, svc := range p.Config.Services {
		d[name] = svc.DesiredCount
	}
	return d
}

// ScaleSet implements deploy.Platform. Tasks of another revision and exited
// tasks in the set are replaced; extra tasks are deregistered, drained and
// stopped after the new routes are live.
func (p *Platform) ScaleSet(ctx context.Context, color string, rev store.Revision, counts map[string]int) error {
	tasks, err := p.Runtime.ListTasks(ctx, p.labels(color))
	if err != nil {
		return err
	}
	var drain, dead []docker.Task
	for _, name := range p.Config.ServiceNames() {
		want := counts[name]
		var keep []docker.Task
		for _, t := range tasks {
			if t.Labels.Service != name {
				continue
			}
			switch {
			case !t.Running:
				dead = append(dead, t)
			case rev.ID != "" && t.Labels.Revision != rev.ID:
				drain = append(drain, t)
			default:
				keep = append(keep, t)
			}
		}
		if len(keep) > want {
			drain = append(drain, keep[want:]...)
			keep = keep[:want]
		}
		if rev.ID == "" {
			continue // scale down only
		}
		svc := p.Config.Services[name]
		sr, ok := rev.Services[name]
		if !ok && len(keep) < want {
			return fmt.Errorf("revision %s has no image for service %s", rev.ID, name)
		}
		env := svc.Env
		if len(keep) < want {
			if env, err = p.taskEnv(name, svc); err != nil {
				return err
			}
		}
		for range want - len(keep) {
			t, err := p.Runtime.StartTask(ctx, docker.TaskSpec{
				Name:          fmt.Sprintf("cutover-%s-%s-%s-%s-%s", p.Config.Project, p.Env, name, color, randomSuffix()),
				Image:         sr.Image,
				Labels:        docker.Labels{Project: p.Config.Project, Environment: p.Env, Service: name, Revision: rev.ID, Color: color},
				Env:           env,
				ContainerPort: svc.Port,
				StopTimeout:   svc.StopTimeout.Std(),
			})
			if err != nil {
				if masked := p.maskSecrets([]string{err.Error()})[0]; masked != err.Error() {
					// The engine's error quoted the task's environment (a
					// variable it refused): the deployment records this error.
					return fmt.Errorf("service %s: %s", name, masked)
				}
				return fmt.Errorf("service %s: %w", name, err)
			}
			p.Log.Debug("started task", "service", name, "color", color, "task", t.Name)
		}
	}
	for _, t := range dead {
		if err := p.Runtime.RemoveTask(ctx, t.ID); err != nil {
			return err
		}
	}
	leaving := map[string]bool{}
	for _, t := range drain {
		leaving[t.ID] = true
	}
	if err := p.publish(ctx, leaving, true); err != nil {
		return err
	}
	return p.retire(ctx, drain)
}

// KeepRunning implements deploy.Keeper: the engine restarts the color's
// tasks on the same host port when they crash, or when the engine itself
// restarts, until cutover stops them.
func (p *Platform) KeepRunning(ctx context.Context, color string) error {
	tasks, err := p.Runtime.ListTasks(ctx, p.labels(color))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if err := p.Runtime.KeepRunning(ctx, t.ID); err != nil {
			return err
		}
	}
	return nil
}

// retire waits until the proxy has drained each task (or its group's
// deregistration delay passed), then stops it with its stop timeout.
func (p *Platform) retire(ctx context.Context, tasks []docker.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	var delay time.Duration
	for _, t := range tasks {
		if svc, ok := p.Config.Services[t.Labels.Service]; ok {
			delay = max(delay, svc.DeregistrationDelay.Std())
		}
	}
	deadline := time.Now().Add(delay)
	for time.Now().Before(deadline) {
		targets, err := p.Proxy.Targets(ctx)
		if err != nil {
			break
		}
		busy := false
		for _, tg := range targets {
			if slices.ContainsFunc(tasks, func(t docker.Task) bool { return t.ID == tg.ID }) {
				busy = true
			}
		}
		if !busy {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, t := range tasks {
		grace := time.Duration(0)
		if svc, ok := p.Config.Services[t.Labels.Service]; ok {
			grace = svc.StopTimeout.Std()
		}
		if err := p.Runtime.StopTask(context.WithoutCancel(ctx), t.ID, grace); err != nil {
			return err
		}
		if err := p.Runtime.RemoveTask(context.WithoutCancel(ctx), t.ID); err != nil {
			return err
		}
	}
	return nil
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Route implements deploy.Platform: one PutScope, so the change is atomic.
func (p *Platform) Route(ctx context.Context, r deploy.Routing) error {
	prev := p.routing
	p.routing = &r
	// The tasks did not change since the last ScaleSet: a routing change is
	// one PutScope, without asking Docker (this is the rollback flip).
	if err := p.publish(ctx, nil, p.sets == nil); err != nil {
		p.routing = prev // the proxy kept the old routes: so do we
		return err
	}
	return nil
}

// publish rebuilds the environment's scope at the proxy from the running
// tasks (less those leaving, which the proxy then drains) and the routing.
// Without refresh it reuses the tasks it published last.
func (p *Platform) publish(ctx context.Context, leaving map[string]bool, refresh bool) error {
	if p.routing == nil {
		obs, err := p.Observe(ctx)
		if err != nil {
			return err
		}
		p.routing = &obs.Routing
	}
	if !refresh && p.sets != nil {
		return p.putScope(ctx, p.sets)
	}
	tasks, err := p.Runtime.ListTasks(ctx, p.labels(""))
	if err != nil {
		return err
	}
	sets := map[string]map[string][]taskAddr{} // color -> service -> tasks
	for _, t := range tasks {
		if !t.Running || t.HostPort == 0 || leaving[t.ID] {
			continue
		}
		if sets[t.Labels.Color] == nil {
			sets[t.Labels.Color] = map[string][]taskAddr{}
		}
		sets[t.Labels.Color][t.Labels.Service] = append(sets[t.Labels.Color][t.Labels.Service], taskAddr{ID: t.ID, Port: t.HostPort})
	}
	if err := p.putScope(ctx, sets); err != nil {
		return err
	}
	p.sets = sets
	return nil
}

func (p *Platform) putScope(ctx context.Context, sets map[string]map[string][]taskAddr) error {
	err := p.Proxy.PutScope(ctx, p.scope(), buildScope(p.Config, p.Env, sets, *p.routing))
	if err != nil && strings.Contains(err.Error(), "in use") {
		l := p.Config.Environments[p.Env].Listen
		return fmt.Errorf("%w (environment %s listens on %d and %d: change environments.%s.listen in %s)",
			err, p.Env, l.Port, l.TestPort, p.Env, filepath.Base(p.Config.File))
	}
	return err
}

// Health implements deploy.Platform.
func (p *Platform) Health(ctx context.Context, color string) (deploy.SetHealth, error) {
	var h deploy.SetHealth
	tasks, err := p.Runtime.ListTasks(ctx, p.labels(color))
	if err != nil {
		return h, err
	}
	targets, err := p.Proxy.Targets(ctx)
	if err != nil {
		return h, err
	}
	state := map[string]proxy.TargetStatus{}
	for _, t := range targets {
		if t.State != "draining" && strings.HasSuffix(t.Group, "/"+color) && proxy.InScope(t.Group, p.scope()) {
			state[t.ID] = t
		}
	}
	if p.portChecked == nil {
		p.portChecked = map[string]bool{}
	}
	for _, t := range tasks {
		h.Total++
		if t.Running {
			h.Running++
		}
		ts, ok := state[t.ID]
		if ok && ts.State == "healthy" {
			h.Healthy++
			continue
		}
		if f := p.checkTask(ctx, t, ts); f != nil {
			h.Failures = append(h.Failures, *f)
		}
	}
	return h, nil
}

// Metrics implements deploy.Platform from the proxy's per-group stats.
func (p *Platform) Metrics(ctx context.Context, color string) (alarm.Sample, error) {
	st, err := p.Proxy.Stats(ctx)
	if err != nil {
		return alarm.Sample{}, err
	}
	var groups []string
	desired := 0
	for _, name := range p.Config.ServiceNames() {
		groups = append(groups, groupName(p.scope(), name, color))
		desired += p.Config.Services[name].DesiredCount
	}
	tasks, err := p.Runtime.ListTasks(ctx, p.labels(color))
	if err != nil {
		return alarm.Sample{}, err
	}
	running := 0
	for _, t := range tasks {
		if t.Running {
			running++
		}
	}
	return alarm.FromStats(st, groups, running, desired, time.Now()), nil
}

// Observe implements deploy.Platform: the running sets by label, and the
// routing as the proxy has it (the proxy outlives every controller).
func (p *Platform) Observe(ctx context.Context) (deploy.Observed, error) {
	var obs deploy.Observed
	tasks, err := p.Runtime.ListTasks(ctx, p.labels(""))
	if err != nil {
		return obs, err
	}
	byColor := map[string]*deploy.SetInfo{}
	revCount := map[string]map[string]int{}
	for _, t := range tasks {
		if !t.Running {
			continue
		}
		s := byColor[t.Labels.Color]
		if s == nil {
			s = &deploy.SetInfo{Color: t.Labels.Color, Tasks: map[string]int{}}
			byColor[t.Labels.Color] = s
			revCount[t.Labels.Color] = map[string]int{}
		}
		s.Tasks[t.Labels.Service]++
		revCount[t.Labels.Color][t.Labels.Revision]++
	}
	for color, s := range byColor {
		best := 0
		for rev, n := range revCount[color] {
			if n > best || n == best && rev < s.Revision {
				s.Revision, best = rev, n
			}
		}
		obs.Sets = append(obs.Sets, *s)
	}
	sort.Slice(obs.Sets, func(i, j int) bool { return obs.Sets[i].Color < obs.Sets[j].Color })
	st, _, err := p.Proxy.State(ctx)
	if err != nil {
		return obs, err
	}
	obs.Routing = routingOf(st, p.scope())
	return obs, nil
}

// routingOf reads production weights and the test listener's color back
// from the proxy state of a scope.
func routingOf(st proxy.State, scope string) deploy.Routing {
	r := deploy.Routing{Production: map[string]int{}}
	var prod, test []proxy.WeightedTarget
	for _, l := range st.Scoped(scope).Listeners {
		if len(l.Rules) == 0 {
			continue
		}
		switch l.Name {
		case listenerName(scope, "production"):
			prod = l.Rules[0].Forward
		case listenerName(scope, "test"):
			test = l.Rules[0].Forward
		}
	}
	for _, f := range prod {
		r.Production[colorOfGroup(f.TargetGroup)] = f.Weight
	}
	if len(test) == 1 && !(len(prod) == 1 && prod[0].TargetGroup == test[0].TargetGroup) {
		r.Test = colorOfGroup(test[0].TargetGroup)
	}
	return r
}

// taskEnv is the environment of a service's new tasks: services.NAME.env
// and the values of its secrets, looked up now (a rotated value reaches the
// tasks started from now on), remembered to be masked in what they print.
func (p *Platform) taskEnv(name string, svc *config.Service) (map[string]string, error) {
	if len(svc.Secrets) == 0 {
		return svc.Env, nil
	}
	secrets, err := p.Secrets.Lookup(p.Env, svc.Secrets)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", name, err)
	}
	env := maps.Clone(svc.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, secrets)
	if p.given == nil {
		p.given = map[string]string{}
	}
	for k, v := range secrets {
		p.given[name+"/"+k] = v
	}
	return env, nil
}

// maskSecrets masks, in lines a task wrote, the values of the
// environment's secrets: those stored now and those given to tasks this
// process started (a value rotated since).
func (p *Platform) maskSecrets(lines []string) []string {
	values := maps.Clone(p.given)
	if values == nil {
		values = map[string]string{}
	}
	if stored, err := p.Secrets.Values(p.Env); err == nil {
		for k, v := range stored {
			values["stored/"+k] = v
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = secretstore.Mask(l, values)
	}
	return out
}

// checkTask names why a task that is not healthy will never be: it exited,
// nothing listens on its port, or it keeps failing its health check.
func (p *Platform) checkTask(ctx context.Context, t docker.Task, ts proxy.TargetStatus) *deploy.TaskFailure {
	if !t.Running {
		code := t.ExitCode
		f := &deploy.TaskFailure{Service: t.Labels.Service, TaskID: t.ID, ExitCode: &code,
			Reason: fmt.Sprintf("task %s exited with code %d", t.Name, t.ExitCode)}
		if t.OOMKilled {
			f.Reason += " (killed: out of memory)"
		}
		if logs, _ := p.Runtime.LastLogLines(context.WithoutCancel(ctx), t.ID, 5); len(logs) > 0 {
			// The failure is recorded and shown (deployment reason, events,
			// status, the API, a pipeline's log): never a secret the task printed.
			logs = p.maskSecrets(logs)
			f.Logs = logs
			f.Reason += fmt.Sprintf(": %q", logs[len(logs)-1])
		}
		return f
	}
	svc, ok := p.Config.Services[t.Labels.Service]
	if !ok {
		return nil
	}
	h := svc.Health
	elapsed := time.Since(t.StartedAt)
	// A healthy task passes HealthyThreshold checks one interval apart after
	// the grace period; give it that plus two intervals before judging.
	expected := h.GracePeriod.Std() + time.Duration(h.HealthyThreshold+2)*h.Interval.Std()
	if elapsed < expected {
		return nil
	}
	if !p.portChecked[t.ID] {
		p.portChecked[t.ID] = true
		if ports, err := p.Runtime.ListeningPorts(ctx, t.ID); err == nil && !slices.Contains(ports, svc.Port) {
			reason := fmt.Sprintf("nothing is listening on container port %d", svc.Port)
			if len(ports) > 0 {
				reason += "; the process listens on " + joinInts(ports)
			}
			return &deploy.TaskFailure{Service: t.Labels.Service, TaskID: t.ID,
				Reason: reason + fmt.Sprintf(" (fix services.%s.port or the application's port)", t.Labels.Service)}
		}
	}
	// Unhealthy for as long as the unhealthy threshold takes, after the grace period.
	if ts.State == "unhealthy" && elapsed > expected+time.Duration(h.UnhealthyThreshold)*h.Interval.Std() {
		return &deploy.TaskFailure{Service: t.Labels.Service, TaskID: t.ID,
			Reason: fmt.Sprintf("task %s fails its health check (%s): %s", t.Name, h.Path, orDefault(ts.Reason, "unhealthy"))}
	}
	return nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
