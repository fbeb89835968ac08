package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// Report is everything one run measured; -json prints it as is.
type Report struct {
	Project   string     `json:"project"`
	Load      string     `json:"load"` // what the steady load was
	Scenarios []Scenario `json:"scenarios"`
	Goals     []Goal     `json:"goals"`
}

// Scenario is one deployment (or rollback) measured under load.
type Scenario struct {
	Key     string         `json:"key"` // good, rollback, exit, port, error500, slow
	Name    string         `json:"name"`
	Status  string         `json:"status"` // the deployment's final status
	Reason  string         `json:"reason,omitempty"`
	Figures []Figure       `json:"figures"`
	Load    loadgen.Result `json:"load"`
	Probe   *ProbeResult   `json:"probe,omitempty"`
}

// ProbeResult counts the version probe's own requests (not part of the load).
type ProbeResult struct {
	Requests int `json:"requests"`
	Failed   int `json:"failed"`
}

// Figure is one measured duration; Note says how it was measured.
type Figure struct {
	Name     string  `json:"name"`
	Millis   float64 `json:"ms"`
	Measured bool    `json:"measured"`
	Note     string  `json:"note,omitempty"`
}

func (f Figure) value() string {
	if !f.Measured {
		return "n/a"
	}
	d := time.Duration(f.Millis * float64(time.Millisecond))
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

func figure(name string, from, to time.Time, ok bool, note string) Figure {
	f := Figure{Name: name, Measured: ok && !from.IsZero() && !to.IsZero(), Note: note}
	if f.Measured {
		f.Millis = float64(to.Sub(from)) / float64(time.Millisecond)
	}
	return f
}

// Goal is one target from the brief, MET or MISSED.
type Goal struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Met      bool   `json:"met"`
}

// add records a scenario that measured something, also when it then failed.
func (r *Report) add(s Scenario, err error) {
	if err == nil || s.Load.Requests > 0 {
		r.Scenarios = append(r.Scenarios, s)
	}
}

func (r Report) find(key string) *Scenario {
	for i := range r.Scenarios {
		if r.Scenarios[i].Key == key {
			return &r.Scenarios[i]
		}
	}
	return nil
}

func (s Scenario) figure(name string) (Figure, bool) {
	for _, f := range s.Figures {
		if f.Name == name {
			return f, f.Measured
		}
	}
	return Figure{}, false
}

// durationGoal compares a scenario's figure with a limit.
func durationGoal(name string, s *Scenario, fig string, limit time.Duration) Goal {
	g := Goal{Name: name, Target: "< " + limit.String(), Measured: "n/a"}
	if s == nil {
		return g
	}
	if f, ok := s.figure(fig); ok {
		g.Measured = f.value()
		g.Met = f.Millis < float64(limit)/float64(time.Millisecond)
	}
	return g
}

// minRate is the lowest measured rate that counts as "at 1,000 requests/s":
// the load is paced at exactly 1,000/s, and the last request's tail ends the window.
const minRate = 980

// noFailuresGoal: no failed request (transport error or 5xx), at the full rate.
func noFailuresGoal(name string, s *Scenario) Goal {
	g := Goal{Name: name, Target: fmt.Sprintf("0 failed at >= %d req/s", minRate), Measured: "n/a"}
	if s == nil || s.Load.Requests == 0 {
		return g
	}
	g.Measured = fmt.Sprintf("%d failed of %d at %.0f req/s", s.Load.Failed, s.Load.Requests, s.Load.RPS)
	g.Met = s.Load.Failed == 0 && s.Load.RPS >= minRate
	return g
}

func (r Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Deployments under load (%s), project %s\n\n", r.Load, r.Project)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tHOW")
	for _, s := range r.Scenarios {
		name := s.Name
		for _, f := range s.Figures {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, f.Name, f.value(), f.Note)
			name = ""
		}
		fmt.Fprintf(tw, "%s\tload: requests / failed / req/s / p95\t%d / %d / %.0f / %s\t%s\n",
			name, s.Load.Requests, s.Load.Failed, s.Load.RPS, s.Load.P95.Round(100*time.Microsecond), statusText(s.Load))
		if s.Probe != nil {
			fmt.Fprintf(tw, "\tversion probe: requests / failed\t%d / %d\t\n", s.Probe.Requests, s.Probe.Failed)
		}
		fmt.Fprintf(tw, "\toutcome\t%s\t%s\n", s.Status, s.Reason)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "GOAL\tMEASURED\tTARGET\t")
	for _, g := range r.Goals {
		verdict := "MISSED"
		if g.Met {
			verdict = "MET"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, g.Measured, g.Target, verdict)
	}
	return tw.Flush()
}

func statusText(r loadgen.Result) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(r.Status)) {
		parts = append(parts, fmt.Sprintf("%d×%d", r.Status[code], code))
	}
	if n := len(r.Errors); n > 0 {
		parts = append(parts, fmt.Sprintf("%d kinds of transport error", n))
	}
	return strings.Join(parts, ", ")
}
