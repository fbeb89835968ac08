package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd: %v", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 { // (2+3)/2 truncated
		t.Errorf("even: %v", got)
	}
	if got := median[float64](nil); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 4s test @ http://127.0.0.1:1/\n  2 threads and 32 connections\nBENCH-RESULT 80000 4000000 2 1 900 3200 8100\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 80000 || r.Errors != 3 || r.RPS != 20000 || r.P50 != 900*time.Microsecond || r.P99 != 3200*time.Microsecond || r.P999 != 8100*time.Microsecond {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("want an error quoting wrk's output, got %v", err)
	}
}

func TestReportGoal(t *testing.T) {
	mk := func(name string, rps float64, p99 time.Duration) *summary {
		s := &summary{Name: name}
		for range 3 {
			s.Runs = append(s.Runs, run{Requests: 10, RPS: rps, P50: p99 / 2, P99: p99, P999: 2 * p99, CPUPerReq: 20 * time.Microsecond})
		}
		return s
	}
	cases := []struct {
		name              string
		cutoverRPS        float64
		cutoverP99        time.Duration
		wantMet           bool
		wantRatio, wantTo string
		wantBare          string // the line against nginx-bare (9000 req/s, p99 2.8ms)
	}{
		{"met", 10500, 3500 * time.Microsecond, true, "1.05x req/s (rounds 1.05-1.05; ratio of the medians 1.05x)", "+0.50ms", "1.17x req/s, p99 +0.70ms, CPU/req 1.00x; goal met"},
		{"too slow", 9500, 2500 * time.Microsecond, false, "0.95x req/s (rounds 0.95-0.95; ratio of the medians 0.95x)", "-0.50ms", "1.06x req/s, p99 -0.30ms, CPU/req 1.00x; goal met"},
		{"tail too long", 10500, 4500 * time.Microsecond, false, "1.05x req/s (rounds 1.05-1.05; ratio of the medians 1.05x)", "+1.50ms", "1.17x req/s, p99 +1.70ms, CPU/req 1.00x; goal missed"},
	}
	for _, c := range cases {
		s := &setting{Conns: 32, Targets: []*summary{mk("direct", 20000, 2*time.Millisecond), mk("cutover", c.cutoverRPS, c.cutoverP99),
			mk("nginx", 10000, 3*time.Millisecond), mk("haproxy", 12000, 3*time.Millisecond), mk("nginx-bare", 9000, 2800*time.Microsecond)}}
		s.summarize()
		if s.GoalMet != c.wantMet {
			t.Errorf("%s: goal met %v, want %v", c.name, s.GoalMet, c.wantMet)
		}
		r := &report{Path: "/", Duration: time.Second, Rounds: 3, Settings: []*setting{s}, Flip: &flipResult{Conns: 32, Flips: 4, Requests: 100}}
		var out bytes.Buffer
		r.writeText(&out)
		verdict := map[bool]string{true: "met", false: "missed"}[c.wantMet]
		for _, want := range []string{"cutover/nginx " + c.wantRatio + ", p99 " + c.wantTo + ", CPU/req 1.00x", "goal " + verdict + "\n",
			"(nginx with the same forwarding headers): met in " + map[bool]string{true: "1", false: "0"}[c.wantMet] + " of 1 settings",
			"cutover/nginx-bare (no forwarding headers) " + c.wantBare, "4 flips, 100 requests, 0 failed", "20.0µs"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", c.name, want, &out)
			}
		}
		if got := s.target("cutover").Requests; got != 30 {
			t.Errorf("requests %d, want the sum over rounds (30)", got)
		}
		if r.failures() != "" {
			t.Errorf("no errors, yet failures %q", r.failures())
		}
		s.Targets[2].Errors = 1
		if !strings.Contains(r.failures(), "nginx at 32 conns keep-alive: 1 failed") {
			t.Errorf("failures %q", r.failures())
		}
	}
}

