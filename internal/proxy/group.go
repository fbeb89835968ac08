package proxy

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cutoverdev/cutover/internal/stats"
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
	moments  [len(durationBuckets)]bucketMoments // per latency bucket, beside hist's counts
	classes  [5]atomic.Uint64                    // answered requests by status class
	noTarget atomic.Uint64
	// connectFailed counts requests that could not connect to a target of
	// the group and went to another (route.reroute).
	connectFailed atomic.Uint64
}

// bucketMoments are the sum and the sum of squares (float64 bits, seconds)
// of the latencies in one histogram bucket: with its count they give the
// bucket's mean and spread, so a quantile is not stuck with assuming the
// latencies fill the whole bucket evenly.
type bucketMoments struct{ sum, sumSq atomic.Uint64 }

func addFloat(a *atomic.Uint64, v float64) {
	for {
		old := a.Load()
		if a.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// observe records one latency in hist and in its bucket's moments.
func (g *group) observe(seconds float64) {
	g.hist.Observe(seconds)
	if i, _ := slices.BinarySearch(durationBuckets[:], seconds); i < len(g.moments) {
		addFloat(&g.moments[i].sum, seconds)
		addFloat(&g.moments[i].sumSq, seconds*seconds)
	}
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
	f.g.observe(elapsed.Seconds())
}

// stats reads the group's counters; healthy counts come from the caller.
func (g *group) stats() stats.GroupStats {
	s := stats.GroupStats{Group: g.name, Codes: map[string]uint64{}, NoTarget: g.noTarget.Load(), ConnectFailed: g.connectFailed.Load()}
	for i, c := range classLabels {
		n := g.classes[i].Load()
		s.Codes[c] = n
		s.Requests += n
	}
	var m dto.Metric
	if h, ok := g.hist.(prometheus.Metric); ok && h.Write(&m) == nil && m.Histogram != nil {
		for i, b := range m.Histogram.Bucket {
			bk := stats.Bucket{UpperBound: b.GetUpperBound(), Count: b.GetCumulativeCount()}
			if i < len(g.moments) {
				bk.Sum = math.Float64frombits(g.moments[i].sum.Load())
				bk.SumSq = math.Float64frombits(g.moments[i].sumSq.Load())
			}
			s.Buckets = append(s.Buckets, bk)
		}
		s.LatencyCount = m.Histogram.GetSampleCount()
		s.LatencySum = m.Histogram.GetSampleSum()
	}
	s.FillQuantiles()
	return s
}
