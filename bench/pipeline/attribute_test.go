package main

import (
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// A synthetic execution: two parallel builds, a push, an integration and a
// production stage with an approval; every second not in work is overhead.
func TestAttributeSplitsWorkFromOverhead(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := func(ms int) *time.Time { x := at(ms); return &x }
	decided := at(9_000)
	m := measurement{
		start: at(0), end: at(20_000),
		exec: store.Execution{ID: "x-1", Status: "succeeded", CreatedAt: at(100)},
		stages: []pipeline.StageState{
			{Name: "build", Status: "succeeded", Started: p(300), Finished: p(4_000), Actions: []pipeline.ActionState{
				{Name: "backend", Kind: "build", Started: p(300), Finished: p(3_000)},
				{Name: "frontend", Kind: "build", Started: p(300), Finished: p(3_500)},
			}},
			{Name: "integration", Status: "succeeded", Started: p(4_000), Finished: p(6_000), Actions: []pipeline.ActionState{
				{Name: "compose", Kind: "integration", Started: p(4_000), Finished: p(6_000)},
			}},
			{Name: "production", Status: "succeeded", Started: p(6_000), Finished: p(19_000), Actions: []pipeline.ActionState{
				{Name: "approve", Kind: "approval", Started: p(6_000), Finished: p(9_500)},
				{Name: "deploy", Kind: "deploy", Started: p(9_500), Finished: p(19_000)},
			}},
		},
		logs: []store.LogLine{
			{Action: "backend", Time: at(400), Line: "$ go vet ./..."},
			{Action: "backend", Time: at(900), Line: "ok  some/pkg"},
			{Action: "backend", Time: at(1_000), Line: "building image r/backend from backend"},
			{Action: "frontend", Time: at(400), Line: "$ go vet ./..."},
			{Action: "frontend", Time: at(2_000), Line: "building image r/frontend from frontend"},
			{Action: "backend", Time: at(3_700), Line: "pushed r/backend@sha256:1"},
			{Action: "frontend", Time: at(3_900), Line: "pushed r/frontend@sha256:2"},
		},
		approval: &store.Approval{RequestedAt: at(6_200), DecidedAt: &decided},
	}
	r := attribute(m)
	want := map[string]float64{catCommands: 1_600, catImages: 2_500, catPushes: 400, catIntegration: 2_000,
		catDeploys: 9_500, catVerify: 0, catPerson: 2_800}
	for _, part := range r.Work {
		if part.Millis != want[part.Name] {
			t.Errorf("%s: %vms, want %vms", part.Name, part.Millis, want[part.Name])
		}
	}
	// Covered: 400-3900 (3500), 4000-6000, 6200-9000, 9500-19000 = 17800 of 20000.
	if r.Overhead != 2_200 || r.PersonWait != 2_800 || r.EndToEnd != 17_200 {
		t.Errorf("overhead %v, person %v, end to end %v", r.Overhead, r.PersonWait, r.EndToEnd)
	}
	parts := map[string]float64{}
	for _, x := range r.OverheadParts {
		parts[x.Name] = x.Millis
	}
	wantParts := map[string]float64{ovStart: 100, ovCheckout: 200, ovBetween: 200, ovApproval: 700, ovFinish: 1_000}
	for k, v := range wantParts {
		if parts[k] != v {
			t.Errorf("overhead %s: %vms, want %vms", k, parts[k], v)
		}
	}
	if !r.Goals[0].Met || r.Goals[1].Met {
		t.Errorf("goals %+v", r.Goals)
	}
}
