package alarm

import (
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

func TestValueSaysTheLatestDatapointInItsUnit(t *testing.T) {
	cases := []struct {
		s    Status
		want string
	}{
		{Status{Name: "p95", Metric: config.MetricP95Latency}, "p95 -"},
		{Status{Name: "p95", Metric: config.MetricP95Latency, Datapoints: []Datapoint{{Missing: true}}}, "p95 no data"},
		{Status{Name: "p95", Metric: config.MetricP95Latency, Datapoints: []Datapoint{{Value: 0.01234}}}, "p95 12.3ms"},
		{Status{Name: "errors", Metric: config.MetricErrorRate, Datapoints: []Datapoint{{Value: 0.015}}, InAlarm: true}, "errors 1.5% ALARM"},
	}
	for _, c := range cases {
		if got := c.s.Value(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.s, got, c.want)
		}
	}
}
