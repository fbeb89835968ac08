// Package local is cutover's local platform: it runs an environment's
// services as tasks on Docker Engine and routes them through the built-in
// load balancer (the `cutover proxy` process). `Up` brings an environment to
// the working tree's revision beside whatever ran before and switches
// traffic only once every new task is healthy; `Down` removes it all.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
)

// Env is one environment of a project on the local platform.
type Env struct {
	Config   *config.Config
	Name     string
	Runtime  *docker.Runtime
	Proxy    *proxy.Client
	Store    *store.Store
	Progress io.Writer     // human progress lines; io.Discard for none
	Timeout  time.Duration // how long new tasks may take to become healthy
	Log      *slog.Logger
}

// TaskInfo is one running task as reported to the user.
type TaskInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	HostPort int    `json:"host_port"`
}

// Details is what the store keeps about a running environment (EnvState.Details).
type Details struct {
	Color   string                `json:"color"`
	BuildID string                `json:"build_id,omitempty"`
	Tasks   map[string][]TaskInfo `json:"tasks"`
}

// UpResult is what `cutover up` reports.
type UpResult struct {
	Project     string                `json:"project"`
	Environment string                `json:"environment"`
	Revision    string                `json:"revision"`
	Color       string                `json:"color"`
	URL         string                `json:"url"`
	TestURL     string                `json:"test_url"`
	Tasks       map[string][]TaskInfo `json:"tasks"`
}

func (e *Env) say(format string, a ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, format+"\n", a...)
	}
}

func (e *Env) scope() string { return Scope(e.Config.Project, e.Name) }

func (e *Env) labels() docker.Labels {
	return docker.Labels{Project: e.Config.Project, Environment: e.Name}
}

// Up builds the images, starts the new set beside the current one, waits
// until every new task is healthy, moves all traffic to it at once, then
// drains and removes the old set. On any failure the new tasks are removed
// and the routes are put back as they were.
func (e *Env) Up(ctx context.Context) (UpResult, error) {
	env := e.Config.Environments[e.Name]
	buildID := NewBuildID(time.Now())
	images, err := BuildImages(ctx, e.Runtime, e.Config, buildID, nil, e.Progress)
	if err != nil {
		return UpResult{}, err
	}
	rev := NewRevision(e.Config, e.Name, images, "working tree")
	if err := e.Store.CreateRevision(ctx, rev); err != nil {
		return UpResult{}, err
	}

	prev, err := e.currentSet(ctx)
	if err != nil {
		return UpResult{}, err
	}
	color := Blue
	if prev != nil {
		color = otherColor(prev.Color)
	}
	// A failed or killed earlier attempt may have left tasks of this color;
	// they take no production traffic (the proxy's routes say so), but let
	// them finish any request in flight.
	if _, err := e.Runtime.RemoveTasks(ctx, docker.Labels{Project: e.Config.Project, Environment: e.Name, Color: color}, e.maxStopTimeout()); err != nil {
		return UpResult{}, err
	}

	next := colorSet{Color: color, Tasks: map[string][]taskAddr{}}
	var started []startedTask
	undo := func(cause error) error {
		cctx := context.WithoutCancel(ctx)
		if _, err := e.Runtime.RemoveTasks(cctx, docker.Labels{Project: e.Config.Project, Environment: e.Name, Color: color}, 0); err != nil {
			e.Log.Warn("removing the failed set", "err", err)
		}
		restore := proxy.State{}
		if prev != nil {
			restore = routes(e.Config, e.Name, nil, *prev, 100)
		}
		if err := e.Proxy.PutScope(cctx, e.scope(), restore); err != nil {
			e.Log.Warn("restoring routes", "err", err)
		}
		e.event(cctx, "up.failed", cause.Error(), nil)
		return cause
	}

	for _, name := range e.Config.ServiceNames() {
		svc := e.Config.Services[name]
		for i := range svc.DesiredCount {
			e.say("%s: starting task %d/%d (%s)", name, i+1, svc.DesiredCount, color)
			t, err := e.Runtime.StartTask(ctx, docker.TaskSpec{
				Name:          fmt.Sprintf("cutover-%s-%s-%s-%s-%d", e.Config.Project, e.Name, name, color, i+1),
				Image:         images[name],
				Labels:        docker.Labels{Project: e.Config.Project, Environment: e.Name, Service: name, Revision: rev.ID, Color: color},
				Env:           svc.Env,
				ContainerPort: svc.Port,
				StopTimeout:   svc.StopTimeout.Std(),
			})
			if err != nil {
				return UpResult{}, undo(fmt.Errorf("service %s: %w", name, err))
			}
			next.Tasks[name] = append(next.Tasks[name], taskAddr{ID: t.ID, Port: t.HostPort})
			started = append(started, startedTask{Service: name, Task: t, Group: groupName(e.scope(), name, color)})
		}
	}

	// Register the new set: all production traffic stays on the old set
	// (or, on a first start, goes to the new one as soon as it is healthy).
	percent := 0
	if prev == nil {
		percent = 100
	}
	if err := e.Proxy.PutScope(ctx, e.scope(), routes(e.Config, e.Name, prev, next, percent)); err != nil {
		return UpResult{}, undo(err)
	}
	err = waitHealthy(ctx, e.Runtime, e.Proxy, e.Config, started, e.Timeout, func(h, n int) {
		e.say("health: %d/%d tasks healthy", h, n)
	})
	if err != nil {
		return UpResult{}, undo(err)
	}
	if prev != nil {
		if err := e.Proxy.PutScope(ctx, e.scope(), routes(e.Config, e.Name, nil, next, 100)); err != nil {
			return UpResult{}, undo(err)
		}
		e.say("traffic: 100%% on %s", color)
	}

	details := Details{Color: color, BuildID: buildID, Tasks: map[string][]TaskInfo{}}
	for _, st := range started {
		details.Tasks[st.Service] = append(details.Tasks[st.Service], TaskInfo{ID: st.Task.ID, Name: st.Task.Name, HostPort: st.Task.HostPort})
	}
	if err := e.saveState(ctx, rev.ID, "up", details, "up", fmt.Sprintf("revision %s serving on %s", rev.ID, color)); err != nil {
		return UpResult{}, err
	}
	if prev != nil {
		e.retire(ctx, prev.Color)
	}
	return UpResult{
		Project: e.Config.Project, Environment: e.Name, Revision: rev.ID, Color: color,
		URL:     "http://127.0.0.1:" + strconv.Itoa(env.Listen.Port) + "/",
		TestURL: "http://127.0.0.1:" + strconv.Itoa(env.Listen.TestPort) + "/",
		Tasks:   details.Tasks,
	}, nil
}

