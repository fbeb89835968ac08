package alarm

import (
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/stats"
)

var (
	t0     = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	bounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// step is the traffic of one stretch of time between two samples.
type step struct {
	dt                          time.Duration
	requests, errors            uint64
	connectFailed               uint64  // requests sent on to another target
	latency                     float64 // seconds, of every request in the step
	unhealthy, running, desired int
	// want is, per alarm, its datapoints after this step, oldest first: B breaching,
	// . not breaching, - missing; a trailing ! means in alarm. nil: not checked.
	want []string
}

// sampler accumulates steps into cumulative samples, as the proxy's counters grow.
type sampler struct{ s Sample }

func newSampler() *sampler {
	s := Sample{At: t0}
	for _, b := range bounds {
		s.Buckets = append(s.Buckets, stats.Bucket{UpperBound: b})
	}
	return &sampler{s: s}
}

func (g *sampler) next(st step) Sample {
	s := g.s
	s.At = s.At.Add(st.dt)
	s.Requests += st.requests
	s.Errors5xx += st.errors
	s.ConnectFailed += st.connectFailed
	s.LatencyCount += st.requests
	s.Buckets = append([]stats.Bucket(nil), s.Buckets...)
	for i := range s.Buckets {
		if st.latency <= s.Buckets[i].UpperBound {
			s.Buckets[i].Count += st.requests
		}
	}
	s.Unhealthy, s.Running, s.Desired = st.unhealthy, st.running, st.desired
	g.s = s
	return s
}

// pattern renders a status as step.want does.
func pattern(st Status) string {
	var b strings.Builder
	for _, d := range st.Datapoints {
		switch {
		case d.Missing:
			b.WriteByte('-')
		case d.Breaching:
			b.WriteByte('B')
		default:
			b.WriteByte('.')
		}
	}
	if st.InAlarm {
		b.WriteByte('!')
	}
	return b.String()
}

func alarmOf(metric, threshold, datapoints string, period time.Duration) config.Alarm {
	return config.Alarm{Metric: metric, Threshold: threshold, Datapoints: datapoints, Period: config.Duration(period)}
}

func TestObserve(t *testing.T) {
	const s10 = 10 * time.Second
	p95 := alarmOf(config.MetricP95Latency, "500ms", "3 of 5", s10)
	cases := []struct {
		name   string
		alarms []config.Alarm
		steps  []step
	}{
		{
			name:   "error rate 1 of 1 breaches on the first bad period",
			alarms: []config.Alarm{alarmOf(config.MetricErrorRate, "1%", "1 of 1", s10)},
			steps: []step{
				{dt: 5 * time.Second, requests: 10, errors: 10, want: []string{""}}, // period not over yet
				{dt: 5 * time.Second, requests: 32, errors: 32, want: []string{"B!"}},
				{dt: s10, requests: 100, errors: 1, want: []string{"."}}, // exactly 1% is not above 1%
			},
		},
		{
			name:   "p95 3 of 5: two breaches are not an alarm, the third is",
			alarms: []config.Alarm{p95},
			steps: []step{
				{dt: s10, requests: 50, latency: 0.1, want: []string{"."}},
				{dt: s10, requests: 50, latency: 0.8, want: []string{".B"}},
				{dt: s10, requests: 50, latency: 0.1, want: []string{".B."}},
				{dt: s10, requests: 50, latency: 0.8, want: []string{".B.B"}},
				{dt: s10, requests: 50, latency: 0.1, want: []string{".B.B."}},
				{dt: s10, requests: 50, latency: 0.8, want: []string{"B.B.B!"}},
				{dt: s10, requests: 50, latency: 0.1, want: []string{".B.B."}}, // drops out of alarm
			},
		},
		{
			name: "missing data does not breach",
			alarms: []config.Alarm{
				alarmOf(config.MetricErrorRate, "0%", "1 of 1", s10),
				alarmOf(config.MetricP99Latency, "1ms", "1 of 1", s10),
			},
			steps: []step{
				{dt: s10, want: []string{"-", "-"}},
				{dt: s10, requests: 3, errors: 1, latency: 0.3, want: []string{"B!", "B!"}},
				{dt: s10, want: []string{"-", "-"}},
			},
		},
		{
			name:   "running tasks breach below the threshold",
			alarms: []config.Alarm{alarmOf(config.MetricRunningTasks, "2", "2 of 3", s10)},
			steps: []step{
				{dt: s10, running: 3, desired: 3, want: []string{"."}},
				{dt: s10, running: 2, desired: 3, want: []string{".."}},
				{dt: s10, running: 1, desired: 3, want: []string{"..B"}},
				{dt: s10, running: 0, desired: 3, want: []string{".BB!"}},
			},
		},
		{
			name:   "unhealthy targets is a gauge at the closing sample",
			alarms: []config.Alarm{alarmOf(config.MetricUnhealthyTargets, "0", "1 of 1", s10)},
			steps: []step{
				{dt: 9 * time.Second, unhealthy: 2, want: []string{""}},
				{dt: time.Second, unhealthy: 0, want: []string{"."}},
				{dt: s10, unhealthy: 1, want: []string{"B!"}},
			},
		},
		{
			name:   "several periods elapsed in one sample close several datapoints",
			alarms: []config.Alarm{alarmOf(config.MetricErrorRate, "1%", "3 of 3", s10)},
			steps: []step{
				{dt: 35 * time.Second, requests: 30, errors: 30, want: []string{"BBB!"}},
				{dt: 5 * time.Second, requests: 10, want: []string{"BB."}}, // boundary at 40s, the sample at 40s
			},
		},
		{
			name:   "a pause longer than N periods keeps N datapoints",
			alarms: []config.Alarm{alarmOf(config.MetricErrorRate, "1%", "2 of 3", s10)},
			steps: []step{
				{dt: s10, requests: 10, want: []string{"."}},
				{dt: 1000 * time.Second, requests: 10, errors: 10, want: []string{"BBB!"}},
			},
		},
		{
			name: "each alarm has its own period",
			alarms: []config.Alarm{
				alarmOf(config.MetricErrorRate, "1%", "1 of 1", s10),
				alarmOf(config.MetricErrorRate, "1%", "1 of 1", 30*time.Second),
			},
			steps: []step{
				{dt: s10, requests: 10, errors: 10, want: []string{"B!", ""}},
				{dt: s10, requests: 10, want: []string{".", ""}},
				{dt: s10, requests: 10, want: []string{".", "B!"}}, // 10 errors of 30 requests over 30s
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newSampler()
			e := New(tc.alarms, g.s)
			for i, st := range tc.steps {
				got := e.Observe(g.next(st))
				if len(got) != len(tc.alarms) {
					t.Fatalf("step %d: %d statuses, want %d", i, len(got), len(tc.alarms))
				}
				for j, want := range st.want {
					if p := pattern(got[j]); p != want {
						t.Errorf("step %d, alarm %d: datapoints %q, want %q (%s)", i, j, p, want, got[j].Reason())
					}
				}
			}
		})
	}
}

func TestDatapointsAreAlignedToPeriodsFromTheStart(t *testing.T) {
	g := newSampler()
	e := New([]config.Alarm{alarmOf(config.MetricErrorRate, "1%", "2 of 3", 10*time.Second)}, g.s)
	// Ticks every 1.3s, as a controller would sample: errors only in the first period.
	for i := 0; i < 17; i++ { // 22.1s
		var errs uint64
		if i < 7 { // samples up to 9.1s
			errs = 1
		}
		e.Observe(g.next(step{dt: 1300 * time.Millisecond, requests: 1, errors: errs}))
	}
	st := e.Statuses()[0]
	if p := pattern(st); p != "B." {
		t.Fatalf("datapoints %q, want %q", p, "B.")
	}
	for i, want := range []time.Time{t0.Add(10 * time.Second), t0.Add(20 * time.Second)} {
		if !st.Datapoints[i].End.Equal(want) {
			t.Errorf("datapoint %d ends at %s, want %s", i, st.Datapoints[i].End, want)
		}
	}
	// The first window is 0..10.4s: 8 requests, 7 errors.
	if d := st.Datapoints[0]; d.Requests != 8 || d.Value != 7.0/8 {
		t.Errorf("first datapoint: %d requests, value %v; want 8 requests, value %v", d.Requests, d.Value, 7.0/8)
	}
}

func TestPausedDatapointsHaveConsecutiveEnds(t *testing.T) {
	g := newSampler()
	e := New([]config.Alarm{alarmOf(config.MetricErrorRate, "1%", "1 of 3", 10*time.Second)}, g.s)
	st := e.Observe(g.next(step{dt: 34 * time.Second, requests: 4}))[0]
	for i, d := range st.Datapoints {
		if want := t0.Add(time.Duration(i+1) * 10 * time.Second); !d.End.Equal(want) {
			t.Errorf("datapoint %d ends at %s, want %s", i, d.End, want)
		}
	}
}

func TestP95IsMeasuredOnTheWindowOnly(t *testing.T) {
	g := newSampler()
	e := New([]config.Alarm{alarmOf(config.MetricP95Latency, "500ms", "1 of 1", 10*time.Second)}, g.s)
	e.Observe(g.next(step{dt: 10 * time.Second, requests: 1000, latency: 2})) // slow, then fast
	st := e.Observe(g.next(step{dt: 10 * time.Second, requests: 10, latency: 0.02}))[0]
	d, ok := st.Latest()
	if !ok || d.Breaching || d.Value > 0.025 || d.Requests != 10 {
		t.Fatalf("latest datapoint %+v, want p95 <= 25ms over 10 requests", d)
	}
}

func TestCounterResetUsesTheNewCountersAsTheWindow(t *testing.T) {
	g := newSampler()
	e := New([]config.Alarm{alarmOf(config.MetricErrorRate, "10%", "1 of 1", 10*time.Second)}, g.s)
	e.Observe(g.next(step{dt: 10 * time.Second, requests: 1000}))
	// The proxy restarted: its counters start again from zero.
	s := Sample{At: t0.Add(20 * time.Second), Requests: 4, Errors5xx: 2}
	d, _ := e.Observe(s)[0].Latest()
	if d.Requests != 4 || d.Value != 0.5 || !d.Breaching {
		t.Fatalf("datapoint after restart %+v, want 2 errors of 4 requests, breaching", d)
	}
}

func TestFiring(t *testing.T) {
	g := newSampler()
	e := New([]config.Alarm{
		alarmOf(config.MetricP95Latency, "500ms", "1 of 1", 10*time.Second),
		{Name: "errors", Metric: config.MetricErrorRate, Threshold: "1%"}, // no defaults applied
	}, g.s)
	if _, ok := e.Firing(); ok {
		t.Fatal("firing before any datapoint")
	}
	e.Observe(g.next(step{dt: 10 * time.Second, requests: 42, errors: 42, latency: 0.01}))
	st, ok := e.Firing()
	if !ok || st.Name != "errors" || st.Period != config.DefaultAlarmPeriod || st.M != 1 || st.N != 1 {
		t.Fatalf("Firing() = %+v, %v; want the errors alarm with default period and 1 of 1", st, ok)
	}
	want := `alarm "errors": the last datapoint (10s) breached 1%: 5xx rate 100.0% over 42 requests`
	if got := st.Reason(); got != want {
		t.Errorf("Reason()\n got %s\nwant %s", got, want)
	}
}

// TestErrorRateCountsConnectFailures: a canary that refuses connections
// answers nothing (the proxy saves its requests on another target), yet
// fails every request sent to it: error_rate counts those failures, names
// them, and does not read the period as one without requests.
func TestErrorRateCountsConnectFailures(t *testing.T) {
	g := newSampler()
	a := alarmOf(config.MetricErrorRate, "1%", "1 of 1", 10*time.Second)
	a.Name = "error_rate"
	e := New([]config.Alarm{a}, g.s)
	e.Observe(g.next(step{dt: 10 * time.Second, connectFailed: 20}))
	st, ok := e.Firing()
	if !ok {
		t.Fatalf("not firing on a set that refused 20 connections: %s", pattern(e.Statuses()[0]))
	}
	want := `alarm "error_rate": the last datapoint (10s) breached 1%: error rate 100.0% over 20 requests (20 could not connect to a target and were sent to another)`
	if got := st.Reason(); got != want {
		t.Errorf("Reason()\n got %s\nwant %s", got, want)
	}
	// 1 connect failure and 1 5xx among 100 requests: 2 of 101 attempts.
	st2 := e.Observe(g.next(step{dt: 10 * time.Second, requests: 100, errors: 1, connectFailed: 1}))[0]
	if d := st2.Datapoints[len(st2.Datapoints)-1]; d.Requests != 101 || d.ConnectFailed != 1 || d.Value != 2.0/101 {
		t.Errorf("datapoint %+v, want 2 failed of 101", d)
	}
}

func TestStatusesAreCopies(t *testing.T) {
	g := newSampler()
	e := New([]config.Alarm{alarmOf(config.MetricErrorRate, "1%", "1 of 2", 10*time.Second)}, g.s)
	first := e.Observe(g.next(step{dt: 10 * time.Second, requests: 1, errors: 1}))
	e.Observe(g.next(step{dt: 10 * time.Second, requests: 1}))
	e.Observe(g.next(step{dt: 10 * time.Second, requests: 1}))
	if p := pattern(first[0]); p != "B!" {
		t.Fatalf("an earlier status changed to %q", p)
	}
}

func TestFromStats(t *testing.T) {
	at := t0.Add(time.Minute)
	st := stats.Stats{Groups: []stats.GroupStats{
		{Group: "prod/web-blue", Requests: 100, Codes: map[string]uint64{"5xx": 99}},
		{Group: "prod/web-green", Requests: 10, Codes: map[string]uint64{"2xx": 8, "5xx": 2}, ConnectFailed: 3, Healthy: 2, Unhealthy: 1,
			LatencyCount: 10, Buckets: []stats.Bucket{{UpperBound: 0.1, Count: 4}, {UpperBound: 1, Count: 9}}},
		{Group: "prod/web-green-test", Requests: 5, Codes: map[string]uint64{"2xx": 5}, Healthy: 1,
			LatencyCount: 5, Buckets: []stats.Bucket{{UpperBound: 0.1, Count: 5}, {UpperBound: 1, Count: 5}}},
	}}
	s := FromStats(st, []string{"prod/web-green", "prod/web-green-test", "prod/absent"}, 3, 4, at)
	want := Sample{At: at, Requests: 15, Errors5xx: 2, ConnectFailed: 3, LatencyCount: 15, Healthy: 3, Unhealthy: 1, Running: 3, Desired: 4,
		Buckets: []stats.Bucket{{UpperBound: 0.1, Count: 9}, {UpperBound: 1, Count: 14}}}
	if !s.At.Equal(want.At) || s.Requests != want.Requests || s.Errors5xx != want.Errors5xx || s.ConnectFailed != want.ConnectFailed ||
		s.LatencyCount != want.LatencyCount || s.Healthy != want.Healthy || s.Unhealthy != want.Unhealthy ||
		s.Running != want.Running || s.Desired != want.Desired || len(s.Buckets) != 2 ||
		s.Buckets[0] != want.Buckets[0] || s.Buckets[1] != want.Buckets[1] {
		t.Fatalf("FromStats\n got %+v\nwant %+v", s, want)
	}
}
