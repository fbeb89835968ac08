package proxy

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestQuantileInterpolates(t *testing.T) {
	b := []Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 0.2, Count: 30}, {UpperBound: 0.5, Count: 40}}
	for _, c := range []struct {
		q     float64
		count uint64
		want  float64
	}{
		{0.5, 40, 0.15}, // rank 20: halfway through (0.1, 0.2]
		{0.25, 40, 0.1}, // rank 10: top of the first bucket
		{0.1, 40, 0.04}, // rank 4 in [0, 0.1]
		{0.99, 50, 0.5}, // rank 49.5 beyond the last bound
		{0.5, 0, 0},     // no observations
		{1, 40, 0.5},    // the last observation
	} {
		if got := Quantile(c.q, b, c.count); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v, count %d) = %v, want %v", c.q, c.count, got, c.want)
		}
	}
}

// With the latencies' sum and sum of squares per bucket, a quantile lands
// where the latencies are, not spread over the whole bucket.
func TestQuantileUsesBucketMoments(t *testing.T) {
	// 100 answers of exactly 800 ms in the (0.75, 1] bucket: Prometheus'
	// interpolation reads p95 as 0.9875; the moments say 0.8.
	point := []Bucket{{UpperBound: 0.75}, {UpperBound: 1, Count: 100, Sum: 80, SumSq: 64}}
	if got := Quantile(0.95, point, 100); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("p95 of 800 ms answers = %v, want 0.8", got)
	}
	if got := Quantile(0.95, []Bucket{{UpperBound: 0.75}, {UpperBound: 1, Count: 100}}, 100); math.Abs(got-0.9875) > 1e-9 {
		t.Errorf("without moments p95 = %v, want Prometheus' 0.9875", got)
	}
	// Latencies spread evenly over 0.8..0.9 s: p95 near 0.895.
	var sum, sq float64
	for i := range 1000 {
		v := 0.8 + 0.1*(float64(i)+0.5)/1000
		sum, sq = sum+v, sq+v*v
	}
	spread := []Bucket{{UpperBound: 0.75}, {UpperBound: 1, Count: 1000, Sum: sum, SumSq: sq}}
	if got := Quantile(0.95, spread, 1000); math.Abs(got-0.895) > 0.001 {
		t.Errorf("p95 of an even 0.8..0.9 s spread = %v, want ~0.895", got)
	}
	// Windows subtract the moments too; groups add them.
	w := spread[1].Minus(point[1])
	if w.Count != 900 || math.Abs(w.Sum-(sum-80)) > 1e-9 || w.Plus(point[1]).Count != 1000 {
		t.Errorf("Minus/Plus %+v", w)
	}
}

func TestSubWindowsCounters(t *testing.T) {
	prev := GroupStats{Requests: 10, Codes: map[string]uint64{"2xx": 10}, LatencyCount: 10, Buckets: []Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 1, Count: 10}}}
	cur := GroupStats{Requests: 30, Codes: map[string]uint64{"2xx": 15, "5xx": 5}, LatencyCount: 30, Healthy: 2, Buckets: []Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 1, Count: 30}}}
	w := cur.Sub(prev)
	if w.Requests != 20 || w.Codes["5xx"] != 5 || w.Codes["2xx"] != 5 || w.Healthy != 2 {
		t.Fatalf("window %+v", w)
	}
	if w.P50 <= 0.1 || w.P50 > 1 {
		t.Fatalf("window p50 %v: all window observations were in (0.1, 1]", w.P50)
	}
	if w.ErrorRate() != 0.25 {
		t.Fatalf("error rate %v", w.ErrorRate())
	}
	// A restart between the snapshots: the later one is the window.
	if r := prev.Sub(cur); r.Requests != prev.Requests {
		t.Fatalf("after a counter reset want the later snapshot, got %+v", r)
	}
}

func TestMetricsMatchWhatBackendsDid(t *testing.T) {
	var n atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/work" && n.Add(1)%4 == 0 {
			w.WriteHeader(500) // exactly every 4th request
		}
	}))
	defer flaky.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/work" {
			time.Sleep(60 * time.Millisecond)
		}
	}))
	defer slow.Close()
	reg := prometheus.NewRegistry()
	p := newTestProxy(t, Options{Registerer: reg})
	addr := freeAddr(t)
	err := p.Apply(context.Background(), State{
		Listeners: []Listener{{Name: "e/l", Addr: addr, Rules: []Rule{
			{PathPrefix: "/", Forward: []WeightedTarget{{"e/flaky", 1}}},
			{Host: "slow", Forward: []WeightedTarget{{"e/slow", 1}}},
		}}},
		TargetGroups: []TargetGroup{tgOf("e/flaky", flaky), tgOf("e/slow", slow)},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/flaky", "healthy", 1)
	waitState(t, p, "e/slow", "healthy", 1)
	ctx := context.Background()
	res, err := loadgen.Run(ctx, loadgen.Options{URL: "http://" + addr + "/work", Concurrency: 4, Duration: 20 * time.Second, MaxRequests: 200})
	if err != nil || res.Requests != 200 {
		t.Fatal(res, err)
	}
	if _, err := loadgen.Run(ctx, loadgen.Options{URL: "http://" + addr + "/work", Host: "slow", Concurrency: 4, Duration: 20 * time.Second, MaxRequests: 40}); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	f, _ := st.Group("e/flaky")
	if f.Requests != 200 || f.Codes["5xx"] != 50 || f.Codes["2xx"] != 150 || f.LatencyCount != 200 {
		t.Fatalf("flaky stats %+v, want 200 requests of which 50 5xx", f)
	}
	s, _ := st.Group("e/slow")
	// 60 ms answers fall in the (50 ms, 75 ms] bucket, where interpolating
	// over the whole bucket would read p95 as ~74 ms.
	if s.Requests != 40 || s.P95 < 0.06 || s.P95 > 0.2 {
		t.Fatalf("slow group: %d requests, p95 %.3fs, want 40 and 0.06..0.2s", s.Requests, s.P95)
	}
	t.Logf("slow group (60 ms answers): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms", s.P50*1000, s.P95*1000, s.P99*1000)
	if got := testutil.ToFloat64(p.metrics.requests.WithLabelValues("e/l", "e/flaky", "5xx")); got != 50 {
		t.Fatalf("cutover_proxy_requests_total{5xx} = %v, want 50", got)
	}
	want := `
# HELP cutover_proxy_targets Targets by target group and state (initial, healthy, unhealthy, draining).
# TYPE cutover_proxy_targets gauge
cutover_proxy_targets{state="draining",target_group="e/flaky"} 0
cutover_proxy_targets{state="draining",target_group="e/slow"} 0
cutover_proxy_targets{state="healthy",target_group="e/flaky"} 1
cutover_proxy_targets{state="healthy",target_group="e/slow"} 1
cutover_proxy_targets{state="initial",target_group="e/flaky"} 0
cutover_proxy_targets{state="initial",target_group="e/slow"} 0
cutover_proxy_targets{state="unhealthy",target_group="e/flaky"} 0
cutover_proxy_targets{state="unhealthy",target_group="e/slow"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cutover_proxy_targets"); err != nil {
		t.Fatal(err)
	}
}