// retire waits out the longest deregistration delay, so requests in flight
// on the old set finish, then stops and removes it.
func (e *Env) retire(ctx context.Context, color string) {
	var delay, grace time.Duration
	for _, svc := range e.Config.Services {
		delay = max(delay, svc.DeregistrationDelay.Std())
		grace = max(grace, svc.StopTimeout.Std())
	}
	e.say("draining %s for %s", color, delay)
	select {
	case <-ctx.Done():
	case <-time.After(delay):
	}
	n, err := e.Runtime.RemoveTasks(context.WithoutCancel(ctx), docker.Labels{Project: e.Config.Project, Environment: e.Name, Color: color}, grace)
	if err != nil {
		e.Log.Warn("removing the old set", "color", color, "err", err)
		return
	}
	e.say("removed %d %s tasks", n, color)
}

// currentSet finds the running set from the containers themselves (the
// source of truth for what is running), preferring the color the store
// says is serving when both colors have tasks.
func (e *Env) currentSet(ctx context.Context) (*colorSet, error) {
	tasks, err := e.Runtime.ListTasks(ctx, e.labels())
	if err != nil {
		return nil, err
	}
	byColor := map[string]*colorSet{}
	for _, t := range tasks {
		if !t.Running {
			continue
		}
		cs := byColor[t.Labels.Color]
		if cs == nil {
			cs = &colorSet{Color: t.Labels.Color, Tasks: map[string][]taskAddr{}}
			byColor[t.Labels.Color] = cs
		}
		cs.Tasks[t.Labels.Service] = append(cs.Tasks[t.Labels.Service], taskAddr{ID: t.ID, Port: t.HostPort})
	}
	if len(byColor) == 0 {
		return nil, nil
	}
	if st, _, err := e.Proxy.State(ctx); err == nil {
		if c := servingColor(st, e.scope()); byColor[c] != nil {
			return byColor[c], nil
		}
	}
	if st, err := e.Store.GetEnvState(ctx, e.Config.Project, e.Name); err == nil {
		var d Details
		if json.Unmarshal(st.Details, &d) == nil && byColor[d.Color] != nil {
			return byColor[d.Color], nil
		}
	}
	colors := make([]string, 0, len(byColor))
	for c := range byColor {
		colors = append(colors, c)
	}
	sort.Strings(colors)
	return byColor[colors[0]], nil
}

// NewRevision derives an immutable revision from the images and each
// service's runtime config: the same images and config give the same id.
func NewRevision(cfg *config.Config, env string, images map[string]string, source string) store.Revision {
	rev := store.Revision{Project: cfg.Project, Environment: env, Services: map[string]store.ServiceRevision{}, Source: source, CreatedAt: time.Now().UTC()}
	h := sha256.New()
	for _, name := range cfg.ServiceNames() {
		sr := store.ServiceRevision{Image: images[name], ConfigHash: cfg.Services[name].ConfigHash()}
		rev.Services[name] = sr
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", name, sr.Image, sr.ConfigHash)
	}
	rev.ID = "r-" + hex.EncodeToString(h.Sum(nil))[:12]
	return rev
}

// saveState records the environment's state and an event in one transaction.
func (e *Env) saveState(ctx context.Context, revision, status string, details any, kind, message string) error {
	raw, err := json.Marshal(details)
	if err != nil {
		return err
	}
	return e.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.PutEnvState(ctx, store.EnvState{Project: e.Config.Project, Environment: e.Name, Revision: revision, Status: status, Details: raw}, -1); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, store.Event{Project: e.Config.Project, Environment: e.Name, Kind: kind, Message: message, Data: raw})
		return err
	})
}

func (e *Env) event(ctx context.Context, kind, message string, data any) {
	raw, _ := json.Marshal(data)
	if _, err := e.Store.AppendEvent(ctx, store.Event{Project: e.Config.Project, Environment: e.Name, Kind: kind, Message: message, Data: raw}); err != nil {
		e.Log.Warn("recording event", "kind", kind, "err", err)
	}
}
