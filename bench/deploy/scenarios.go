package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// The steady load of every scenario, on the production listener.
const (
	loadRate        = 1000
	loadConcurrency = 16
	loadPath        = "/api/appointments" // a business endpoint: the error500 and slow faults show on it
	probePath       = "/api/health"
	loadBound       = 5 * time.Minute // no scenario is allowed to run longer
	badReleaseBound = 3 * time.Minute // an alarm that never fires ends here
)

// Figure names used by the goals.
const (
	figHealthyFull = "new set healthy → 100% traffic (events)"
	figRequestFlip = "rollback request → traffic flip (events)"
	figStartDone   = "release start → rolled back (result event)"
)

type bench struct {
	h       *harness
	imagesA map[string]string // the first build, version A
	imagesB map[string]string // the second build, version B
}

func (b *bench) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", b.h.port, path) }

// load is one bounded loadgen run in the background.
type load struct {
	cancel context.CancelFunc
	done   chan loadgen.Result
	err    error
}

func (b *bench) startLoad(ctx context.Context) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, done: make(chan loadgen.Result, 1)}
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: b.url(loadPath), Concurrency: loadConcurrency, Rate: loadRate,
			Duration: loadBound, MaxRequests: loadRate * int(loadBound/time.Second), Timeout: 5 * time.Second})
		l.err = err
		l.done <- res
	}()
	return l
}

// stop ends the load a moment after the scenario, so its last requests count.
func (l *load) stop() (loadgen.Result, error) {
	time.Sleep(300 * time.Millisecond)
	l.cancel()
	res := <-l.done
	return res, l.err
}

func (b *bench) all(ctx context.Context) (Report, error) {
	rep := Report{Project: b.h.project, Load: fmt.Sprintf("loadgen %d req/s, %d workers, GET %s on 127.0.0.1:%d", loadRate, loadConcurrency, loadPath, b.h.port)}
	err := b.scenarios(ctx, &rep)
	rep.Goals = []Goal{
		durationGoal("switch: new set healthy → 100% traffic", rep.find("good"), figHealthyFull, 100*time.Millisecond),
		durationGoal("rollback: request → traffic flip", rep.find("rollback"), figRequestFlip, 100*time.Millisecond),
		durationGoal("exit: detected and rolled back", rep.find("exit"), figStartDone, 10*time.Second),
		durationGoal("wrong port: detected and rolled back", rep.find("port"), figStartDone, 10*time.Second),
		noFailuresGoal("good deploy: no failed request", rep.find("good")),
		noFailuresGoal("rollback in termination wait: no failed request", rep.find("rollback")),
		noFailuresGoal("exit rollback: no failed request", rep.find("exit")),
		noFailuresGoal("wrong port rollback: no failed request", rep.find("port")),
	}
	return rep, err
}

// scenarios runs every scenario in order, each starting from the last one's end.
func (b *bench) scenarios(ctx context.Context, rep *Report) error {
	if err := b.firstDeploy(ctx); err != nil {
		return err
	}
	s, err := b.goodDeploy(ctx)
	rep.add(s, err)
	if err != nil {
		return err
	}
	s, err = b.rollbackInTerminationWait(ctx)
	rep.add(s, err)
	if err != nil {
		return err
	}
	for _, f := range []struct{ key, name, fault string }{
		{"exit", "exit", "exit"}, {"port", "wrong port", "port=5201"}, {"error500", "500s", "error500"}, {"slow", "slow", "slow=800ms"},
	} {
		s, err := b.badRelease(ctx, f.key, f.name, f.fault)
		rep.add(s, err)
		if err != nil {
			return err
		}
	}
	return nil
}

// newBuild returns the images of the one build made since before.
func (b *bench) newBuild(ctx context.Context, before map[string]map[string]string) (map[string]string, error) {
	after, err := b.h.images(ctx)
	if err != nil {
		return nil, err
	}
	for _, build := range slices.Sorted(maps.Keys(after)) {
		if _, old := before[build]; !old {
			return after[build], nil
		}
	}
	return nil, errors.New("the deploy built no image labelled with the project")
}

