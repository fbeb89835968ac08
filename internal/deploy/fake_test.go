package deploy

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/store"
)

// fakePlatform is a scripted, in-memory Platform. It exists because these
// tests check the driver's decisions (which phase, which call, in which
// order, with which reason); the real platform (Docker Engine and the
// built-in load balancer) is covered by the end-to-end tests in e2e/.
//
// It records every ScaleSet and Route with the deployment phase stored at
// the time of the call, so a test can check that a phase was persisted
// before the driver acted on it. Tasks follow a script: healthy after a
// number of Health polls, or failed with an exit code. Metrics follow a
// script of the test's choice.
type fakePlatform struct {
	mu      sync.Mutex
	desired map[string]int
	sets    map[string]*fakeSet // by color
	routing Routing
	calls   []fakeCall
	nextID  int

	// behave says how a task of revision rev started in set color acts.
	behave func(color, rev string) taskScript
	// metrics returns the set's cumulative sample at its n-th Metrics call (from 1).
	metrics func(color string, n int) alarm.Sample
	// phase reads the deployment phase persisted in the store ("" if none).
	phase func() string
	// scaleErr, when set, makes ScaleSet fail.
	scaleErr func(color string, counts map[string]int) error

	metricCalls map[string]int
}

// taskScript is how one task behaves.
type taskScript struct {
	healthyAfter int         // Health polls of its set until it is healthy (0: at once)
	failAfter    int         // Health polls until it fails (0: never)
	failure      TaskFailure // reported once failed (Service and TaskID are filled in)
}

type fakeSet struct {
	rev    string
	counts map[string]int
	tasks  []*fakeTask
}

type fakeTask struct {
	id, service string
	script      taskScript
	polls       int
}

func (t *fakeTask) failed() bool  { return t.script.failAfter > 0 && t.polls >= t.script.failAfter }
func (t *fakeTask) healthy() bool { return !t.failed() && t.polls >= t.script.healthyAfter }

// fakeCall is one recorded mutation.
type fakeCall struct {
	Op      string // "scale" or "route"
	Color   string
	Rev     string
	Counts  map[string]int
	Routing Routing
	Phase   string // the deployment phase in the store when the call was made
	At      time.Time
	// After is, per color, the tasks that have not failed and the healthy
	// ones once the call is applied.
	After map[string][2]int
}

func (c fakeCall) String() string {
	if c.Op == "route" {
		return fmt.Sprintf("route%v test=%q (%s)", c.Routing.Production, c.Routing.Test, c.Phase)
	}
	return fmt.Sprintf("scale %s rev=%q %v (%s)", c.Color, c.Rev, c.Counts, c.Phase)
}

func newFakePlatform(desired map[string]int) *fakePlatform {
	return &fakePlatform{
		desired:     desired,
		sets:        map[string]*fakeSet{},
		routing:     Routing{Production: map[string]int{}},
		behave:      func(string, string) taskScript { return taskScript{} },
		metrics:     func(string, int) alarm.Sample { return alarm.Sample{At: time.Now()} },
		phase:       func() string { return "" },
		metricCalls: map[string]int{},
	}
}

// seed makes color run rev with the desired counts, all healthy, serving all traffic.
func (p *fakePlatform) seed(color, rev string) {
	p.seedSet(color, rev, p.desired)
	p.setRouting(map[string]int{color: 100})
}

// seedSet makes color run rev with counts healthy tasks; routing is unchanged.
func (p *fakePlatform) seedSet(color, rev string, counts map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked(color, rev, counts, func(string, string) taskScript { return taskScript{} })
}

func (p *fakePlatform) Desired() map[string]int { return maps.Clone(p.desired) }

func (p *fakePlatform) ScaleSet(ctx context.Context, color string, rev store.Revision, counts map[string]int) error {
	phase := p.phase()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, fakeCall{Op: "scale", Color: color, Rev: rev.ID, Counts: maps.Clone(counts), Phase: phase, At: time.Now()})
	if p.scaleErr != nil {
		if err := p.scaleErr(color, counts); err != nil {
			return err
		}
	}
	p.startLocked(color, rev.ID, counts, p.behave)
	p.calls[len(p.calls)-1].After = p.snapshotLocked()
	return nil
}

