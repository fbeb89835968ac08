package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/store"
)

// waitFor says what a wait watches and what ends it.
type waitFor struct {
	until         time.Time
	untilHealthy  bool // Done as soon as every task of the new set is healthy
	untilContinue bool // Done as soon as `cutover continue` arrives
	watchNew      bool // a failed task of the new set fails the wait
	alarms        bool // alarms are evaluated on the new set's metrics
	what          string
}

// wait ticks until w.until (or its early end), watching requests, the new
// set's tasks and the alarms. It returns nil when the wait ended well.
func (c *Controller) wait(ctx context.Context, d *store.Deployment, st *State, w waitFor) *failure {
	var lastEmit, lastLook, lastSave time.Time
	var h SetHealth
	var statuses []alarm.Status
	for {
		// Requests are looked at every tick, so a rollback flips within one;
		// health and metrics, which cost Docker and proxy calls, every lookEvery.
		if f := c.pollRequests(ctx, d, st); f != nil {
			return f
		}
		if w.untilContinue && st.Continued {
			return nil
		}
		if st.Promoted && !w.untilHealthy {
			return nil // promoted: no wait but for health
		}
		now := time.Now()
		if now.Sub(lastLook) >= c.lookEvery() {
			lastLook = now
			if w.watchNew || w.untilHealthy {
				var err error
				if h, err = c.Platform.Health(ctx, st.NewColor); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fail(Failed, nil, "reading the health of the %s set: %v", st.NewColor, err)
				}
				if len(h.Failures) > 0 {
					return fail(Failed, map[string]any{"failures": h.Failures}, "%s", h.Failures[0].Error())
				}
				if w.untilHealthy && h.Total > 0 && h.Healthy == h.Total {
					c.emit(d, Event{Kind: "progress", Message: "new set healthy", Healthy: h.Healthy, Total: h.Total})
					return nil
				}
			}
			if w.alarms && c.alarms != nil {
				sample, err := c.Platform.Metrics(ctx, st.NewColor)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fail(Failed, nil, "reading metrics of the %s set: %v", st.NewColor, err)
				}
				statuses = c.alarms.Observe(sample)
				if s, firing := c.alarms.Firing(); firing {
					return fail(Alarmed, s, "%s", s.Reason())
				}
				if st.Alarms = statuses; now.Sub(lastSave) >= alarmSaveEvery {
					lastSave = now
					if err := c.save(ctx, d, *st); err != nil {
						return fail(Failed, nil, "%v", err)
					}
				}
			}
		}
		if !now.Before(w.until) {
			if w.untilHealthy {
				return fail(Failed, map[string]any{"health": h}, "the %s set was not healthy after %s: %d of %d tasks healthy (check the health check path and port, or raise --timeout)",
					st.NewColor, c.Timeout, h.Healthy, h.Total)
			}
			return nil
		}
		if now.Sub(lastEmit) >= time.Second {
			lastEmit = now
			c.emit(d, Event{Kind: "progress", Message: w.what, WaitLeft: w.until.Sub(now).Round(time.Second), Healthy: h.Healthy, Total: h.Total, Alarms: statuses})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(c.Tick, time.Until(w.until)+time.Millisecond)):
		}
	}
}

// alarmSaveEvery is how often a wait that watches alarms saves their states.
const alarmSaveEvery = 5 * time.Second

// lookEvery is how often waits read health and metrics: every tenth tick.
func (c *Controller) lookEvery() time.Duration { return 10 * c.Tick }

// pollRequests reads continue/stop/rollback requests that other cutover
// commands appended to the event log since the last look.
func (c *Controller) pollRequests(ctx context.Context, d *store.Deployment, st *State) *failure {
	events, err := c.Store.ListEvents(ctx, store.EventFilter{Project: c.Config.Project, Environment: c.Env, AfterSeq: c.lastSeq})
	if err != nil {
		return nil // the next tick tries again; a read error must not fail a deployment
	}
	for _, e := range events {
		c.lastSeq = e.Seq
		switch e.Kind {
		case RequestContinue:
			st.Continued = true
			c.emit(d, Event{Kind: "request", Message: "continue requested" + by(e)})
		case RequestPromote:
			st.Continued, st.Promoted = true, true
			c.emit(d, Event{Kind: "request", Message: "promote requested: remaining steps and waits skipped" + by(e)})
		case RequestStop:
			return fail(Stopped, nil, "stopped by `cutover stop`%s", by(e))
		case RequestRollback:
			return fail(Rollback, nil, "rollback requested with `cutover rollback`%s", by(e))
		}
	}
	return nil
}

func by(e store.Event) string {
	if e.Message == "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", e.Message)
}
