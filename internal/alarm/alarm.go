// Package alarm evaluates a deployment's alarms (config.Alarm) the way CloudWatch
// does, on the new task set's own load-balancer metrics, while traffic shifts and
// during the bake time.
//
// It is pure logic: the deployment controller takes a cumulative Sample every tick
// and passes it to Evaluator.Observe; each alarm closes one datapoint per elapsed
// period from the difference between two samples, and is in alarm when at least M
// of its last N datapoints breach. A period without requests gives a missing
// datapoint, which does not breach (CloudWatch's treatMissingData=notBreaching).
package alarm

import (
	"slices"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/stats"
)

// Sample is one cumulative snapshot of a task set's metrics, summed over the set's
// target groups, taken by the controller every tick.
type Sample struct {
	At        time.Time
	Requests  uint64 // cumulative
	Errors5xx uint64 // cumulative
	// ConnectFailed (cumulative) counts requests the proxy could not
	// connect to the set's targets for and sent on to another target:
	// failures of the set, though no answer of it (stats.GroupStats).
	ConnectFailed uint64
	Buckets       []stats.Bucket // cumulative latency histogram, same bounds in every sample
	LatencyCount  uint64         // cumulative; includes observations above the last bound
	Healthy       int            // gauge at At
	Unhealthy     int            // gauge at At
	Running       int            // running tasks of the set at At
	Desired       int            // desired tasks of the set
}

// Datapoint is the value of an alarm's metric over one period.
type Datapoint struct {
	End       time.Time `json:"end"`
	Value     float64   `json:"value"`             // seconds, a fraction (error_rate) or a count
	Missing   bool      `json:"missing,omitempty"` // no requests in the period (request-based metrics)
	Breaching bool      `json:"breaching"`
	Requests  uint64    `json:"requests,omitempty"` // requests measured in the period: evidence for Reason
	// ConnectFailed (error_rate) are those of Requests that could not
	// connect to the set and were sent on to another target.
	ConnectFailed uint64 `json:"connect_failed,omitempty"`
	Desired       int    `json:"desired,omitempty"` // running_tasks: the set's desired count
}

// Status is the state of one alarm after the last Observe.
type Status struct {
	Name       string        `json:"name"`
	Metric     string        `json:"metric"`
	Threshold  float64       `json:"threshold"` // in the metric's unit (config.Alarm.ParsedThreshold)
	M          int           `json:"m"`
	N          int           `json:"n"`
	Period     time.Duration `json:"period"`
	Datapoints []Datapoint   `json:"datapoints"` // the last N at most, oldest first
	InAlarm    bool          `json:"in_alarm"`
}

// Latest returns the most recent datapoint, false before the first period closed.
func (s Status) Latest() (Datapoint, bool) {
	if len(s.Datapoints) == 0 {
		return Datapoint{}, false
	}
	return s.Datapoints[len(s.Datapoints)-1], true
}

// Evaluator holds the alarms of one deployment. It is not safe for concurrent use:
// one controller goroutine owns it.
type Evaluator struct {
	alarms []*tracked
}

type tracked struct {
	status   Status
	above    bool
	boundary time.Time // end of the last datapoint, or the start
	base     Sample    // the sample the next datapoint is measured from
}

// New starts evaluating alarms from start, the baseline snapshot taken when
// evaluation begins. Periods are aligned to start.At. An alarm without a name or
// period (a config built in Go, without defaults) gets the metric name and
// config.DefaultAlarmPeriod.
func New(alarms []config.Alarm, start Sample) *Evaluator {
	e := &Evaluator{}
	for _, a := range alarms {
		m, n := a.MofN()
		st := Status{
			Name:      a.Name,
			Metric:    a.Metric,
			Threshold: a.ParsedThreshold(),
			M:         m,
			N:         n,
			Period:    a.Period.Std(),
		}
		if st.Name == "" {
			st.Name = a.Metric
		}
		if st.Period <= 0 {
			st.Period = config.DefaultAlarmPeriod
		}
		e.alarms = append(e.alarms, &tracked{status: st, above: a.BreachesAbove(), boundary: start.At, base: start})
	}
	return e
}

// Observe feeds the next sample (At must increase; an older sample is ignored) and
// returns the status of every alarm, in configuration order.
//
// When k whole periods of an alarm have elapsed since its last datapoint (k > 1 when
// the controller paused), it closes k datapoints, all measured over the one window
// from the previous boundary's sample to s: rates and quantiles over the merged
// window are the best estimate of each period, and the gauges are what s shows.
func (e *Evaluator) Observe(s Sample) []Status {
	for _, a := range e.alarms {
		a.observe(s)
	}
	return e.Statuses()
}

