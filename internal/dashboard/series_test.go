package dashboard

import (
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/stats"
)

func group(name string, requests, errors5xx uint64, fast, slow uint64) stats.GroupStats {
	return stats.GroupStats{Group: name, Requests: requests, Codes: map[string]uint64{"5xx": errors5xx, "2xx": requests - errors5xx},
		LatencyCount: fast + slow, Buckets: []stats.Bucket{{UpperBound: 0.1, Count: fast}, {UpperBound: 1, Count: fast + slow}}}
}

// The series is the difference of cumulative snapshots, summed over an
// environment's target groups; other projects' groups are not counted.
func TestSamplerComputesWindowsFromCumulativeStats(t *testing.T) {
	s := newSampler("shop", []string{"staging", "production"}, nil)
	t0 := time.Now()
	s.add(stats.Stats{Groups: []stats.GroupStats{group("shop.staging/api/blue", 100, 0, 100, 0), group("other.staging/api/blue", 5, 5, 0, 5)}}, t0)
	if p95, _ := s.series("staging"); len(p95) != 0 {
		t.Fatalf("the first snapshot is only a baseline: %v", p95)
	}
	// 100 more requests: 50 on blue (10 errors, all slow), 50 on green (fast).
	s.add(stats.Stats{Groups: []stats.GroupStats{
		group("shop.staging/api/blue", 150, 10, 100, 50), group("shop.staging/api/green", 50, 0, 50, 0), group("other.staging/api/blue", 500, 500, 0, 500),
	}}, t0.Add(5*time.Second))
	// No request in the next window: no datapoint.
	s.add(stats.Stats{Groups: []stats.GroupStats{group("shop.staging/api/blue", 150, 10, 100, 50), group("shop.staging/api/green", 50, 0, 50, 0)}}, t0.Add(10*time.Second))
	p95, errs := s.series("staging")
	if len(p95) != 1 || len(errs) != 1 {
		t.Fatalf("series: p95 %v, errors %v; want one datapoint each", p95, errs)
	}
	if math.Abs(errs[0]-0.10) > 1e-9 {
		t.Fatalf("error rate %v, want 0.10 (10 of 100)", errs[0])
	}
	if p95[0] <= 0.1 || p95[0] > 1 {
		t.Fatalf("p95 %v: half of the window was slow (0.1..1s)", p95[0])
	}
	if p, _ := s.series("production"); p != nil {
		t.Fatalf("an environment without groups has a series: %v", p)
	}
}

func TestLineChart(t *testing.T) {
	if c := lineChart("p95", nil, formatSeconds); c.Count != 0 || c.Points != "" {
		t.Fatalf("no values: %+v", c)
	}
	one := lineChart("errors", []float64{0}, formatPercent)
	if one.Points != "0.0,58.0 300.0,58.0" || one.Max != "0.00%" || one.Last != "0.00%" {
		t.Fatalf("one zero value: %+v", one)
	}
	c := lineChart("p95", []float64{0.1, 0.4, 0.2}, formatSeconds)
	pts := strings.Fields(c.Points)
	if len(pts) != 3 || pts[1] != "150.0,2.0" || c.Max != "400ms" || c.Last != "200ms" {
		t.Fatalf("chart %+v", c)
	}
}

// A window with connect failures alone (a canary refusing connections,
// its requests answered elsewhere) has an error rate of 1 and no latency:
// the p95 chart gets no point for it rather than 0 s, as the alarms read
// it as missing (a helper's review).
func TestConnectFailuresAloneHaveAnErrorRateAndNoP95(t *testing.T) {
	s := newSampler("shop", []string{"staging"}, nil)
	t0 := time.Now()
	s.add(stats.Stats{Groups: []stats.GroupStats{group("shop.staging/api/green", 100, 0, 100, 0)}}, t0)
	g := group("shop.staging/api/green", 100, 0, 100, 0)
	g.ConnectFailed = 20
	s.add(stats.Stats{Groups: []stats.GroupStats{g}}, t0.Add(5*time.Second))
	p95, errs := s.series("staging")
	if len(errs) != 1 || errs[0] != 1 {
		t.Fatalf("error rate series %v, want [1]", errs)
	}
	if len(p95) != 0 {
		t.Fatalf("p95 series %v, want none: no answer was timed", p95)
	}
}

// What an environment's listeners refused is summed over the windows of
// the series, from cumulative counters: other projects' listeners are not
// counted, a listener's first sample is a baseline, a counter that went
// down (the proxy restarted) counts from 0, and windows that leave the
// series leave the sum.
func TestSamplerSumsRefusalsAtTheEdge(t *testing.T) {
	s := newSampler("shop", []string{"staging", "production"}, nil)
	lis := func(name string, conns uint64, reqs map[string]uint64) stats.ListenerStats {
		return stats.ListenerStats{Listener: name, ConnectionsRefused: conns, RequestsRefused: reqs}
	}
	t0 := time.Now()
	s.add(stats.Stats{Listeners: []stats.ListenerStats{lis("shop.staging/production", 2, map[string]uint64{"400": 7})}}, t0)
	if r := s.refused("staging"); r != nil {
		t.Fatalf("the first snapshot is only a baseline: %v", r)
	}
	s.add(stats.Stats{Listeners: []stats.ListenerStats{
		lis("shop.staging/production", 5, map[string]uint64{"400": 10, "408": 1}),
		lis("shop.staging/test", 0, map[string]uint64{"505": 2}),
		lis("other.staging/production", 900, map[string]uint64{"400": 900}),
	}}, t0.Add(5*time.Second))
	// The proxy restarted: its counters start again.
	s.add(stats.Stats{Listeners: []stats.ListenerStats{lis("shop.staging/production", 0, map[string]uint64{"400": 4})}}, t0.Add(10*time.Second))
	// shop.staging/test's first sample (505: 2) is its baseline, not this
	// window's: a listener renamed at the same address keeps its counts.
	want := map[string]uint64{"400": 7, "408": 1, "conn": 3}
	if r := s.refused("staging"); !maps.Equal(r, want) {
		t.Fatalf("staging refused %v, want %v", r, want)
	}
	if r := s.refused("production"); r != nil {
		t.Fatalf("production refused %v, want nothing", r)
	}
	if got := refusals(want); len(got) != 3 || got[0].Code != "400" || got[2].Code != "conn" || got[2].What != "connections over max_client_conns" {
		t.Fatalf("as the card lists them: %+v", got)
	}
	for i := range seriesLen {
		s.add(stats.Stats{Listeners: []stats.ListenerStats{lis("shop.staging/production", 0, map[string]uint64{"400": 4})}}, t0.Add(time.Duration(15+5*i)*time.Second))
	}
	if r := s.refused("staging"); r != nil {
		t.Fatalf("ten minutes later: %v, want nothing", r)
	}
}
