// Package stats holds the traffic counters of the proxy's target groups as
// GET /v1/stats answers them, and the latency histogram arithmetic (Bucket,
// Quantile, windows by subtraction) that the proxy, the alarm evaluator and
// the platforms share. It is a leaf: it imports nothing of cutover, so code
// that judges traffic (internal/alarm) does not depend on the data plane.
package stats

import (
	"math"
	"time"
)

// Stats is what GET /v1/stats answers: counters since the proxy started.
// Controllers window them by subtracting two snapshots (GroupStats.Sub).
type Stats struct {
	At        time.Time       `json:"at"`
	Groups    []GroupStats    `json:"groups"`              // sorted by name
	Listeners []ListenerStats `json:"listeners,omitempty"` // sorted by name
}

// ListenerStats are what a listener refused its clients since the proxy
// started; none of it counts against a target group.
type ListenerStats struct {
	Listener string `json:"listener"`
	// RequestsRefused are the requests the proxy answered itself because
	// of what the client sent or did, by status ("400", "408", "413",
	// "414", "431", "501", "503", "505"): malformed or smuggling framing,
	// slow heads and bodies, oversized ones, methods and versions not
	// served, HTTP/2 requests over the in-flight budget.
	RequestsRefused map[string]uint64 `json:"requests_refused,omitempty"`
	// ConnectionsRefused are the connections closed as they were accepted
	// because their client held max_client_conns already.
	ConnectionsRefused uint64 `json:"connections_refused"`
}

// Group returns the stats of the named target group.
func (s Stats) Group(name string) (GroupStats, bool) {
	for _, g := range s.Groups {
		if g.Group == name {
			return g, true
		}
	}
	return GroupStats{}, false
}

// GroupStats are the counters of one target group. Latency quantiles are in
// seconds, estimated from the histogram buckets.
type GroupStats struct {
	Group    string            `json:"group"`
	Requests uint64            `json:"requests"`
	Codes    map[string]uint64 `json:"codes"`     // "2xx" -> answered requests
	NoTarget uint64            `json:"no_target"` // 503s because no target was healthy (also in 5xx)
	// ConnectFailed counts the requests the proxy could not connect to a
	// target of this group for and sent on to another target, whose answer
	// counts in that target's group. They are not in Requests: the group
	// answered nothing. (A connect failure with no other target to try is a
	// 502 of this group, in Codes.)
	ConnectFailed uint64   `json:"connect_failed"`
	Healthy       int      `json:"healthy"`
	Unhealthy     int      `json:"unhealthy"`
	P50           float64  `json:"p50"`
	P95           float64  `json:"p95"`
	P99           float64  `json:"p99"`
	LatencyCount  uint64   `json:"latency_count"`
	LatencySum    float64  `json:"latency_sum"`
	Buckets       []Bucket `json:"buckets"` // cumulative; observations above the last bound count only in LatencyCount
}

// Bucket is one cumulative histogram bucket: Count observations <=
// UpperBound seconds. Sum and SumSq are the sum and the sum of squares of
// the latencies in this bucket alone (not cumulative): they let Quantile
// place them inside the bucket; zero when unknown.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      uint64  `json:"count"`
	Sum        float64 `json:"sum,omitempty"`
	SumSq      float64 `json:"sum_sq,omitempty"`
}

// Minus is the bucket over the window from prev (the same bucket in an
// earlier snapshot) to b.
func (b Bucket) Minus(prev Bucket) Bucket {
	return Bucket{UpperBound: b.UpperBound, Count: b.Count - min(prev.Count, b.Count),
		Sum: max(b.Sum-prev.Sum, 0), SumSq: max(b.SumSq-prev.SumSq, 0)}
}

// Plus adds the same bucket of another target group.
func (b Bucket) Plus(o Bucket) Bucket {
	return Bucket{UpperBound: b.UpperBound, Count: b.Count + o.Count, Sum: b.Sum + o.Sum, SumSq: b.SumSq + o.SumSq}
}

// Sub returns the counters of the window between prev and s (an earlier and
// a later snapshot of the same group), with quantiles over that window. The
// health counts are s's. When a counter went down, the proxy restarted in
// between: then s itself is the window, as Prometheus' rate() would treat it.
func (s GroupStats) Sub(prev GroupStats) GroupStats {
	if s.Requests < prev.Requests || s.ConnectFailed < prev.ConnectFailed || s.LatencyCount < prev.LatencyCount || len(s.Buckets) != len(prev.Buckets) {
		return s
	}
	out := s
	out.Requests -= prev.Requests
	out.NoTarget -= min(prev.NoTarget, s.NoTarget)
	out.ConnectFailed -= min(prev.ConnectFailed, s.ConnectFailed)
	out.Codes = map[string]uint64{}
	for k, v := range s.Codes {
		out.Codes[k] = v - min(prev.Codes[k], v)
	}
	out.LatencyCount -= prev.LatencyCount
	out.LatencySum -= prev.LatencySum
	out.Buckets = make([]Bucket, len(s.Buckets))
	for i, b := range s.Buckets {
		out.Buckets[i] = b.Minus(prev.Buckets[i])
	}
	out.FillQuantiles()
	return out
}

// Attempts are the requests the group answered and those it could not be
// connected to for (sent on to another target): what an error rate is over.
func (s GroupStats) Attempts() uint64 { return s.Requests + s.ConnectFailed }

// Failed are the group's 5xx answers and its connect failures: a canary
// that refuses connections fails the requests sent to it, even when the
// proxy saves them on another target.
func (s GroupStats) Failed() uint64 { return s.Codes["5xx"] + s.ConnectFailed }

// ErrorRate is Failed over Attempts, 0 when none.
func (s GroupStats) ErrorRate() float64 {
	if s.Attempts() == 0 {
		return 0
	}
	return float64(s.Failed()) / float64(s.Attempts())
}

// FillQuantiles sets P50, P95 and P99 from the buckets and LatencyCount.
func (s *GroupStats) FillQuantiles() {
	s.P50 = Quantile(0.50, s.Buckets, s.LatencyCount)
	s.P95 = Quantile(0.95, s.Buckets, s.LatencyCount)
	s.P99 = Quantile(0.99, s.Buckets, s.LatencyCount)
}

// Quantile estimates the q-quantile (0..1) from cumulative buckets and the
// total count. Inside the bucket the rank falls in, it interpolates
// linearly as Prometheus' histogram_quantile does, over the whole bucket
// when only counts are known, or, when the bucket carries its latencies'
// Sum and SumSq, over the span of an even spread with their mean and
// variance (clipped to the bucket): 800 ms answers in the 750 ms..1 s
// bucket read as 800 ms, not 988 ms. Ranks beyond the last bound return
// that bound; no observations return 0.
func Quantile(q float64, buckets []Bucket, count uint64) float64 {
	if count == 0 || len(buckets) == 0 || math.IsNaN(q) {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(count)
	lower, below := 0.0, uint64(0)
	for _, b := range buckets {
		if float64(b.Count) >= rank && b.Count > below {
			n := float64(b.Count - below)
			lo, hi := lower, b.UpperBound
			if b.Sum > 0 {
				mean := min(max(b.Sum/n, lower), b.UpperBound)
				half := math.Sqrt(3 * max(b.SumSq/n-mean*mean, 0)) // an even spread over mean±half has this variance
				lo, hi = max(lower, mean-half), min(b.UpperBound, mean+half)
			}
			return lo + (hi-lo)*(rank-float64(below))/n
		}
		lower, below = b.UpperBound, b.Count
	}
	return buckets[len(buckets)-1].UpperBound
}