// firstDeploy puts version A in production (no load: nothing serves yet).
func (b *bench) firstDeploy(ctx context.Context) error {
	progressf("first deploy: building the example (version A) and starting it")
	if err := b.h.writeConfig(variant{allAtOnce: true, terminationWait: "2s"}); err != nil {
		return err
	}
	before, err := b.h.images(ctx)
	if err != nil {
		return err
	}
	r, err := b.h.deploy(ctx, nil, nil)
	if err != nil {
		return err
	}
	if r.Result.Status != "succeeded" {
		return fmt.Errorf("first deploy %s: %s", r.Result.Status, r.Result.Reason)
	}
	b.imagesA, err = b.newBuild(ctx, before)
	return err
}

// goodDeploy builds version B and deploys it AllAtOnce under load; the
// version probe sees when production answers with B.
func (b *bench) goodDeploy(ctx context.Context) (Scenario, error) {
	s := Scenario{Key: "good", Name: "good deploy (AllAtOnce, builds B)"}
	progressf("%s under load", s.Name)
	before, err := b.h.images(ctx)
	if err != nil {
		return s, err
	}
	p, err := startProbe(ctx, b.url(probePath), loadBound)
	if err != nil {
		return s, err
	}
	l := b.startLoad(ctx)
	time.Sleep(time.Second)
	r, derr := b.h.deploy(ctx, nil, nil)
	res, lerr := l.stop()
	p.stop()
	if err := errors.Join(derr, lerr); err != nil {
		return s, err
	}
	s.Load, s.Probe = res, &ProbeResult{Requests: p.requests, Failed: p.failed}
	s.Status, s.Reason = r.Result.Status, r.Result.Reason
	if b.imagesB, err = b.newBuild(ctx, before); err != nil {
		return s, err
	}
	healthy, full, ok := switchTimes(r.Events)
	seen, seenOK := p.firstAfter(healthy)
	s.Figures = []Figure{
		figure(figHealthyFull, healthy, full, ok, "controller's event times"),
		figure("new set healthy → first response of B (external)", healthy, seen.At, ok && seenOK, "version probe every 2ms on "+probePath),
		figure("deploy command wall time", r.Start, r.End, true, "includes building B and a 2s termination wait"),
	}
	return s, nil
}