// The machine's speed drifts between rounds by more than the proxies
// differ: cutover is compared with nginx within each round, not median
// with median (which here would say 0.92x, from two different rounds).
func TestPairedComparesWithinRounds(t *testing.T) {
	mk := func(rps []float64, p99 []time.Duration) *summary {
		s := &summary{}
		for i := range rps {
			s.Runs = append(s.Runs, run{RPS: rps[i], P99: p99[i], CPUPerReq: time.Duration(1e6 / rps[i])})
		}
		return s
	}
	ms := time.Millisecond
	cut := mk([]float64{100, 60, 60}, []time.Duration{2 * ms, 9 * ms, 5 * ms})
	nginx := mk([]float64{90, 65, 55}, []time.Duration{3 * ms, 7 * ms, 6 * ms})
	rps, p99, cpu, rng := paired(cut, nginx)
	if want := 60.0 / 55; rps != want {
		t.Errorf("req/s ratio %v, want the median of the rounds' ratios %v", rps, want)
	}
	if p99 != -ms {
		t.Errorf("p99 difference %v, want the median of -1ms, +2ms, -1ms", p99)
	}
	if cpu < 0.91 || cpu > 0.92 { // 55/60
		t.Errorf("CPU ratio %v, want about 0.917", cpu)
	}
	if rng != [2]float64{60.0 / 65, 100.0 / 90} {
		t.Errorf("range %v", rng)
	}
	if rps, _, _, _ := paired(cut, &summary{}); rps != 0 {
		t.Errorf("no runs to compare with: %v, want 0", rps)
	}
}

// Each round loads every target once; over two rounds each target runs
// before its neighbour once and after it once, and no position belongs to
// one target.
func TestRoundOrder(t *testing.T) {
	const n = 5
	first := map[int]bool{}
	for i := range 4 {
		for r := range 4 {
			order := roundOrder(n, r, i)
			pos := map[int]int{}
			for j, k := range order {
				pos[k] = j
			}
			if len(pos) != n {
				t.Fatalf("round %d setting %d: %v is not every target once", r, i, order)
			}
			first[order[0]] = true
			if r%2 == 1 {
				prev := roundOrder(n, r-1, i)
				pp := map[int]int{}
				for j, k := range prev {
					pp[k] = j
				}
				for k := range n - 1 {
					if (pos[k] < pos[k+1]) == (pp[k] < pp[k+1]) {
						t.Errorf("setting %d rounds %d and %d: target %d runs on the same side of %d in both (%v, %v)", i, r-1, r, k, k+1, prev, order)
					}
				}
			}
		}
	}
	if len(first) < 3 {
		t.Errorf("only targets %v ever run first", first)
	}
}

func TestOptionsCheck(t *testing.T) {
	good := options{duration: time.Second, rounds: 1, conns: []int{32}, path: "/", proxyMode: modeProcess, backend: backendStatic}
	if err := good.check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []options{
		{duration: time.Hour, rounds: 1, conns: []int{1}, path: "/", backend: backendBluemed},
		{duration: time.Second, rounds: 0, conns: []int{1}, path: "/", backend: backendBluemed},
		{duration: time.Second, rounds: 1, conns: []int{0}, path: "/", proxyMode: modeProcess, backend: backendBluemed},
		{duration: time.Second, rounds: 1, conns: nil, path: "/", proxyMode: modeProcess, backend: backendBluemed},
		{duration: time.Second, rounds: 1, conns: []int{1}, path: "api", proxyMode: modeProcess, backend: backendBluemed},
		{duration: time.Second, rounds: 1, conns: []int{1}, path: "/", proxyMode: "docker", backend: backendBluemed},
		{duration: time.Minute, rounds: 20, conns: []int{32, 256}, path: "/", proxyMode: modeProcess, backend: backendBluemed},
		{duration: time.Second, rounds: 1, conns: []int{1}, path: "/", proxyMode: modeProcess, backend: "docker"},
	} {
		if err := bad.check(); err == nil || !strings.HasPrefix(err.Error(), "-") {
			t.Errorf("%+v: error %v, want one naming the flag", bad, err)
		}
	}
}
