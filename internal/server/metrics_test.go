package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics with token and parses the exposition format.
func scrape(t *testing.T, a *authServer, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		var e struct{ Error string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Fatalf("/metrics answered %d without a JSON error: %s", resp.StatusCode, b)
		}
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return resp.StatusCode, fams
}

// sample is the metric of fams[name] whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s in the scrape", name)
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s%v in the scrape: %v", name, want, f.GetMetric())
	return nil
}

// runProxy runs the real proxy (its admin API on a unix socket in a short
// temporary home) in this process until the test ends.
func runProxy(t *testing.T) *proxy.Client {
	t.Helper()
	home, err := os.MkdirTemp("", "cxm")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proxy.Run(ctx, home, proxy.RunOptions{ShutdownGrace: time.Second}) }()
	t.Cleanup(func() {
		cancel()
		<-done
		os.RemoveAll(home)
	})
	c := proxy.NewClient(home)
	waitFor(t, "the proxy to answer", func() bool { _, err := c.Ping(ctx); return err == nil })
	return c
}

func freePort(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
}

// TestMetricsAfterARealExecutionAndProxyTraffic runs an execution through
// its approval, records a rolled-back deployment as the controller does,
// sends requests through the real proxy to a real target, and scrapes
// /metrics: viewers may, anonymous callers may not.
func TestMetricsAfterARealExecutionAndProxyTraffic(t *testing.T) {
	pc := runProxy(t)
	a := newAuthServerWith(t, "{ required: true }", nil, func(s *Server) { s.Proxy = pc })
	ctx := context.Background()

	// Anonymous and bad tokens are refused before anything is read.
	if code, _ := scrape(t, a, ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous scrape: %d, want 401", code)
	}
	if code, _ := scrape(t, a, "cot_not-a-token"); code != http.StatusUnauthorized {
		t.Fatalf("scrape with a bad token: %d, want 401", code)
	}

	// A real execution: queued, waiting at the approval, approved.
	x := a.trigger(t, "deployer")
	time.Sleep(1100 * time.Millisecond) // an approval wait of at least a second
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/approve", token: a.tokens["approver"], body: `{"comment":"ok"}`}, http.StatusOK)
	waitFor(t, "the execution to succeed", func() bool {
		got, _ := a.Store.GetExecution(ctx, x.ID)
		return got.Status == store.ExecutionSucceeded
	})

	// A deployment that an alarm rolled back 7s after its first traffic,
	// stored as the deployment controller stores it (the controller itself
	// needs Docker; its State fields are what the collector reads).
	first := time.Now().Add(-time.Minute).UTC()
	data, _ := json.Marshal(deploy.State{NewColor: "green", Cause: "alarm", FirstTraffic: first, DetectedAt: first.Add(7 * time.Second)})
	rev := store.Revision{ID: "r-1", Project: a.Config.Project, Environment: "production", Source: "test",
		Services: map[string]store.ServiceRevision{"hello": {Image: "127.0.0.1:5999/hello@sha256:" + strings.Repeat("a", 64), ConfigHash: "h"}}}
	if err := a.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	d := store.Deployment{ID: "d-1", Project: a.Config.Project, Environment: "production", Revision: rev.ID, Strategy: "blue_green", Phase: "in_progress", Data: data}
	if err := a.Store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	d, _ = a.Store.GetDeployment(ctx, d.ID)
	d.Status, d.Phase, d.Reason = store.DeploymentRolledBack, "rolled_back", "alarm latency in alarm"
	if _, err := a.Store.UpdateDeployment(ctx, d, d.Generation); err != nil {
		t.Fatal(err)
	}

	// Traffic through the real proxy to a real target, on production's
	// blue target group of service hello.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "hello")
	}))
	defer target.Close()
	group := local.Scope(a.Config.Project, "production") + "/hello/blue"
	lis, other := freePort(t), freePort(t)
	rules := []proxy.Rule{{Forward: []proxy.WeightedTarget{{TargetGroup: group, Weight: 100}}}}
	st := proxy.State{
		// The production listener of this project, and one of another
		// project's production, which the same proxy serves: its figures
		// are not this project's viewers' to read.
		Listeners: []proxy.Listener{{Name: local.Scope(a.Config.Project, "production") + "/production", Addr: lis, Rules: rules},
			{Name: local.Scope("another-project", "production") + "/production", Addr: other, Rules: rules}},
		TargetGroups: []proxy.TargetGroup{{Name: group, Health: proxy.HealthCheck{Interval: proxy.Duration(50 * time.Millisecond), HealthyThreshold: 1},
			Targets: []proxy.Target{{ID: "t1", Addr: strings.TrimPrefix(target.URL, "http://")}}}},
	}
	if _, err := a.Proxy.PutState(ctx, st, 0); err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		resp, err := http.Get("http://" + lis + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "the proxy to route to the target", func() bool { return get("/") == http.StatusOK })
	for i := 0; i < 9; i++ {
		if code := get("/"); code != http.StatusOK {
			t.Fatalf("through the proxy: %d", code)
		}
	}
	for i := 0; i < 3; i++ {
		get("/missing")
	}
	// Requests the proxy refuses itself: two smuggling attempts (400), an
	// HTTP version it does not serve (505); the same at the other
	// project's listener.
	for _, addr := range []string{lis, other} {
		for _, head := range []string{
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, head)
			io.ReadAll(c) // answered, then closed
			c.Close()
		}
	}

	code, fams := scrape(t, a, a.tokens["viewer"])
	if code != http.StatusOK {
		t.Fatalf("viewer scrape: %d", code)
	}
	check := func(name string, labels map[string]string, want float64, value func(*dto.Metric) float64) {
		t.Helper()
		if got := value(sample(t, fams, name, labels)); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	gauge := func(m *dto.Metric) float64 { return m.GetGauge().GetValue() }
	counter := func(m *dto.Metric) float64 { return m.GetCounter().GetValue() }
	hcount := func(m *dto.Metric) float64 { return float64(m.GetHistogram().GetSampleCount()) }
	check("cutover_executions", map[string]string{"status": "succeeded"}, 1, gauge)
	check("cutover_queue_length", nil, 0, gauge)
	check("cutover_approvals_pending", nil, 0, gauge)
	check("cutover_stage_duration_seconds", map[string]string{"stage": "gate", "status": "succeeded"}, 1, hcount)
	check("cutover_action_duration_seconds", map[string]string{"stage": "gate", "action": "approve", "kind": "approval", "status": "succeeded"}, 1, hcount)
	check("cutover_approval_wait_seconds", map[string]string{"status": "approved"}, 1, hcount)
	if w := sample(t, fams, "cutover_approval_wait_seconds", map[string]string{"status": "approved"}).GetHistogram().GetSampleSum(); w < 1 {
		t.Errorf("approval wait %vs, want at least 1s", w)
	}
	check("cutover_deployments_total", map[string]string{"environment": "production", "strategy": "blue_green", "outcome": "rolled_back"}, 1, counter)
	check("cutover_rollbacks_total", map[string]string{"environment": "production", "reason": "alarm"}, 1, counter)
	check("cutover_detection_seconds", map[string]string{"environment": "production", "reason": "alarm"}, 1, hcount)
	if s := sample(t, fams, "cutover_detection_seconds", map[string]string{"environment": "production"}).GetHistogram().GetSampleSum(); s != 7 {
		t.Errorf("detection time %vs, want 7s", s)
	}
	check("cutover_proxy_up", nil, 1, gauge)
	tg := map[string]string{"environment": "production", "service": "hello", "color": "blue"}
	check("cutover_target_group_requests_total", merge(tg, map[string]string{"code": "4xx"}), 3, counter)
	check("cutover_target_group_connect_failures_total", tg, 0, counter)
	if n := counter(sample(t, fams, "cutover_target_group_requests_total", merge(tg, map[string]string{"code": "2xx"}))); n < 10 {
		t.Errorf("2xx through the proxy: %v, want ≥ 10", n)
	}
	if n := hcount(sample(t, fams, "cutover_target_group_request_duration_seconds", tg)); n < 13 {
		t.Errorf("latency samples: %v, want ≥ 13", n)
	}
	check("cutover_target_group_targets", merge(tg, map[string]string{"state": "healthy"}), 1, gauge)
	prod := map[string]string{"environment": "production", "listener": "production"}
	check("cutover_listener_requests_refused_total", merge(prod, map[string]string{"code": "400"}), 2, counter)
	check("cutover_listener_requests_refused_total", merge(prod, map[string]string{"code": "505"}), 1, counter)
	check("cutover_listener_connections_refused_total", prod, 0, counter)
	// (The target group's 4xx checked above are the target's 3 only.)
	for name, series := range map[string]int{"cutover_listener_requests_refused_total": 2, "cutover_listener_connections_refused_total": 1} {
		if f := fams[name]; len(f.GetMetric()) != series {
			t.Errorf("%s: %v, want this project's production listener's %d series only", name, f, series)
		}
	}

	// Every role from viewer up may scrape; the proxy's absence shows as 0.
	if code, _ := scrape(t, a, a.tokens["deployer"]); code != http.StatusOK {
		t.Fatalf("deployer scrape: %d", code)
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestGrafanaDashboardUsesExportedMetrics: every series the dashboard in
// docs/grafana/cutover.json queries is one /metrics exports, so a renamed
// metric cannot leave the dashboard empty.
func TestGrafanaDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana/cutover.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana/cutover.json: %v", err)
	}
	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	(&collector{}).Describe(ch)
	close(ch)
	nameRE := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		exported[nameRE.FindStringSubmatch(d.String())[1]] = true
	}
	seriesRE := regexp.MustCompile(`cutover_[a-z_]+`)
	used := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range seriesRE.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !exported[base] {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, m)
				}
				used++
			}
		}
	}
	if used < 15 {
		t.Fatalf("the dashboard queries only %d series", used)
	}
}
