package alarm

import (
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
)

func TestReason(t *testing.T) {
	const s10 = 10 * time.Second
	ok := func(v float64) Datapoint { return Datapoint{Value: v, Requests: 50} }
	bad := func(v float64) Datapoint { return Datapoint{Value: v, Requests: 50, Breaching: true} }
	cases := []struct {
		name string
		st   Status
		want string
	}{
		{
			name: "p95 3 of 5 in alarm",
			st: Status{Name: "p95_latency", Metric: config.MetricP95Latency, Threshold: 0.5, M: 3, N: 5, Period: s10, InAlarm: true,
				Datapoints: []Datapoint{bad(0.812), ok(0.2), bad(0.790), ok(0.1), bad(0.905)}},
			want: `alarm "p95_latency": 3 of the last 5 datapoints (10s each) breached 500ms: 812ms, 790ms, 905ms`,
		},
		{
			name: "p95 2 of 5 is not an alarm yet",
			st: Status{Name: "slow", Metric: config.MetricP95Latency, Threshold: 0.5, M: 3, N: 5, Period: s10,
				Datapoints: []Datapoint{bad(0.812), ok(0.2), bad(1.25), ok(0.0004)}},
			want: `alarm "slow": OK, 2 of the last 4 datapoints (10s each) breached 500ms (3 needed): 812ms, 1.25s`,
		},
		{
			name: "nothing breached shows the latest value",
			st: Status{Name: "p99_latency", Metric: config.MetricP99Latency, Threshold: 0.25, M: 2, N: 3, Period: s10,
				Datapoints: []Datapoint{ok(0.0123), ok(0.0004), {Missing: true}}},
			want: `alarm "p99_latency": OK, 0 of the last 3 datapoints (10s each) breached 250ms (2 needed); latest: no requests`,
		},
		{
			name: "error rate 1 of 1",
			st: Status{Name: "error_rate", Metric: config.MetricErrorRate, Threshold: 0.01, M: 1, N: 1, Period: s10, InAlarm: true,
				Datapoints: []Datapoint{{Value: 1, Requests: 42, Breaching: true}}},
			want: `alarm "error_rate": the last datapoint (10s) breached 1%: 5xx rate 100.0% over 42 requests`,
		},
		{
			name: "error rate below a fractional threshold",
			st: Status{Name: "error_rate", Metric: config.MetricErrorRate, Threshold: 0.001, M: 1, N: 1, Period: time.Minute,
				Datapoints: []Datapoint{{Value: 0, Requests: 7}}},
			want: `alarm "error_rate": OK, the last datapoint (1m0s) did not breach 0.1%: 5xx rate 0.0% over 7 requests`,
		},
		{
			name: "running tasks fell below",
			st: Status{Name: "running_tasks", Metric: config.MetricRunningTasks, Threshold: 2, M: 2, N: 3, Period: s10, InAlarm: true,
				Datapoints: []Datapoint{{Value: 3, Desired: 3}, {Value: 1, Desired: 3, Breaching: true}, {Value: 0, Desired: 3, Breaching: true}}},
			want: `alarm "running_tasks": 2 of the last 3 datapoints (10s each) fell below 2: 1 of 3 running, 0 of 3 running`,
		},
		{
			name: "running tasks did not fall below",
			st: Status{Name: "running_tasks", Metric: config.MetricRunningTasks, Threshold: 1, M: 1, N: 1, Period: s10,
				Datapoints: []Datapoint{{Value: 2}}},
			want: `alarm "running_tasks": OK, the last datapoint (10s) did not fall below 1: 2 running`,
		},
		{
			name: "unhealthy targets",
			st: Status{Name: "unhealthy_targets", Metric: config.MetricUnhealthyTargets, Threshold: 0, M: 1, N: 1, Period: s10, InAlarm: true,
				Datapoints: []Datapoint{{Value: 2, Breaching: true}}},
			want: `alarm "unhealthy_targets": the last datapoint (10s) breached 0: 2 unhealthy`,
		},
		{
			name: "no datapoint yet",
			st:   Status{Name: "p99_latency", Metric: config.MetricP99Latency, Threshold: 1, M: 1, N: 1, Period: s10},
			want: `alarm "p99_latency": no datapoint yet (one every 10s)`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.Reason(); got != tc.want {
				t.Errorf("Reason()\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLatest(t *testing.T) {
	if _, ok := (Status{}).Latest(); ok {
		t.Fatal("Latest() of a status without datapoints returned ok")
	}
	st := Status{Datapoints: []Datapoint{{Value: 1}, {Value: 2}}}
	if d, ok := st.Latest(); !ok || d.Value != 2 {
		t.Fatalf("Latest() = %+v, %v; want value 2", d, ok)
	}
}