// Statuses returns the status of every alarm, in configuration order.
func (e *Evaluator) Statuses() []Status {
	out := make([]Status, len(e.alarms))
	for i, a := range e.alarms {
		out[i] = a.status
		out[i].Datapoints = slices.Clone(a.status.Datapoints)
	}
	return out
}

// Firing returns the first alarm, in configuration order, that is in alarm.
func (e *Evaluator) Firing() (Status, bool) {
	for _, st := range e.Statuses() {
		if st.InAlarm {
			return st, true
		}
	}
	return Status{}, false
}

func (a *tracked) observe(s Sample) {
	st := &a.status
	elapsed := s.At.Sub(a.boundary)
	if elapsed < st.Period {
		return
	}
	k := int64(elapsed / st.Period)
	dp := a.measure(s)
	// Only the last N datapoints count, so a long pause closes at most N of them.
	for i := max(k-int64(st.N), 0) + 1; i <= k; i++ {
		d := dp
		d.End = a.boundary.Add(time.Duration(i) * st.Period)
		st.Datapoints = append(st.Datapoints, d)
	}
	if extra := len(st.Datapoints) - st.N; extra > 0 {
		st.Datapoints = slices.Delete(st.Datapoints, 0, extra)
	}
	a.boundary = a.boundary.Add(time.Duration(k) * st.Period)
	a.base = s

	breaches := 0
	for _, d := range st.Datapoints {
		if d.Breaching {
			breaches++
		}
	}
	st.InAlarm = breaches >= st.M
}

// measure computes the datapoint (without End) for the window from a.base to s.
func (a *tracked) measure(s Sample) Datapoint {
	var d Datapoint
	w := delta(a.base, s)
	switch a.status.Metric {
	case config.MetricP95Latency, config.MetricP99Latency:
		q := 0.95
		if a.status.Metric == config.MetricP99Latency {
			q = 0.99
		}
		d.Requests = w.latencyCount
		d.Missing = w.latencyCount == 0
		d.Value = stats.Quantile(q, w.buckets, w.latencyCount)
	case config.MetricErrorRate:
		d.Requests, d.ConnectFailed = w.requests+w.connectFailed, w.connectFailed
		d.Missing = d.Requests == 0
		if !d.Missing {
			d.Value = float64(w.errors+w.connectFailed) / float64(d.Requests)
		}
	case config.MetricUnhealthyTargets:
		d.Value = float64(s.Unhealthy)
	case config.MetricRunningTasks:
		d.Value = float64(s.Running)
		d.Desired = s.Desired
	}
	if !d.Missing {
		if a.above {
			d.Breaching = d.Value > a.status.Threshold
		} else {
			d.Breaching = d.Value < a.status.Threshold
		}
	}
	return d
}

type window struct {
	requests, errors, connectFailed, latencyCount uint64
	buckets                                       []stats.Bucket
}

// delta returns the counters between two samples. When a counter went down the
// proxy restarted in between, and cur itself is the window, as stats.GroupStats.Sub
// and Prometheus' rate() treat it.
func delta(prev, cur Sample) window {
	if cur.Requests < prev.Requests || cur.Errors5xx < prev.Errors5xx || cur.ConnectFailed < prev.ConnectFailed ||
		cur.LatencyCount < prev.LatencyCount || len(cur.Buckets) != len(prev.Buckets) {
		prev = Sample{Buckets: make([]stats.Bucket, len(cur.Buckets))}
	}
	w := window{
		requests:      cur.Requests - prev.Requests,
		errors:        cur.Errors5xx - prev.Errors5xx,
		connectFailed: cur.ConnectFailed - prev.ConnectFailed,
		latencyCount:  cur.LatencyCount - prev.LatencyCount,
		buckets:       make([]stats.Bucket, len(cur.Buckets)),
	}
	for i, b := range cur.Buckets {
		w.buckets[i] = b.Minus(prev.Buckets[i])
	}
	return w
}

// FromStats builds a Sample from a proxy stats snapshot by summing the named
// target groups (a group missing from st counts as zero). All groups share the
// same bucket bounds, so buckets are summed by index.
func FromStats(st stats.Stats, groups []string, running, desired int, at time.Time) Sample {
	s := Sample{At: at, Running: running, Desired: desired}
	for _, name := range groups {
		g, ok := st.Group(name)
		if !ok {
			continue
		}
		s.Requests += g.Requests
		s.Errors5xx += g.Codes["5xx"]
		s.ConnectFailed += g.ConnectFailed
		s.LatencyCount += g.LatencyCount
		s.Healthy += g.Healthy
		s.Unhealthy += g.Unhealthy
		for i, b := range g.Buckets {
			if i == len(s.Buckets) {
				s.Buckets = append(s.Buckets, stats.Bucket{UpperBound: b.UpperBound})
			}
			s.Buckets[i] = s.Buckets[i].Plus(b)
		}
	}
	return s
}
