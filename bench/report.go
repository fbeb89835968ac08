package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The goal of the built-in load balancer, in every setting: at least
// nginx's requests/s, and a p99 at most 1ms above nginx's.
const (
	goalRPSRatio = 1.0
	goalP99Slack = time.Millisecond
	goalLabel    = "goal: cutover >= 1.00x nginx req/s and p99 <= nginx p99 + 1ms"
)

// summary is one target's runs in one setting and their medians.
type summary struct {
	Name      string        `json:"name"`
	RPS       float64       `json:"rps"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	CPUPerReq time.Duration `json:"cpu_per_request_ns"`
	// The backend's and wrk's (medians), beside the target's.
	BackendCPUPerReq time.Duration `json:"backend_cpu_per_request_ns"`
	LoadCPUPerReq    time.Duration `json:"wrk_cpu_per_request_ns"`
	Requests         int           `json:"requests"`
	Errors           int           `json:"errors"`
	Runs             []run         `json:"runs"`
}

// setting is one connection count and mode, with every target's figures.
type setting struct {
	Conns   int        `json:"connections"`
	NewConn bool       `json:"new_connection_per_request"`
	Targets []*summary `json:"targets"` // direct, cutover, nginx, haproxy, nginx-bare
	// Cutover compared with the others, round by round (paired): medians of
	// the rounds' requests/s ratios and p99 differences.
	RPSVsNginx   float64       `json:"rps_cutover_vs_nginx"`
	RPSVsHAProxy float64       `json:"rps_cutover_vs_haproxy"`
	RPSVsDirect  float64       `json:"rps_cutover_vs_direct"`
	P99VsNginx   time.Duration `json:"p99_cutover_minus_nginx_ns"`
	P99VsHAProxy time.Duration `json:"p99_cutover_minus_haproxy_ns"`
	// The lowest and highest ratio of cutover's requests/s to nginx's in a
	// round, and the ratio of the two medians (rounds mixed), for reference.
	RPSRangeVsNginx   [2]float64 `json:"rps_cutover_vs_nginx_range"`
	RPSMediansVsNginx float64    `json:"rps_cutover_vs_nginx_of_medians"`
	// CPU per request is the figure least disturbed by other load on the machine.
	CPUVsNginx   float64 `json:"cpu_per_request_cutover_vs_nginx"`
	CPUVsHAProxy float64 `json:"cpu_per_request_cutover_vs_haproxy"`
	GoalMet      bool    `json:"goal_met"`
	// The same against nginx without forwarding headers (nginx-bare), for
	// reference: less work for it and for the backend than the others do.
	RPSVsNginxBare float64       `json:"rps_cutover_vs_nginx_bare"`
	P99VsNginxBare time.Duration `json:"p99_cutover_minus_nginx_bare_ns"`
	CPUVsNginxBare float64       `json:"cpu_per_request_cutover_vs_nginx_bare"`
	GoalMetBare    bool          `json:"goal_met_vs_nginx_bare"`
}

// flipResult is the load seen while the weights flipped.
type flipResult struct {
	Conns    int `json:"connections"`
	Flips    int `json:"flips"`
	Requests int `json:"requests"`
	Failed   int `json:"failed"`
}

// report is what -json prints.
type report struct {
	ProxyMode string        `json:"proxy_mode"`
	Backend   string        `json:"backend"`
	Path      string        `json:"path"`
	Duration  time.Duration `json:"duration_ns"`
	Rounds    int           `json:"rounds"`
	Settings  []*setting    `json:"settings"`
	Flip      *flipResult   `json:"weight_flip,omitempty"`
}

func (s *setting) mode() string {
	if s.NewConn {
		return "new-conn"
	}
	return "keep-alive"
}

func (s *setting) target(name string) *summary {
	for _, t := range s.Targets {
		if t.Name == name {
			return t
		}
	}
	return &summary{Name: name}
}

// summarize takes the median of each target's figures over the rounds, so
// one round disturbed by a noisy neighbour does not decide the result, and
// compares cutover with the others round by round (see paired).
func (s *setting) summarize() {
	for _, t := range s.Targets {
		t.summarize()
	}
	cut, nginx, haproxy, direct := s.target("cutover"), s.target("nginx"), s.target("haproxy"), s.target("direct")
	s.RPSVsNginx, s.P99VsNginx, s.CPUVsNginx, s.RPSRangeVsNginx = paired(cut, nginx)
	s.RPSMediansVsNginx = ratio(cut.RPS, nginx.RPS)
	s.RPSVsHAProxy, s.P99VsHAProxy, s.CPUVsHAProxy, _ = paired(cut, haproxy)
	s.RPSVsDirect, _, _, _ = paired(cut, direct)
	s.GoalMet = s.RPSVsNginx >= goalRPSRatio && s.P99VsNginx <= goalP99Slack
	if bare := s.target("nginx-bare"); bare.RPS > 0 {
		s.RPSVsNginxBare, s.P99VsNginxBare, s.CPUVsNginxBare, _ = paired(cut, bare)
		s.GoalMetBare = s.RPSVsNginxBare >= goalRPSRatio && s.P99VsNginxBare <= goalP99Slack
	}
}

// paired compares a with b round by round, each round's two runs loaded
// seconds apart (next to each other in the round's order, a first in half
// of the rounds and b first in the other half), and takes the median over
// the rounds: requests/s and CPU per request as ratios, p99 as a
// difference, and the lowest and highest requests/s ratio of a round. The
// machine's speed drifts over a run by more than the proxies differ; a
// ratio of two medians taken from different rounds carries that drift, a
// ratio within a round far less.
func paired(a, b *summary) (rps float64, p99 time.Duration, cpu float64, rpsRange [2]float64) {
	n := min(len(a.Runs), len(b.Runs))
	if n == 0 {
		return 0, 0, 0, rpsRange
	}
	rs := make([]float64, 0, n)
	cs := make([]float64, 0, n)
	ps := make([]time.Duration, 0, n)
	for i := range n {
		ra, rb := a.Runs[i], b.Runs[i]
		rs = append(rs, ratio(ra.RPS, rb.RPS))
		cs = append(cs, ratio(float64(ra.CPUPerReq), float64(rb.CPUPerReq)))
		ps = append(ps, ra.P99-rb.P99)
	}
	return median(rs), median(ps), median(cs), [2]float64{slices.Min(rs), slices.Max(rs)}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func (t *summary) summarize() {
	var rps []float64
	var p50, p99, p999, cpu, backendCPU, loadCPU []time.Duration
	t.Requests, t.Errors = 0, 0
	for _, r := range t.Runs {
		rps = append(rps, r.RPS)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		p999 = append(p999, r.P999)
		cpu = append(cpu, r.CPUPerReq)
		backendCPU = append(backendCPU, r.BackendCPUPerReq)
		loadCPU = append(loadCPU, r.LoadCPUPerReq)
		t.Requests += r.Requests
		t.Errors += r.Errors
	}
	t.RPS, t.P50, t.P99, t.P999, t.CPUPerReq = median(rps), median(p50), median(p99), median(p999), median(cpu)
	t.BackendCPUPerReq, t.LoadCPUPerReq = median(backendCPU), median(loadCPU)
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

// failures names what makes the figures meaningless: failed requests.
func (r *report) failures() string {
	var bad []string
	for _, s := range r.Settings {
		for _, t := range s.Targets {
			if t.Errors > 0 {
				bad = append(bad, fmt.Sprintf("%s at %d conns %s: %d failed", t.Name, s.Conns, s.mode(), t.Errors))
			}
		}
	}
	if r.Flip != nil && r.Flip.Failed > 0 {
		bad = append(bad, fmt.Sprintf("the weight flip: %d failed requests", r.Flip.Failed))
	}
	if len(bad) == 0 {
		return ""
	}
	return "failed requests (" + strings.Join(bad, "; ") + "): the figures are not comparable"
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "GET %s on 127.0.0.1, wrk, %d interleaved rounds x %s per target and setting (medians); cutover proxy: %s; backend: %s\n",
		r.Path, r.Rounds, r.Duration, r.ProxyMode, r.Backend)
	fmt.Fprintln(w, "cutover/X: medians over the rounds of the ratio (p99: difference) between cutover's run and X's in the same round")
	fmt.Fprintln(w, "CPU/req: CPU time of the serving process (nginx: master and workers) per request; backend, wrk: theirs in the same runs (the three share the CPUs)")
	met, metBare, bare := 0, 0, false
	for _, s := range r.Settings {
		fmt.Fprintf(w, "\n%d connections, %s\n", s.Conns, s.mode())
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\treq/s\tp50\tp99\tp99.9\tCPU/req\tbackend\twrk\terrors\t")
		for _, t := range s.Targets {
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", t.Name, t.RPS, ms(t.P50), ms(t.P99), ms(t.P999), us(t.CPUPerReq), us(t.BackendCPUPerReq), us(t.LoadCPUPerReq), t.Errors)
		}
		tw.Flush()
		verdict := "missed"
		if s.GoalMet {
			verdict = "met"
			met++
		}
		fmt.Fprintf(w, "cutover/nginx %.2fx req/s (rounds %.2f-%.2f; ratio of the medians %.2fx), p99 %s, CPU/req %.2fx; cutover/haproxy %.2fx req/s, p99 %s, CPU/req %.2fx; cutover/direct %.2fx; goal %s\n",
			s.RPSVsNginx, s.RPSRangeVsNginx[0], s.RPSRangeVsNginx[1], s.RPSMediansVsNginx, signedMs(s.P99VsNginx), s.CPUVsNginx, s.RPSVsHAProxy, signedMs(s.P99VsHAProxy), s.CPUVsHAProxy, s.RPSVsDirect, verdict)
		if s.RPSVsNginxBare > 0 {
			bare = true
			verdict = "missed"
			if s.GoalMetBare {
				verdict = "met"
				metBare++
			}
			fmt.Fprintf(w, "cutover/nginx-bare (no forwarding headers) %.2fx req/s, p99 %s, CPU/req %.2fx; goal %s\n",
				s.RPSVsNginxBare, signedMs(s.P99VsNginxBare), s.CPUVsNginxBare, verdict)
		}
	}
	fmt.Fprintf(w, "\n%s (nginx with the same forwarding headers): met in %d of %d settings\n", goalLabel, met, len(r.Settings))
	if bare {
		fmt.Fprintf(w, "the same against nginx-bare (nginx's defaults, no forwarding headers): met in %d of %d settings\n", metBare, len(r.Settings))
	}
	if f := r.Flip; f != nil {
		fmt.Fprintf(w, "weight flips under load (%d connections, keep-alive): %d flips, %d requests, %d failed\n", f.Conns, f.Flips, f.Requests, f.Failed)
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond)) }

func signedMs(d time.Duration) string {
	return fmt.Sprintf("%+.2fms", float64(d)/float64(time.Millisecond))
}