// rollbackInTerminationWait deploys A over B, and once the deployment is in
// its 20s termination wait runs `cutover rollback production`.
func (b *bench) rollbackInTerminationWait(ctx context.Context) (Scenario, error) {
	s := Scenario{Key: "rollback", Name: "rollback in termination wait (20s)"}
	progressf("%s under load", s.Name)
	if err := b.h.writeConfig(variant{allAtOnce: true, terminationWait: "20s"}); err != nil {
		return s, err
	}
	p, err := startProbe(ctx, b.url(probePath), loadBound)
	if err != nil {
		return s, err
	}
	l := b.startLoad(ctx)
	time.Sleep(time.Second)
	waiting := make(chan struct{}, 1)
	type deployed struct {
		r   deployRun
		err error
	}
	done := make(chan deployed, 1)
	go func() {
		r, err := b.h.deploy(ctx, b.imagesA, func(ev event) {
			if ev.Kind == "phase" && ev.Phase == "TerminationWait" {
				select {
				case waiting <- struct{}{}:
				default:
				}
			}
		})
		done <- deployed{r, err}
	}()
	var rbStart, rbEnd time.Time
	var rbErr error
	select {
	case <-waiting:
		time.Sleep(time.Second) // let the probe see version A serve
		progressf("in the termination wait: cutover rollback production")
		rbStart = time.Now()
		_, rbErr = b.h.run(ctx, "rollback", "production", "--output", "json")
		rbEnd = time.Now()
	case d := <-done:
		done <- d // the deployment ended before its termination wait
	}
	d := <-done
	res, lerr := l.stop()
	p.stop()
	if err := errors.Join(d.err, rbErr, lerr); err != nil {
		return s, err
	}
	if rbStart.IsZero() {
		return s, fmt.Errorf("the deployment never reached its termination wait: %s", outcome(d.r))
	}
	s.Load, s.Probe = res, &ProbeResult{Requests: p.requests, Failed: p.failed}
	s.Status, s.Reason = d.r.Result.Status, d.r.Result.Reason
	healthy, full, ok := switchTimes(d.r.Events)
	flip, flipOK := flipBack(d.r.Events)
	requested, reqErr := b.h.rollbackRequested(ctx)
	seen, seenOK := p.firstAfter(rbStart)
	s.Figures = []Figure{
		figure(figHealthyFull, healthy, full, ok, "the deploy of A before the rollback"),
		figure("rollback command wall time", rbStart, rbEnd, true, "includes draining and stopping the new set"),
		figure(figRequestFlip, requested, flip.Time, flipOK && reqErr == nil, "request time from the event log"),
		figure("rollback command start → traffic flip (events)", rbStart, flip.Time, flipOK, "includes starting cutover"),
		figure("rollback command start → first response of B (external)", rbStart, seen.At, seenOK, "version probe every 2ms on "+probePath),
	}
	return s, nil
}

// badRelease deploys B with BLUEMED_FAULT=fault under the example's own
// strategy (Linear10PercentEvery1Minute, its alarms, default periods).
func (b *bench) badRelease(ctx context.Context, key, name, fault string) (Scenario, error) {
	s := Scenario{Key: key, Name: "bad release: " + name + " (BLUEMED_FAULT=" + fault + ")"}
	progressf("%s under load", s.Name)
	if err := b.h.writeConfig(variant{fault: fault}); err != nil {
		return s, err
	}
	l := b.startLoad(ctx)
	time.Sleep(time.Second)
	dctx, cancel := context.WithTimeout(ctx, badReleaseBound)
	r, derr := b.h.deploy(dctx, b.imagesB, nil)
	timedOut := dctx.Err() != nil && ctx.Err() == nil
	cancel()
	if timedOut {
		// Not caught in time: roll it back so the next scenario starts clean.
		progressf("%s: not rolled back within %s; cutover rollback production", name, badReleaseBound)
		if _, err := b.h.run(ctx, "rollback", "production"); err != nil {
			derr = errors.Join(derr, err)
		}
	}
	res, lerr := l.stop()
	if timedOut {
		s.Load, s.Status, s.Reason = res, "not_rolled_back", fmt.Sprintf("not rolled back within %s: interrupted, then rolled back with cutover rollback", badReleaseBound)
		return s, lerr
	}
	if err := errors.Join(derr, lerr); err != nil {
		return s, err
	}
	s.Load, s.Status, s.Reason = res, r.Result.Status, r.Result.Reason
	fail, failOK := failed(r.Events)
	end, endOK := finished(r.Events)
	s.Figures = []Figure{figure("release start → failure detected (events)", r.Start, fail.Time, failOK, "start = cutover deploy started")}
	if shift, ok := firstShift(r.Events); ok {
		s.Figures = append(s.Figures, figure("first traffic on the new set → alarm (events)", shift.Time, fail.Time, failOK, shift.Message))
	}
	s.Figures = append(s.Figures,
		figure(figStartDone, r.Start, end.Time, endOK, "traffic back and the new set removed"),
		figure("deploy command wall time", r.Start, r.End, true, ""))
	return s, nil
}

func outcome(r deployRun) string {
	if r.Result.Reason == "" {
		return r.Result.Status
	}
	return r.Result.Status + ": " + r.Result.Reason
}
