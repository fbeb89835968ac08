package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// rolling replaces the old set batch by batch, bounded by maximum percent
// (how many tasks may run in all) and minimum healthy percent (how many must
// stay healthy). A new batch must be healthy before old tasks are drained.
// Failed tasks are replaced and counted; at ECS's threshold the circuit
// breaker trips and the deployment rolls back to the last completed revision.
func (c *Controller) rolling(ctx context.Context, d *store.Deployment, st *State) *failure {
	rev, err := c.Store.GetRevision(ctx, d.Revision)
	if err != nil {
		return fail(Failed, nil, "revision %s: %v", d.Revision, err)
	}
	s := c.env().Strategy
	desired := c.Platform.Desired()
	obs, err := c.Platform.Observe(ctx)
	if err != nil {
		return fail(Failed, nil, "observing the environment: %v", err)
	}
	newCounts, oldCounts := map[string]int{}, map[string]int{}
	if set, ok := obs.Set(st.NewColor); ok && set.Revision == rev.ID {
		newCounts = copyCounts(set.Tasks)
	}
	if set, ok := obs.Set(st.OldColor); ok && st.OldColor != "" {
		oldCounts = copyCounts(set.Tasks)
	}
	for {
		done := true
		for svc, want := range desired {
			if newCounts[svc] < want || oldCounts[svc] > 0 {
				done = false
			}
		}
		if done {
			return c.route(ctx, d, st, Routing{Production: map[string]int{st.NewColor: 100}})
		}
		for svc, want := range desired {
			maxTotal := want * s.MaximumPercent / 100
			add := min(want-newCounts[svc], maxTotal-newCounts[svc]-oldCounts[svc])
			if add <= 0 && newCounts[svc] < want {
				// No room to surge: drain old tasks down to the minimum healthy first.
				minHealthy := (want*s.MinimumHealthyPercent + 99) / 100
				remove := newCounts[svc] + oldCounts[svc] - minHealthy
				if remove < 1 {
					return fail(Failed, nil, "service %s (desired %d): maximum_percent %d and minimum_healthy_percent %d leave no room to start a new task without going below the minimum (raise strategy.maximum_percent or lower strategy.minimum_healthy_percent)",
						svc, want, s.MaximumPercent, s.MinimumHealthyPercent)
				}
				oldCounts[svc] = max(0, oldCounts[svc]-remove)
				add = min(want-newCounts[svc], maxTotal-newCounts[svc]-oldCounts[svc])
			}
			newCounts[svc] += max(add, 0)
		}
		if st.OldColor != "" {
			if err := c.Platform.ScaleSet(ctx, st.OldColor, store.Revision{}, oldCounts); err != nil {
				return fail(Failed, nil, "draining old tasks: %v", err)
			}
		}
		if err := c.Platform.ScaleSet(ctx, st.NewColor, rev, newCounts); err != nil {
			return fail(Failed, nil, "starting new tasks: %v", err)
		}
		if f := c.waitBatch(ctx, d, st, rev, newCounts); f != nil {
			return f
		}
		// The batch is healthy: old tasks it replaces leave, traffic follows the counts.
		for svc, want := range desired {
			oldCounts[svc] = max(0, min(oldCounts[svc], want-newCounts[svc]))
		}
		if f := c.route(ctx, d, st, proportional(st, newCounts, oldCounts)); f != nil {
			return f
		}
		if st.OldColor != "" {
			if err := c.Platform.ScaleSet(ctx, st.OldColor, store.Revision{}, oldCounts); err != nil {
				return fail(Failed, nil, "draining old tasks: %v", err)
			}
		}
	}
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func proportional(st *State, newCounts, oldCounts map[string]int) Routing {
	var n, o int
	for _, v := range newCounts {
		n += v
	}
	for _, v := range oldCounts {
		o += v
	}
	if st.OldColor == "" || o == 0 {
		return Routing{Production: map[string]int{st.NewColor: 100}}
	}
	pct := 100 * n / (n + o)
	return Routing{Production: map[string]int{st.NewColor: pct, st.OldColor: 100 - pct}}
}

// waitBatch waits until the new set's tasks are healthy, replacing failed
// ones, and trips the circuit breaker at the threshold.
func (c *Controller) waitBatch(ctx context.Context, d *store.Deployment, st *State, rev store.Revision, counts map[string]int) *failure {
	total := 0
	for _, v := range c.Platform.Desired() {
		total += v
	}
	threshold := config.CircuitBreakerThreshold(total)
	cb := c.env().Strategy.CircuitBreaker
	seen := map[string]bool{}
	var failures []TaskFailure
	deadline := time.Now().Add(c.Timeout)
	var lastEmit, healthySince time.Time
	settle := c.settleTime()
	for {
		if f := c.pollRequests(ctx, d, st); f != nil {
			return f
		}
		h, err := c.Platform.Health(ctx, st.NewColor)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fail(Failed, nil, "reading the health of the new tasks: %v", err)
		}
		fresh := false
		for _, f := range h.Failures {
			if seen[f.TaskID] {
				continue
			}
			seen[f.TaskID], fresh = true, true
			st.Failed++
			failures = append(failures, f)
			c.emit(d, Event{Kind: "failure", Message: fmt.Sprintf("task failed (%d of %d before the circuit breaker trips): %s", st.Failed, threshold, f.Error())})
		}
		if cb.Enable && st.Failed >= threshold {
			last := failures[len(failures)-1]
			return fail(Failed, map[string]any{"failures": failures, "threshold": threshold},
				"circuit breaker tripped: %d tasks failed to start or to become healthy (threshold %d); last: %s", st.Failed, threshold, last.Error())
		}
		if fresh {
			healthySince = time.Time{}
			if err := c.save(ctx, d, *st); err != nil {
				return fail(Failed, nil, "%v", err)
			}
			// Replace the failed tasks, as ECS does, until the breaker trips.
			if err := c.Platform.ScaleSet(ctx, st.NewColor, rev, counts); err != nil {
				return fail(Failed, nil, "replacing failed tasks: %v", err)
			}
			continue
		}
		// Healthy is not enough: a task that crashes seconds after passing its
		// checks must count toward the breaker before the old tasks go.
		if h.Total > 0 && h.Healthy >= h.Total {
			if healthySince.IsZero() {
				healthySince = time.Now()
			}
			if time.Since(healthySince) >= settle {
				return nil
			}
		} else {
			healthySince = time.Time{}
		}
		if healthySince.IsZero() && time.Now().After(deadline) {
			return fail(Failed, map[string]any{"health": h, "failures": failures}, "new tasks not healthy after %s: %d of %d healthy", c.Timeout, h.Healthy, h.Total)
		}
		if time.Since(lastEmit) >= time.Second {
			lastEmit = time.Now()
			c.emit(d, Event{Kind: "progress", Message: "waiting for the new batch to be healthy", Healthy: h.Healthy, Total: h.Total, WaitLeft: time.Until(deadline).Round(time.Second)})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.lookEvery()):
		}
	}
}

// settleTime is how long a batch must stay healthy before old tasks are
// drained: the strategy's bake time when set, else five health check
// intervals of the slowest service and at least minSettle.
func (c *Controller) settleTime() time.Duration {
	if b := c.env().Strategy.Bake.Std(); b > 0 {
		return b
	}
	d := minSettle
	for _, svc := range c.Config.Services {
		d = max(d, 5*svc.Health.Interval.Std())
	}
	return d
}

// minSettle catches a release that crashes seconds after passing its
// checks (a missing config read at first request, a bad migration...).
var minSettle = 5 * time.Second
