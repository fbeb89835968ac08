package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// group is one live target group. It outlives snapshots, so health state
// and counters survive every Apply that keeps the group.
type group struct {
	name   string
	health atomic.Pointer[healthConfig]
	delay  atomic.Int64 // deregistration delay in nanoseconds
	next   atomic.Uint32

	// targets holds every live target, draining ones too, by targetKey.
	// Guarded by Proxy.mu.
	targets map[string]*target
	inState bool // guarded by Proxy.mu: false once removed from the state

	hist     prometheus.Observer
	classes  [5]atomic.Uint64 // answered requests by status class
	noTarget atomic.Uint64
}

func targetKey(t Target) string { return t.ID + "@" + t.Addr }

func (g *group) configure(tg TargetGroup) {
	g.health.Store(newHealthConfig(tg.Health))
	d := time.Duration(tg.DeregistrationDelay)
	if d <= 0 {
		d = defaultDeregisterDelay
	}
	g.delay.Store(int64(d))
}

// record counts one answered request of f's group.
func (f *forward) record(code int, elapsed time.Duration) {
	c := min(max(code/100, 1), 5) - 1
	f.requests[c].Inc()
	f.g.classes[c].Add(1)
	f.g.hist.Observe(elapsed.Seconds())
}

// stats reads the group's counters; healthy counts come from the caller.
func (g *group) stats() GroupStats {
	s := GroupStats{Group: g.name, Codes: map[string]uint64{}, NoTarget: g.noTarget.Load()}
	for i, c := range classLabels {
		n := g.classes[i].Load()
		s.Codes[c] = n
		s.Requests += n
	}
	var m dto.Metric
	if h, ok := g.hist.(prometheus.Metric); ok && h.Write(&m) == nil && m.Histogram != nil {
		for _, b := range m.Histogram.Bucket {
			s.Buckets = append(s.Buckets, Bucket{UpperBound: b.GetUpperBound(), Count: b.GetCumulativeCount()})
		}
		s.LatencyCount = m.Histogram.GetSampleCount()
		s.LatencySum = m.Histogram.GetSampleSum()
	}
	s.fillQuantiles()
	return s
}
