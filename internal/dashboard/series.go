package dashboard

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/stats"
)

// seriesLen is how many samples an environment's series keeps: with a
// sample every 5s, the last 10 minutes.
const seriesLen = 120

// point is one window between two samples of an environment's load
// balancer figures, summed over its target groups.
type point struct {
	At        time.Time
	Requests  uint64  // answered and connect failures (stats.GroupStats.Attempts)
	Latencies uint64  // answers timed: P95's sample count
	P95       float64 // seconds
	ErrorRate float64 // 0..1
	// Refused: what the environment's listeners refused clients in the
	// window, counted against no release: requests by status, and
	// connections over max_client_conns (Refused["conn"]).
	Refused map[string]uint64
}

// sampler keeps, per environment, a series of p95 latency and error rate
// computed from the load balancer's cumulative counters (the difference of
// two snapshots, as the alarms do), for the approval page's charts. Only
// the daemon's memory holds it: after a restart the charts start again.
type sampler struct {
	scopes map[string]string // environment → its target groups' prefix
	stats  func(context.Context) (stats.Stats, error)

	mu        sync.Mutex
	prev      map[string]stats.GroupStats
	prevLists map[string]stats.ListenerStats
	points    map[string][]point
}

func newSampler(project string, envs []string, stats func(context.Context) (stats.Stats, error)) *sampler {
	scopes := map[string]string{}
	for _, env := range envs {
		scopes[env] = local.Scope(project, env) + "/"
	}
	return &sampler{scopes: scopes, stats: stats, points: map[string][]point{}}
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if st, err := s.stats(ctx); err == nil {
			s.add(st, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// add takes one snapshot: the first only sets the baseline.
func (s *sampler) add(st stats.Stats, at time.Time) {
	type window struct {
		requests, errors, count uint64
		buckets                 []stats.Bucket
	}
	windows := map[string]*window{}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.prev == nil
	prev, prevLists := s.prev, s.prevLists
	s.prev, s.prevLists = map[string]stats.GroupStats{}, map[string]stats.ListenerStats{}
	refused := map[string]map[string]uint64{}
	for _, l := range st.Listeners {
		s.prevLists[l.Listener] = l
		env, ok := s.envOf(l.Listener)
		p, seen := prevLists[l.Listener]
		if !ok || !seen {
			// A listener's first sample is its baseline: it may carry the
			// counts of its life before (a listener renamed at the same
			// address keeps them), not this window's.
			continue
		}
		if refused[env] == nil {
			refused[env] = map[string]uint64{}
		}
		for code, n := range l.RequestsRefused {
			refused[env][code] += since(n, p.RequestsRefused[code])
		}
		refused[env]["conn"] += since(l.ConnectionsRefused, p.ConnectionsRefused)
	}
	for _, g := range st.Groups {
		s.prev[g.Group] = g
		env, ok := s.envOf(g.Group)
		if !ok || first {
			continue
		}
		p, seen := prev[g.Group]
		d := g
		if seen {
			d = g.Sub(p)
		}
		w := windows[env]
		if w == nil {
			w = &window{}
			windows[env] = w
		}
		w.requests += d.Attempts()
		w.errors += d.Failed()
		w.count += d.LatencyCount
		if len(w.buckets) == 0 {
			w.buckets = append([]stats.Bucket(nil), d.Buckets...)
		} else if len(w.buckets) == len(d.Buckets) {
			for i := range w.buckets {
				w.buckets[i] = w.buckets[i].Plus(d.Buckets[i])
			}
		}
	}
	for env := range refused {
		if windows[env] == nil {
			windows[env] = &window{}
		}
	}
	for env, w := range windows {
		p := point{At: at, Requests: w.requests, Latencies: w.count, P95: stats.Quantile(0.95, w.buckets, w.count), Refused: refused[env]}
		if w.requests > 0 {
			p.ErrorRate = float64(w.errors) / float64(w.requests)
		}
		ps := append(s.points[env], p)
		if len(ps) > seriesLen {
			ps = ps[len(ps)-seriesLen:]
		}
		s.points[env] = ps
	}
}

// since is a counter's increase from prev: the counter itself when it went
// down (the proxy restarted in between), as Prometheus' rate() reads it.
func since(n, prev uint64) uint64 {
	if n < prev {
		return n
	}
	return n - prev
}

// refused returns what env's listeners refused clients over the series
// (the last ten minutes): requests by status, and connections over
// max_client_conns ("conn"); nil when nothing was.
func (s *sampler) refused(env string) map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[string]uint64
	for _, p := range s.points[env] {
		for code, n := range p.Refused {
			if n == 0 {
				continue
			}
			if out == nil {
				out = map[string]uint64{}
			}
			out[code] += n
		}
	}
	return out
}

// envOf is the environment a local target group (or listener) belongs to.
func (s *sampler) envOf(group string) (string, bool) {
	for env, prefix := range s.scopes {
		if strings.HasPrefix(group, prefix) {
			return env, true
		}
	}
	return "", false
}

// series returns env's p95 (seconds) and error rate (0..1) samples, oldest first.
func (s *sampler) series(env string) (p95, errorRate []float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.points[env] {
		// No requests (no answer timed): no datapoint, as the alarms
		// treat it. A window of connect failures alone has an error
		// rate and no latency.
		if p.Latencies > 0 {
			p95 = append(p95, p.P95)
		}
		if p.Requests > 0 {
			errorRate = append(errorRate, p.ErrorRate)
		}
	}
	return p95, errorRate
}

// chart is a small time-series chart, drawn as SVG on the server.
type chart struct {
	Title  string
	Points string // the polyline's points in a 0..chartW × 0..chartH box
	Last   string
	Max    string
	Count  int
}

const chartW, chartH = 300, 60

func lineChart(title string, values []float64, format func(float64) string) chart {
	c := chart{Title: title, Count: len(values)}
	if len(values) == 0 {
		return c
	}
	if len(values) == 1 {
		values = []float64{values[0], values[0]} // one sample: a flat line
	}
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	c.Max = format(top)
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	for i, v := range values {
		x := 0.0
		if len(values) > 1 {
			x = float64(i) * chartW / float64(len(values)-1)
		}
		y := chartH - v/top*(chartH-4) - 2
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	c.Points = strings.TrimSpace(b.String())
	c.Last = format(values[len(values)-1])
	return c
}

func formatSeconds(v float64) string {
	return (time.Duration(v * float64(time.Second))).Round(time.Millisecond).String()
}

func formatPercent(v float64) string { return fmt.Sprintf("%.2f%%", v*100) }
