package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

// Goal of the built-in load balancer against nginx and against no proxy.
const (
	goalRPSRatio  = 0.90
	goalAddedP99  = time.Millisecond
	goalLineLabel = "goal: >= 0.90x nginx rps and <= 1ms added p99"
)

// summary is one target's rounds and their medians.
type summary struct {
	Name     string           `json:"name"`
	URL      string           `json:"url"`
	RPS      float64          `json:"rps"`
	P50      time.Duration    `json:"p50_ns"`
	P99      time.Duration    `json:"p99_ns"`
	Requests int              `json:"requests"`
	Failed   int              `json:"failed"`
	Rounds   []loadgen.Result `json:"rounds"`
}

// report is what -json prints.
type report struct {
	ProxyMode        string        `json:"proxy_mode"` // "process" or "in-process"
	Path             string        `json:"path"`
	Duration         time.Duration `json:"duration_ns"`
	RoundsCount      int           `json:"rounds"`
	Concurrency      int           `json:"concurrency"`
	Targets          []*summary    `json:"targets"`
	RPSVsNginx       float64       `json:"rps_cutover_vs_nginx"`
	RPSVsDirect      float64       `json:"rps_cutover_vs_direct"`
	AddedP99VsDirect time.Duration `json:"added_p99_vs_direct_ns"`
	AddedP99VsNginx  time.Duration `json:"added_p99_vs_nginx_ns"`
	GoalMet          bool          `json:"goal_met"`
}

// summarize takes the median of each measure over the rounds, so one round
// disturbed by the noisy neighbour does not decide the result.
func (s *summary) summarize() {
	var rps []float64
	var p50, p99 []time.Duration
	s.Requests, s.Failed = 0, 0
	for _, r := range s.Rounds {
		rps = append(rps, r.RPS)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		s.Requests += r.Requests
		s.Failed += r.Failed
	}
	s.RPS, s.P50, s.P99 = median(rps), median(p50), median(p99)
}

func median[T float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// compare fills the ratios and the goal from the three summaries.
func (r *report) compare(direct, cutover, nginx *summary) {
	if nginx.RPS > 0 {
		r.RPSVsNginx = cutover.RPS / nginx.RPS
	}
	if direct.RPS > 0 {
		r.RPSVsDirect = cutover.RPS / direct.RPS
	}
	r.AddedP99VsDirect = cutover.P99 - direct.P99
	r.AddedP99VsNginx = cutover.P99 - nginx.P99
	r.GoalMet = r.RPSVsNginx >= goalRPSRatio && r.AddedP99VsDirect <= goalAddedP99
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "GET %s, concurrency %d, %d rounds x %s per target (medians); cutover proxy %s\n\n",
		r.Path, r.Concurrency, r.RoundsCount, r.Duration, r.ProxyMode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tp50\tp99\tfailed\t")
	for _, s := range r.Targets {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t\n", s.Name, s.RPS, ms(s.P50), ms(s.P99), s.Failed)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ncutover/nginx rps:  %.2fx\n", r.RPSVsNginx)
	fmt.Fprintf(w, "cutover/direct rps: %.2fx\n", r.RPSVsDirect)
	fmt.Fprintf(w, "added p99 vs direct: %s\n", signedMs(r.AddedP99VsDirect))
	fmt.Fprintf(w, "added p99 vs nginx:  %s\n", signedMs(r.AddedP99VsNginx))
	verdict := "MISSED"
	if r.GoalMet {
		verdict = "MET"
	}
	fmt.Fprintf(w, "%s: %s\n", goalLineLabel, verdict)
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func signedMs(d time.Duration) string {
	return fmt.Sprintf("%+.2fms", float64(d)/float64(time.Millisecond))
}
