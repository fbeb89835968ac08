package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/store"
)

// runPhase does one phase's work and says how it ended (nil = Done).
func (c *Controller) runPhase(ctx context.Context, d *store.Deployment, st *State, p Phase) *failure {
	env := c.env()
	hooks := env.Hooks
	switch p {
	case PhasePending, PhaseAllowTestTraffic:
		if p == PhaseAllowTestTraffic {
			return c.route(ctx, d, st, st.oldPercentRouting(0, st.NewColor))
		}
		return nil
	case PhaseBeforeInstall:
		return c.hooks(ctx, d, st, config.EventBeforeInstall, hooks.BeforeInstall)
	case PhaseInstall:
		return c.install(ctx, d, st)
	case PhaseAfterInstall:
		return c.hooks(ctx, d, st, config.EventAfterInstall, hooks.AfterInstall)
	case PhaseAfterAllowTestTraffic:
		return c.hooks(ctx, d, st, config.EventAfterAllowTestTraffic, hooks.AfterAllowTestTraffic)
	case PhaseBeforeAllowTraffic:
		return c.hooks(ctx, d, st, config.EventBeforeAllowTraffic, hooks.BeforeAllowTraffic)
	case PhaseReadyWait:
		return c.readyWait(ctx, d, st)
	case PhaseShifting:
		return c.shift(ctx, d, st)
	case PhaseAfterAllowTraffic:
		return c.hooks(ctx, d, st, config.EventAfterAllowTraffic, hooks.AfterAllowTraffic)
	case PhaseBaking:
		if env.Strategy.Bake.Std() <= 0 {
			return nil
		}
		return c.wait(ctx, d, st, waitFor{until: st.PhaseStarted.Add(env.Strategy.Bake.Std()), watchNew: true, alarms: true, what: "baking"})
	case PhaseTerminationWait:
		if st.OldColor == "" {
			return nil
		}
		// The new set is watched: if it fails now, traffic flips back while the original set is alive.
		return c.wait(ctx, d, st, waitFor{until: st.PhaseStarted.Add(env.Strategy.TerminationWait.Std()), watchNew: true, what: "termination wait (rollback is instant)"})
	case PhaseTerminating:
		if st.OldColor == "" {
			return nil
		}
		// Deregister the original set first so the proxy drains it, then stop it.
		if f := c.route(ctx, d, st, Routing{Production: map[string]int{st.NewColor: 100}}); f != nil {
			return f
		}
		if err := c.Platform.ScaleSet(ctx, st.OldColor, store.Revision{}, zeroCounts(c.Platform.Desired())); err != nil {
			return fail(Failed, nil, "stopping the %s set: %v", st.OldColor, err)
		}
		return nil
	case PhaseRolling:
		return c.rolling(ctx, d, st)
	case PhaseRollingBack:
		return c.rollBack(ctx, d, st)
	}
	return fail(Failed, nil, "no work defined for phase %s", p)
}

// oldPercentRouting keeps production on the old set except pct on the new one.
func (st State) oldPercentRouting(pct int, test string) Routing {
	r := Routing{Production: map[string]int{}, Test: test}
	if st.OldColor == "" {
		r.Production[st.NewColor] = 100 // a first deployment has nothing else to serve
		return r
	}
	r.Production[st.NewColor] = pct
	r.Production[st.OldColor] = 100 - pct
	return r
}

func (c *Controller) route(ctx context.Context, d *store.Deployment, st *State, r Routing) *failure {
	if err := c.Platform.Route(ctx, r); err != nil {
		return fail(Failed, nil, "changing traffic: %v", err)
	}
	d.TrafficPercent = r.Production[st.NewColor]
	c.emit(d, Event{Kind: "traffic", Traffic: r.Production, Message: trafficMessage(r, st.NewColor)})
	return nil
}

// trafficMessage says the split with the new set named, since the colors
// alternate from one deployment to the next: "production traffic: blue
// (new) 10%, green 90%".
func trafficMessage(r Routing, newColor string) string {
	var parts []string
	for _, c := range []string{"blue", "green"} {
		if v, ok := r.Production[c]; ok {
			name := c
			if c == newColor {
				name += " (new)"
			}
			parts = append(parts, fmt.Sprintf("%s %d%%", name, v))
		}
	}
	return "production traffic: " + strings.Join(parts, ", ")
}

func (c *Controller) hooks(ctx context.Context, d *store.Deployment, st *State, event string, hooks []config.Hook) *failure {
	if len(hooks) == 0 {
		return nil
	}
	if f := c.pollRequests(ctx, d, st); f != nil {
		return f
	}
	results, err := hook.RunAll(ctx, event, hooks, c.Hooks)
	for _, r := range results {
		c.emit(d, Event{Kind: "hook", Message: fmt.Sprintf("%s %s: %s", event, r.Name, okText(r.OK, r.Detail))})
	}
	if err != nil {
		return fail(Failed, map[string]any{"hooks": results}, "%s hook failed: %v", event, err)
	}
	return nil
}

func okText(ok bool, detail string) string {
	if ok {
		return "passed"
	}
	return "failed: " + detail
}

func (c *Controller) install(ctx context.Context, d *store.Deployment, st *State) *failure {
	rev, err := c.Store.GetRevision(ctx, d.Revision)
	if err != nil {
		return fail(Failed, nil, "revision %s: %v", d.Revision, err)
	}
	if err := c.Platform.ScaleSet(ctx, st.NewColor, rev, c.Platform.Desired()); err != nil {
		return fail(Failed, nil, "starting the %s set: %v", st.NewColor, err)
	}
	return c.wait(ctx, d, st, waitFor{until: time.Now().Add(c.Timeout), untilHealthy: true, watchNew: true, what: "waiting for the new set to be healthy"})
}

