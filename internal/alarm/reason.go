package alarm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
)

// Reason explains the alarm's state in plain words with the evidence, for the
// deployment's event log and the reason of a rollback, for example:
//
//	alarm "p95_latency": 3 of the last 5 datapoints (10s each) breached 500ms: 812ms, 790ms, 905ms
//	alarm "error_rate": the last datapoint (10s) breached 1%: 5xx rate 100.0% over 42 requests
//	alarm "p95_latency": OK, 2 of the last 5 datapoints (10s each) breached 500ms (3 needed): 812ms, 790ms
func (s Status) Reason() string {
	var b strings.Builder
	fmt.Fprintf(&b, "alarm %q: ", s.Name)
	if len(s.Datapoints) == 0 {
		fmt.Fprintf(&b, "no datapoint yet (one every %s)", s.Period)
		return b.String()
	}
	if !s.InAlarm {
		b.WriteString("OK, ")
	}
	var breached []string
	for _, d := range s.Datapoints {
		if d.Breaching {
			breached = append(breached, s.formatValue(d))
		}
	}
	verb, notVerb := "breached", "did not breach"
	if s.Metric == config.MetricRunningTasks {
		verb, notVerb = "fell below", "did not fall below"
	}
	threshold := s.formatThreshold()
	if len(s.Datapoints) == 1 {
		latest := s.Datapoints[0]
		if !latest.Breaching {
			verb = notVerb
		}
		fmt.Fprintf(&b, "the last datapoint (%s) %s %s: %s", s.Period, verb, threshold, s.formatValue(latest))
		return b.String()
	}
	fmt.Fprintf(&b, "%d of the last %d datapoints (%s each) %s %s", len(breached), len(s.Datapoints), s.Period, verb, threshold)
	if !s.InAlarm {
		fmt.Fprintf(&b, " (%d needed)", s.M)
	}
	if len(breached) == 0 {
		latest, _ := s.Latest()
		fmt.Fprintf(&b, "; latest: %s", s.formatValue(latest))
		return b.String()
	}
	b.WriteString(": ")
	b.WriteString(strings.Join(breached, ", "))
	return b.String()
}

func (s Status) formatThreshold() string {
	switch s.Metric {
	case config.MetricP95Latency, config.MetricP99Latency:
		return formatSeconds(s.Threshold)
	case config.MetricErrorRate:
		// Rounded so that a threshold written "0.1%" does not print as 0.10000000000000002%.
		return strconv.FormatFloat(math.Round(s.Threshold*1e6)/1e4, 'f', -1, 64) + "%"
	}
	return strconv.FormatFloat(s.Threshold, 'f', -1, 64)
}

func (s Status) formatValue(d Datapoint) string {
	switch s.Metric {
	case config.MetricP95Latency, config.MetricP99Latency:
		if d.Missing {
			return "no requests"
		}
		return formatSeconds(d.Value)
	case config.MetricErrorRate:
		if d.Missing {
			return "no requests"
		}
		if d.ConnectFailed > 0 {
			return fmt.Sprintf("error rate %.1f%% over %d requests (%d could not connect to a target and were sent to another)", d.Value*100, d.Requests, d.ConnectFailed)
		}
		return fmt.Sprintf("5xx rate %.1f%% over %d requests", d.Value*100, d.Requests)
	case config.MetricUnhealthyTargets:
		return fmt.Sprintf("%.0f unhealthy", d.Value)
	case config.MetricRunningTasks:
		if d.Desired > 0 {
			return fmt.Sprintf("%.0f of %d running", d.Value, d.Desired)
		}
		return fmt.Sprintf("%.0f running", d.Value)
	}
	return strconv.FormatFloat(d.Value, 'g', 4, 64)
}

// formatSeconds prints a latency as a duration rounded to what a person reads:
// milliseconds, or microseconds below one millisecond.
func formatSeconds(v float64) string {
	d := time.Duration(v * float64(time.Second))
	if d >= time.Millisecond {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
