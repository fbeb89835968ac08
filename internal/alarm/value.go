package alarm

import (
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
)

// Value is the alarm's latest datapoint in its metric's unit, for people:
// "p95_latency 12ms", "error_rate 1.5% ALARM", "p95_latency no data", or
// "p95_latency -" before the first period closed.
func (s Status) Value() string {
	d, ok := s.Latest()
	if !ok {
		return s.Name + " -"
	}
	if d.Missing {
		return s.Name + " no data"
	}
	v := ""
	switch s.Metric {
	case config.MetricP95Latency, config.MetricP99Latency:
		v = time.Duration(d.Value * float64(time.Second)).Round(100 * time.Microsecond).String()
	case config.MetricErrorRate:
		v = fmt.Sprintf("%.1f%%", d.Value*100)
	default:
		v = fmt.Sprintf("%g", d.Value)
	}
	if s.InAlarm {
		v += " ALARM"
	}
	return s.Name + " " + v
}
