package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Alarm metrics.
const (
	MetricP95Latency       = "p95_latency"
	MetricP99Latency       = "p99_latency"
	MetricErrorRate        = "error_rate"
	MetricUnhealthyTargets = "unhealthy_targets"
	MetricRunningTasks     = "running_tasks"
)

var alarmMetrics = []string{MetricP95Latency, MetricP99Latency, MetricErrorRate, MetricUnhealthyTargets, MetricRunningTasks}

// Alarm watches one metric of the new revision during a deployment and its bake time,
// evaluated as CloudWatch does: the alarm fires when Datapoints "M of N" of the last N
// periods breach the threshold. Latency, error rate and unhealthy targets breach above the
// threshold; running tasks breaches below it (a drop in running tasks).
type Alarm struct {
	Name       string   `yaml:"name,omitempty" json:"name,omitempty" jsonschema_description:"Defaults to the metric name."`
	Metric     string   `yaml:"metric" json:"metric" jsonschema:"required,enum=p95_latency,enum=p99_latency,enum=error_rate,enum=unhealthy_targets,enum=running_tasks"`
	Threshold  string   `yaml:"threshold" json:"threshold" jsonschema:"required" jsonschema_description:"A duration for latency (500ms), a percentage for error_rate (1%), a count for unhealthy_targets and running_tasks."`
	Period     Duration `yaml:"period,omitempty" json:"period,omitempty" jsonschema:"default=10s"`
	Datapoints string   `yaml:"datapoints,omitempty" json:"datapoints,omitempty" jsonschema:"default=1 of 1,pattern=^[0-9]+ of [0-9]+$" jsonschema_description:"M of N: how many of the last N periods must breach."`
}

// ParsedThreshold returns the threshold in the metric's unit: seconds for latencies, a
// fraction (0.01 for "1%") for error_rate, a count otherwise. It is 0 for an invalid
// threshold, which Validate reports.
func (a Alarm) ParsedThreshold() float64 {
	v, _ := parseThreshold(a.Metric, a.Threshold)
	return v
}

// MofN returns the datapoints setting as (M, N); (1, 1) when unset or invalid.
func (a Alarm) MofN() (m, n int) {
	m, n, err := parseMofN(a.Datapoints)
	if err != nil {
		return 1, 1
	}
	return m, n
}

// BreachesAbove says whether values above the threshold breach (all metrics but
// running_tasks, which breaches below).
func (a Alarm) BreachesAbove() bool { return a.Metric != MetricRunningTasks }

func parseThreshold(metric, s string) (float64, error) {
	s = strings.TrimSpace(s)
	switch metric {
	case MetricP95Latency, MetricP99Latency:
		d, err := ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s threshold %q is not a duration (write a latency such as \"500ms\")", metric, s)
		}
		if d == 0 {
			return 0, fmt.Errorf("%s threshold must be more than 0 (write a latency such as \"500ms\")", metric)
		}
		return d.Std().Seconds(), nil
	case MetricErrorRate:
		num, ok := strings.CutSuffix(s, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !ok || err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("error_rate threshold %q is not a percentage (write a percentage from 0%% to 100%%, such as \"1%%\")", s)
		}
		return f / 100, nil
	case MetricUnhealthyTargets, MetricRunningTasks:
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s threshold %q is not a count (write a whole number such as 1)", metric, s)
		}
		return float64(n), nil
	}
	return 0, fmt.Errorf("unknown metric %q", metric)
}

var mofnRe = regexp.MustCompile(`^\s*(\d{1,4})\s+of\s+(\d{1,4})\s*$`)

func parseMofN(s string) (m, n int, err error) {
	if s == "" {
		return 1, 1, nil
	}
	g := mofnRe.FindStringSubmatch(s)
	if g == nil {
		return 0, 0, fmt.Errorf("%q is not \"M of N\" (write for example \"3 of 5\")", s)
	}
	m, _ = strconv.Atoi(g[1])
	n, _ = strconv.Atoi(g[2])
	if m < 1 || n < m {
		return 0, 0, fmt.Errorf("%q must have 1 <= M <= N (write for example \"3 of 5\")", s)
	}
	return m, n, nil
}
