package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The example's staging brought up, then a stored revision redeployed
// through a real `cutover serve`'s API: the call answers at once with the
// deployment (202), the deployment goes on in the daemon and succeeds, the
// environment's status and history show it, and /metrics (viewer token)
// counts it and the requests its proxy served.
func TestAPIRedeploysARevisionAndMetricsCountIt(t *testing.T) {
	e := newE2E(t)
	t.Cleanup(func() { e.run("down", "staging") })
	cfg, err := config.Load(e.file)
	if err != nil {
		t.Fatal(err)
	}
	staging := fmt.Sprintf("http://127.0.0.1:%d", cfg.Environments["staging"].Listen.Port)

	var up struct{ Revision string }
	lines := strings.Split(strings.TrimSpace(e.mustRun("up", "staging", "--output", "json")), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &up); err != nil || up.Revision == "" {
		t.Fatalf("up staging: %v %q", err, lines)
	}
	token := func(name, role string) string {
		var tok struct{ Token string }
		if err := json.Unmarshal([]byte(e.mustRun("token", "create", name, "--role", role, "--output", "json")), &tok); err != nil || tok.Token == "" {
			t.Fatalf("token create %s: %v", name, err)
		}
		return tok.Token
	}
	viewer, deployer := token("grafana", "viewer"), token("ci", "deployer")
	d := startServe(t, e.bin, e.file, e.home, testenv.FreePort(t))

	call := func(method, path, tok, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, d.base+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	body := `{"revision": "` + up.Revision + `"}`
	if code, b := call("POST", "/v1/environments/staging/deploy", viewer, body); code != http.StatusForbidden {
		t.Fatalf("deploy as viewer: %d %s", code, b)
	}
	if code, b := call("POST", "/v1/environments/staging/deploy", "", body); code != http.StatusUnauthorized {
		t.Fatalf("anonymous deploy: %d %s", code, b)
	}
	began := time.Now()
	code, b := call("POST", "/v1/environments/staging/deploy", deployer, body)
	var dep struct{ ID, Status, Revision string }
	if (code != http.StatusAccepted && code != http.StatusOK) || json.Unmarshal(b, &dep) != nil || dep.ID == "" || dep.Revision != up.Revision {
		t.Fatalf("deploy as deployer: %d %s", code, b)
	}
	t.Logf("deploy answered %d in %s: %s %s", code, time.Since(began).Round(time.Millisecond), dep.ID, dep.Status)

	var env struct {
		Revision   string
		Deployment struct{ ID, Status string }
		History    struct {
			Deployments []struct{ ID, Actor, Status string }
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, b := call("GET", "/v1/environments/staging", viewer, "")
		if code != http.StatusOK || json.Unmarshal(b, &env) != nil {
			t.Fatalf("GET /v1/environments/staging: %d %s", code, b)
		}
		if env.Deployment.ID == dep.ID && env.Deployment.Status != "in_progress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment did not finish within 3m: %s", b)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if env.Deployment.Status != "succeeded" || env.Revision != up.Revision {
		t.Fatalf("after the redeploy: %+v", env)
	}
	found := false
	for _, h := range env.History.Deployments {
		found = found || (h.ID == dep.ID && strings.Contains(h.Actor, "ci"))
	}
	if !found {
		t.Fatalf("history does not name the deployment by its token: %+v", env.History.Deployments)
	}

	for i := 0; i < 10; i++ {
		resp, err := http.Get(staging + "/api/health")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("staging through the proxy: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	if code, _ := call("GET", "/metrics", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous scrape: %d", code)
	}
	code, b = call("GET", "/metrics", viewer, "")
	if code != http.StatusOK {
		t.Fatalf("scrape: %d %s", code, b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		total := 0.0
		for _, m := range fams[name].GetMetric() {
			if hasLabels(m, labels) {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return total
	}
	if n := value("cutover_deployments_total", map[string]string{"environment": "staging", "strategy": "rolling", "outcome": "succeeded"}); n < 1 {
		t.Errorf("cutover_deployments_total of staging's rolling successes: %v", n)
	}
	if n := value("cutover_target_group_requests_total", map[string]string{"environment": "staging", "service": "backend", "code": "2xx"}); n < 10 {
		t.Errorf("staging backend 2xx: %v, want ≥ 10", n)
	}
	if n := value("cutover_proxy_up", nil); n != 1 {
		t.Errorf("cutover_proxy_up %v", n)
	}
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
