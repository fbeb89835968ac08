package proxy

import (
	"context"
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
	slowRes, err := loadgen.Run(ctx, loadgen.Options{URL: "http://" + addr + "/work", Host: "slow", Concurrency: 4, Duration: 20 * time.Second, MaxRequests: 40})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	f, _ := st.Group("e/flaky")
	if f.Requests != 200 || f.Codes["5xx"] != 50 || f.Codes["2xx"] != 150 || f.LatencyCount != 200 {
		t.Fatalf("flaky stats %+v, want 200 requests of which 50 5xx", f)
	}
	s, _ := st.Group("e/slow")
	// 60 ms answers fall in the (50 ms, 75 ms] bucket, where interpolating
	// over the whole bucket would read p95 as ~74 ms. On a loaded machine
	// answers take longer than the target's 60 ms: the proxy's p95 (of the
	// target's time) may then reach what the clients saw (their p99), never
	// more.
	most := max(0.2, 1.1*slowRes.P99.Seconds())
	if s.Requests != 40 || s.P95 < 0.06 || s.P95 > most {
		t.Fatalf("slow group: %d requests, p95 %.3fs, want 40 and 0.06..%.3fs (clients saw %s)", s.Requests, s.P95, most, slowRes)
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
