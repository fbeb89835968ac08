package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
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

// TestACanaryThatRefusesConnectionsFailsItsRequests: a green group whose
// target refuses connections (the app listens on another port, or died;
// its health checks have not caught up yet) gets half of the requests.
// The proxy sends each on to blue, so no client sees a failure, but each
// is a failure of green: counted in green's stats (ConnectFailed, in its
// error rate, which an error_rate alarm reads) and in
// cutover_proxy_connect_failures_total, on the loop, on the server path
// and for an upgrade. Before, green showed no request and no error while
// it failed every request sent to it. Each path gets a green target of
// its own, so each would fail alone.
func TestACanaryThatRefusesConnectionsFailsItsRequests(t *testing.T) {
	blue := upstream(t, "blue")
	reg := prometheus.NewRegistry()
	p := newTestProxy(t, Options{Registerer: reg})
	addr := freeAddr(t)
	hourly := HealthCheck{Path: "/", Interval: Duration(time.Hour), Timeout: Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 1, SuccessCodes: "200-499"}
	bg := tgOf("e/blue", blue)
	bg.Health = hourly
	gen := 0
	freshGreen := func() {
		gen++
		green := httptest.NewServer(http.NotFoundHandler())
		gg := TargetGroup{Name: "e/green", Health: hourly, Targets: []Target{{ID: fmt.Sprintf("green-%d", gen), Addr: hostOf(green)}}}
		if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/blue", 1}, WeightedTarget{"e/green", 1})},
			TargetGroups: []TargetGroup{bg, gg}}); err != nil {
			t.Fatal(err)
		}
		waitState(t, p, "e/green", "healthy", 1)
		waitState(t, p, "e/blue", "healthy", 1)
		green.Close() // healthy for an hour more: only the reroute saves its requests
	}
	const n = 30
	failed := func() uint64 { g, _ := p.Stats().Group("e/green"); return g.ConnectFailed }
	client := &http.Client{Timeout: 5 * time.Second}
	paths := []struct {
		name string
		send func() (int, string)
	}{
		{"loop", func() (int, string) { code, body, _ := get(t, addr, "", "/"); return code, body }},
		{"server path", func() (int, string) {
			// A chunked upload: the loop hands it to the server path.
			resp, err := client.Post("http://"+addr+"/", "text/plain", io.MultiReader(strings.NewReader("up")))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}},
		{"upgrade", func() (int, string) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}},
	}
	for _, path := range paths {
		freshGreen()
		before := failed()
		served0, handed0 := p.loopCounts()
		for range n {
			if code, body := path.send(); code != 200 || body != "blue" {
				t.Fatalf("%s: %d %q, want blue's 200", path.name, code, body)
			}
		}
		if served, handed := p.loopCounts(); path.name == "loop" && (served-served0 < n || handed != handed0) || path.name != "loop" && (served != served0 || handed == handed0) {
			t.Fatalf("%s: the requests took another path (loop served %d, handed off %d)", path.name, served-served0, handed-handed0)
		}
		// Each request went to green at its first pick with odds 1/2: none
		// of 30 would happen once in 2^30.
		if failed() == before {
			t.Errorf("%s: no connect failure counted against green", path.name)
		}
	}

	total := uint64(3 * n)
	st := p.Stats()
	b, _ := st.Group("e/blue")
	g, _ := st.Group("e/green")
	if b.Requests != total || b.Codes["2xx"] != total || b.ConnectFailed != 0 || b.ErrorRate() != 0 {
		t.Errorf("blue: %d requests (%v), %d connect failures, error rate %v; want all %d answered 2xx", b.Requests, b.Codes, b.ConnectFailed, b.ErrorRate(), total)
	}
	if g.Requests != 0 || g.ConnectFailed == 0 || g.ConnectFailed > total || g.ErrorRate() != 1 {
		t.Errorf("green: %d requests, %d connect failures, error rate %v; want none answered, some failed, error rate 1", g.Requests, g.ConnectFailed, g.ErrorRate())
	}
	if got := testutil.ToFloat64(p.metrics.connectFailed.WithLabelValues("test/production", "e/green")); got != float64(g.ConnectFailed) {
		t.Errorf("cutover_proxy_connect_failures_total{e/green} = %v, want %d", got, g.ConnectFailed)
	}
	if got := testutil.ToFloat64(p.metrics.connectFailed.WithLabelValues("test/production", "e/blue")); got != 0 {
		t.Errorf("cutover_proxy_connect_failures_total{e/blue} = %v, want 0", got)
	}
	t.Logf("green: %d of %d requests could not connect and went to blue", g.ConnectFailed, total)
}
