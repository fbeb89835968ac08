package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
)

// progress renders deployment events: a JSON object per line with
// --output json; otherwise lines for people, and on a terminal a live
// status line (phase, traffic, health, alarm values, time left).
type progress struct {
	w         io.Writer
	json      bool
	tty       bool
	live      bool // a status line is on screen
	traffic   map[string]int
	lastPlain time.Time
}

func newProgress(g *globals) *progress {
	p := &progress{json: g.json(), w: g.stderr}
	if p.json {
		p.w = g.stdout
	}
	if f, ok := g.stderr.(*os.File); ok && !p.json {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) event(ev deploy.Event) {
	if p.json {
		_ = json.NewEncoder(p.w).Encode(ev)
		return
	}
	if ev.Traffic != nil {
		p.traffic = ev.Traffic
	}
	if ev.Kind == "progress" {
		line := p.statusLine(ev)
		if p.tty {
			fmt.Fprintf(p.w, "\r\033[K%s", line)
			p.live = true
			return
		}
		if time.Since(p.lastPlain) < 5*time.Second {
			return
		}
		p.lastPlain = time.Now()
		fmt.Fprintln(p.w, line)
		return
	}
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
		p.live = false
	}
	fmt.Fprintf(p.w, "%s %-22s %s\n", ev.Time.Format("15:04:05"), ev.Phase, ev.Message)
}

func (p *progress) statusLine(ev deploy.Event) string {
	parts := []string{ev.Time.Format("15:04:05"), ev.Phase, ev.Message}
	if len(p.traffic) > 0 {
		var t []string
		for _, c := range []string{"blue", "green"} {
			if v, ok := p.traffic[c]; ok {
				t = append(t, fmt.Sprintf("%s %d%%", c, v))
			}
		}
		parts = append(parts, strings.Join(t, "/"))
	}
	if ev.Total > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d healthy", ev.Healthy, ev.Total))
	}
	for _, a := range ev.Alarms {
		parts = append(parts, alarmValue(a))
	}
	if ev.WaitLeft > 0 {
		parts = append(parts, ev.WaitLeft.String()+" left")
	}
	return strings.Join(parts, " · ")
}

// alarmValue is an alarm's latest datapoint in its unit, e.g. "p95_latency 12ms".
func alarmValue(s alarm.Status) string {
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