func (c *Controller) readyWait(ctx context.Context, d *store.Deployment, st *State) *failure {
	s := c.env().Strategy
	if !s.ManualContinue {
		if s.ReadyWait.Std() <= 0 {
			return nil
		}
		return c.wait(ctx, d, st, waitFor{until: st.PhaseStarted.Add(s.ReadyWait.Std()), watchNew: true, what: "ready wait"})
	}
	limit := s.ReadyWait.Std()
	if limit <= 0 {
		limit = 7 * 24 * time.Hour
	}
	f := c.wait(ctx, d, st, waitFor{until: st.PhaseStarted.Add(limit), watchNew: true, untilContinue: true, what: "waiting for `cutover continue " + c.Env + "`"})
	if f == nil && !st.Continued {
		return fail(Stopped, nil, "nobody ran `cutover continue %s` within the ready wait of %s", c.Env, limit)
	}
	return f
}

func (c *Controller) shift(ctx context.Context, d *store.Deployment, st *State) *failure {
	steps := c.env().Strategy.TrafficSteps()
	if st.OldColor == "" || len(steps) == 0 {
		steps = []config.TrafficStep{{Percent: 100}}
	}
	if c.alarms == nil {
		base, err := c.Platform.Metrics(ctx, st.NewColor)
		if err != nil {
			return fail(Failed, nil, "reading metrics of the %s set: %v", st.NewColor, err)
		}
		c.alarms = alarm.New(c.env().Strategy.Alarms, base)
	}
	for i := st.Step; i < len(steps); i++ {
		step := steps[i]
		if st.Promoted {
			i, step = len(steps)-1, config.TrafficStep{Percent: 100}
		}
		if f := c.route(ctx, d, st, st.oldPercentRouting(step.Percent, st.NewColor)); f != nil {
			return f
		}
		st.Step = i
		st.PhaseStarted = time.Now().UTC()
		if err := c.save(ctx, d, *st); err != nil {
			return fail(Failed, nil, "%v", err)
		}
		if step.Wait.Std() > 0 {
			what := fmt.Sprintf("%d%% on %s", step.Percent, st.NewColor)
			if f := c.wait(ctx, d, st, waitFor{until: st.PhaseStarted.Add(step.Wait.Std()), watchNew: true, alarms: true, what: what}); f != nil {
				return f
			}
		}
	}
	return nil
}

func (c *Controller) rollBack(ctx context.Context, d *store.Deployment, st *State) *failure {
	if st.OldColor != "" {
		// During blue/green the original set is intact: flip at once. A rolling
		// deployment may have drained it: bring it back to the desired count first.
		h, err := c.Platform.Health(ctx, st.OldColor)
		if err != nil || h.Total == 0 || h.Healthy < h.Total || !sameCounts(h, c.Platform.Desired()) {
			if f := c.restoreOld(ctx, d, st); f != nil {
				return f
			}
		}
		if f := c.route(ctx, d, st, Routing{Production: map[string]int{st.OldColor: 100}}); f != nil {
			return f
		}
	}
	if err := c.Platform.ScaleSet(context.WithoutCancel(ctx), st.NewColor, store.Revision{}, zeroCounts(c.Platform.Desired())); err != nil {
		return fail(Failed, nil, "removing the %s set: %v", st.NewColor, err)
	}
	if st.OldColor == "" {
		if err := c.Platform.Route(ctx, Routing{Production: map[string]int{}}); err != nil {
			return fail(Failed, nil, "removing routes: %v", err)
		}
		d.TrafficPercent = 0 // no route is left: the new set serves nothing
	}
	return nil
}

func sameCounts(h SetHealth, desired map[string]int) bool {
	total := 0
	for _, v := range desired {
		total += v
	}
	return h.Total == total
}

// restoreOld scales the original set back to the desired count of its
// revision (the last completed one) and waits until it is healthy.
func (c *Controller) restoreOld(ctx context.Context, d *store.Deployment, st *State) *failure {
	if d.PreviousRevision == "" {
		return fail(Failed, nil, "the %s set is not fully healthy and its revision is unknown; not routing traffic to it", st.OldColor)
	}
	prev, err := c.Store.GetRevision(ctx, d.PreviousRevision)
	if err != nil {
		return fail(Failed, nil, "revision %s: %v", d.PreviousRevision, err)
	}
	if err := c.Platform.ScaleSet(ctx, st.OldColor, prev, c.Platform.Desired()); err != nil {
		return fail(Failed, nil, "restoring the %s set: %v", st.OldColor, err)
	}
	deadline := time.Now().Add(c.Timeout)
	for {
		h, err := c.Platform.Health(ctx, st.OldColor)
		if err == nil && h.Total > 0 && h.Healthy >= h.Total {
			return nil
		}
		if time.Now().After(deadline) {
			return fail(Failed, map[string]any{"health": h}, "the %s set (revision %s) was not healthy again after %s", st.OldColor, prev.ID, c.Timeout)
		}
		select {
		case <-ctx.Done():
			return fail(Failed, nil, "interrupted while restoring the %s set", st.OldColor)
		case <-time.After(c.lookEvery()):
		}
	}
}

func zeroCounts(desired map[string]int) map[string]int {
	z := make(map[string]int, len(desired))
	for s := range desired {
		z[s] = 0
	}
	return z
}
