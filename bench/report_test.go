package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
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

func TestReportGoal(t *testing.T) {
	mk := func(name string, rps float64, p99 time.Duration) *summary {
		s := &summary{Name: name}
		for range 3 {
			s.Rounds = append(s.Rounds, loadgen.Result{Requests: 10, RPS: rps, P50: p99 / 2, P99: p99})
		}
		s.summarize()
		return s
	}
	cases := []struct {
		name                 string
		cutoverRPS           float64
		cutoverP99           time.Duration
		wantMet              bool
		wantRatio, wantAdded string
	}{
		{"met", 9500, 2500 * time.Microsecond, true, "0.95x", "+0.50ms"},
		{"too slow", 8000, 2500 * time.Microsecond, false, "0.80x", "+0.50ms"},
		{"tail too long", 9500, 3500 * time.Microsecond, false, "0.95x", "+1.50ms"},
	}
	for _, c := range cases {
		direct, nginx := mk("direct", 12000, 2*time.Millisecond), mk("nginx", 10000, 3*time.Millisecond)
		cut := mk("cutover", c.cutoverRPS, c.cutoverP99)
		r := &report{Path: "/", Duration: time.Second, RoundsCount: 3, Concurrency: 1, Targets: []*summary{direct, cut, nginx}}
		r.compare(direct, cut, nginx)
		if r.GoalMet != c.wantMet {
			t.Errorf("%s: goal met %v, want %v", c.name, r.GoalMet, c.wantMet)
		}
		var out bytes.Buffer
		r.writeText(&out)
		verdict := map[bool]string{true: "MET", false: "MISSED"}[c.wantMet]
		for _, want := range []string{"cutover/nginx rps:  " + c.wantRatio, "added p99 vs direct: " + c.wantAdded,
			"goal: >= 0.90x nginx rps and <= 1ms added p99: " + verdict + "\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", c.name, want, &out)
			}
		}
		if cut.Requests != 30 {
			t.Errorf("requests %d, want the sum over rounds (30)", cut.Requests)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	good := options{duration: time.Second, rounds: 1, concurrency: 1, path: "/", proxyMode: modeProcess}
	if err := good.check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []options{
		{duration: time.Hour, rounds: 1, concurrency: 1, path: "/"},
		{duration: time.Second, rounds: 0, concurrency: 1, path: "/"},
		{duration: time.Second, rounds: 1, concurrency: 0, path: "/"},
		{duration: time.Second, rounds: 1, concurrency: 1, path: "api", proxyMode: modeProcess},
		{duration: time.Second, rounds: 1, concurrency: 1, path: "/", proxyMode: "docker"},
	} {
		if err := bad.check(); err == nil || !strings.HasPrefix(err.Error(), "-") {
			t.Errorf("%+v: error %v, want one naming the flag", bad, err)
		}
	}
}