func (p *fakePlatform) snapshotLocked() map[string][2]int {
	out := map[string][2]int{}
	for color, s := range p.sets {
		var n [2]int
		for _, t := range s.tasks {
			if !t.failed() {
				n[0]++
			}
			if t.healthy() {
				n[1]++
			}
		}
		out[color] = n
	}
	return out
}

// startLocked brings set color to counts: failed tasks are replaced, as
// ECS replaces them, extra tasks removed, missing ones started with rev.
func (p *fakePlatform) startLocked(color, rev string, counts map[string]int, behave func(string, string) taskScript) {
	s := p.sets[color]
	if s == nil {
		s = &fakeSet{counts: map[string]int{}}
		p.sets[color] = s
	}
	if rev != "" {
		s.rev = rev
	}
	var kept []*fakeTask
	have := map[string]int{}
	for _, t := range s.tasks {
		if t.failed() || have[t.service] >= counts[t.service] {
			continue
		}
		have[t.service]++
		kept = append(kept, t)
	}
	for svc, n := range counts {
		for ; have[svc] < n; have[svc]++ {
			p.nextID++
			kept = append(kept, &fakeTask{id: fmt.Sprintf("%s-%s-%d", color, svc, p.nextID), service: svc, script: behave(color, s.rev)})
		}
	}
	s.tasks = kept
	s.counts = maps.Clone(counts)
	if len(kept) == 0 {
		delete(p.sets, color)
	}
}

func (p *fakePlatform) Health(ctx context.Context, color string) (SetHealth, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var h SetHealth
	s := p.sets[color]
	if s == nil {
		return h, nil
	}
	for _, n := range s.counts {
		h.Total += n
	}
	for _, t := range s.tasks {
		t.polls++
		switch {
		case t.failed():
			f := t.script.failure
			f.Service, f.TaskID = t.service, t.id
			h.Failures = append(h.Failures, f)
		case t.healthy():
			h.Healthy++
			h.Running++
		default:
			h.Running++
		}
	}
	return h, nil
}

func (p *fakePlatform) Route(ctx context.Context, r Routing) error {
	phase := p.phase()
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Production = maps.Clone(r.Production)
	p.calls = append(p.calls, fakeCall{Op: "route", Routing: r, Phase: phase, At: time.Now(), After: p.snapshotLocked()})
	p.routing = r
	return nil
}

func (p *fakePlatform) Metrics(ctx context.Context, color string) (alarm.Sample, error) {
	p.mu.Lock()
	p.metricCalls[color]++
	n := p.metricCalls[color]
	p.mu.Unlock()
	return p.metrics(color, n), nil
}

func (p *fakePlatform) Observe(ctx context.Context) (Observed, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var o Observed
	for _, c := range []string{"blue", "green"} {
		s := p.sets[c]
		if s == nil {
			continue
		}
		tasks := map[string]int{}
		for _, t := range s.tasks {
			if !t.failed() {
				tasks[t.service]++
			}
		}
		o.Sets = append(o.Sets, SetInfo{Color: c, Revision: s.rev, Tasks: tasks})
	}
	o.Routing = Routing{Production: maps.Clone(p.routing.Production), Test: p.routing.Test}
	return o, nil
}

// recorded returns the calls made so far.
func (p *fakePlatform) recorded() []fakeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]fakeCall(nil), p.calls...)
}

// routes returns the production routings applied, in order.
func (p *fakePlatform) routes() []map[string]int {
	var out []map[string]int
	for _, c := range p.recorded() {
		if c.Op == "route" {
			out = append(out, c.Routing.Production)
		}
	}
	return out
}

// running returns the tasks of color that have not failed, and how many are healthy.
func (p *fakePlatform) running(color string) (tasks, healthy int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.snapshotLocked()[color]
	return n[0], n[1]
}

// setRouting sets the routing a test starts from.
func (p *fakePlatform) setRouting(prod map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routing = Routing{Production: prod}
}

// revOf returns the revision set color runs, "" when it does not run.
func (p *fakePlatform) revOf(color string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sets[color]; s != nil {
		return s.rev
	}
	return ""
}
