package config

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestExampleConfig loads the example repository's cutover.yaml (a copy, with its build
// contexts) and checks the values other packages will read.
func TestExampleConfig(t *testing.T) {
	c, err := Load("testdata/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ServiceNames(); !slices.Equal(got, []string{"backend", "frontend"}) {
		t.Errorf("ServiceNames = %v", got)
	}
	if got := c.EnvironmentNames(); !slices.Equal(got, []string{"production", "staging"}) {
		t.Errorf("EnvironmentNames = %v", got)
	}
	if c.Dir() != "testdata/bluemed" || c.ContextDir("backend") != "testdata/bluemed/backend" {
		t.Errorf("Dir = %q, ContextDir = %q", c.Dir(), c.ContextDir("backend"))
	}
	be, fe := c.Services["backend"], c.Services["frontend"]
	check(t, "backend timeout", be.Health.Timeout.Std(), 500*time.Millisecond)
	check(t, "backend desired", be.DesiredCount, 2)
	check(t, "backend dockerfile", be.Build.Dockerfile, "Dockerfile")
	check(t, "backend commands", len(be.Build.Commands), 1)
	check(t, "frontend unhealthy threshold", fe.Health.UnhealthyThreshold, 3)
	check(t, "frontend path", fe.Health.Path, "/")
	check(t, "frontend desired", fe.DesiredCount, 1)

	stg, prod := c.Environments["staging"], c.Environments["production"]
	check(t, "staging test port", stg.Listen.TestPort, 8181)
	check(t, "staging platform", stg.Platform, "local")
	check(t, "staging steps", len(stg.Strategy.TrafficSteps()), 0)
	check(t, "production approval", prod.Approval.Timeout.Std(), 168*time.Hour)
	steps := prod.Strategy.TrafficSteps()
	check(t, "production steps", len(steps), 10)
	check(t, "production last step", steps[9], TrafficStep{Percent: 100})
	a0, a1 := prod.Strategy.Alarms[0], prod.Strategy.Alarms[1]
	check(t, "p95 threshold", a0.ParsedThreshold(), 0.5)
	check(t, "error rate threshold", a1.ParsedThreshold(), 0.01)
	m, n := a0.MofN()
	check(t, "p95 datapoints", [2]int{m, n}, [2]int{3, 5})
	m, n = a1.MofN()
	check(t, "error rate datapoints", [2]int{m, n}, [2]int{1, 1})
	check(t, "alarm default name", a1.Name, "error_rate")
	check(t, "alarm default period", a1.Period.Std(), 10*time.Second)
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

const minimal = `
version: 1
project: shop
services:
  web: { image: shop/web:1, port: 8000 }
environments:
  staging: {}
  production:
    listen: { port: 9000 }
    strategy: { type: blue_green }
    approval: {}
    hooks:
      after_allow_test_traffic:
        - http: { path: /health }
`

func TestDefaults(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Services["web"]
	want := Service{
		Image: "shop/web:1",
		Port:  8000,
		Health: HealthCheck{Path: "/", Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second),
			HealthyThreshold: 2, UnhealthyThreshold: 3, SuccessCodes: "200-399"},
		Route:               Route{PathPrefix: "/"},
		DesiredCount:        1,
		DeregistrationDelay: Duration(5 * time.Second),
		StopTimeout:         Duration(10 * time.Second),
	}
	if !jsonEqual(t, *w, want) {
		t.Errorf("service defaults:\n got %+v\nwant %+v", *w, want)
	}
	stg := c.Environments["staging"]
	wantStrategy := Strategy{Type: "rolling", TerminationWait: Duration(5 * time.Minute), MinimumHealthyPercent: 100,
		MaximumPercent: 200, CircuitBreaker: CircuitBreaker{true, true}, AutoRollback: AutoRollback{true, true, true}}
	if !jsonEqual(t, stg.Strategy, wantStrategy) {
		t.Errorf("strategy defaults:\n got %+v\nwant %+v", stg.Strategy, wantStrategy)
	}
	check(t, "staging listen", stg.Listen, Listen{Address: "127.0.0.1", Port: 8080, TestPort: 8081})
	prod := c.Environments["production"]
	check(t, "production traffic", prod.Strategy.Traffic, TrafficAllAtOnce)
	check(t, "production listen", prod.Listen, Listen{Address: "127.0.0.1", Port: 9000, TestPort: 9001})
	check(t, "approval timeout", prod.Approval.Timeout.Std(), 168*time.Hour)
	h := prod.Hooks.AfterAllowTestTraffic[0]
	check(t, "hook timeout", h.Timeout.Std(), 30*time.Second)
	if !jsonEqual(t, *h.HTTP, HTTPCheck{Path: "/health", Method: "GET", Listener: "test", ExpectStatus: 200}) {
		t.Errorf("hook http defaults: %+v", *h.HTTP)
	}
}

// TestExplicitZero checks that a zero written in the file is kept, not replaced by a default.
func TestExplicitZero(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(`
version: 1
project: shop
services:
  web: { image: shop/web:1, port: 8000, desired_count: 0, deregistration_delay: 0s, health: { interval: 1s } }
environments:
  staging:
    strategy: { minimum_healthy_percent: 0, circuit_breaker: { enable: false }, auto_rollback: { on_stop: false } }
  production:
    listen: { port: 9000 }
    strategy: { type: blue_green, termination_wait: 0s }
`))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Services["web"]
	check(t, "desired_count", w.DesiredCount, 0)
	check(t, "deregistration_delay", w.DeregistrationDelay, 0)
	check(t, "timeout follows a short interval", w.Health.Timeout.Std(), 500*time.Millisecond)
	s := c.Environments["staging"].Strategy
	check(t, "minimum_healthy_percent", s.MinimumHealthyPercent, 0)
	check(t, "circuit breaker", s.CircuitBreaker, CircuitBreaker{Enable: false, Rollback: true})
	check(t, "auto rollback", s.AutoRollback, AutoRollback{OnFailure: true, OnAlarm: true, OnStop: false})
	check(t, "termination_wait", c.Environments["production"].Strategy.TerminationWait, 0)
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func TestTrafficSteps(t *testing.T) {
	m := func(n int) Duration { return Duration(time.Duration(n) * time.Minute) }
	linear := func(pct int, wait Duration) []TrafficStep {
		var s []TrafficStep
		for p := pct; p < 100; p += pct {
			s = append(s, TrafficStep{p, wait})
		}
		return append(s, TrafficStep{100, 0})
	}
	for _, tc := range []struct {
		name string
		s    Strategy
		want []TrafficStep
	}{
		{"rolling", Strategy{Type: StrategyRolling}, nil},
		{"all at once", Strategy{Type: StrategyBlueGreen, Traffic: TrafficAllAtOnce}, []TrafficStep{{100, 0}}},
		{"canary 5", Strategy{Type: StrategyBlueGreen, Traffic: TrafficCanary10Percent5Minutes}, []TrafficStep{{10, m(5)}, {100, 0}}},
		{"canary 15", Strategy{Type: StrategyBlueGreen, Traffic: TrafficCanary10Percent15Minutes}, []TrafficStep{{10, m(15)}, {100, 0}}},
		{"linear 1", Strategy{Type: StrategyBlueGreen, Traffic: TrafficLinear10PercentEvery1Minute}, linear(10, m(1))},
		{"linear 3", Strategy{Type: StrategyBlueGreen, Traffic: TrafficLinear10PercentEvery3Minutes}, linear(10, m(3))},
		{"custom canary", Strategy{Type: StrategyBlueGreen, Canary: &Step{25, m(2)}}, []TrafficStep{{25, m(2)}, {100, 0}}},
		{"custom linear", Strategy{Type: StrategyBlueGreen, Linear: &Step{30, m(1)}}, []TrafficStep{{30, m(1)}, {60, m(1)}, {90, m(1)}, {100, 0}}},
		{"linear 50", Strategy{Type: StrategyBlueGreen, Linear: &Step{50, m(1)}}, []TrafficStep{{50, m(1)}, {100, 0}}},
	} {
		if got := tc.s.TrafficSteps(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAlarmParsing(t *testing.T) {
	for _, tc := range []struct {
		metric, threshold string
		want              float64
		bad               bool
	}{
		{MetricP95Latency, "500ms", 0.5, false},
		{MetricP99Latency, "2s", 2, false},
		{MetricP99Latency, "0s", 0, true},
		{MetricP95Latency, "500", 0, true},
		{MetricErrorRate, "1%", 0.01, false},
		{MetricErrorRate, "0.5 %", 0.005, false},
		{MetricErrorRate, "0.01", 0, true},
		{MetricErrorRate, "101%", 0, true},
		{MetricUnhealthyTargets, "1", 1, false},
		{MetricRunningTasks, "2", 2, false},
		{MetricRunningTasks, "two", 0, true},
	} {
		got, err := parseThreshold(tc.metric, tc.threshold)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%s %q: got %v, %v", tc.metric, tc.threshold, got, err)
		}
	}
	for _, tc := range []struct {
		s    string
		m, n int
		bad  bool
	}{{"", 1, 1, false}, {"3 of 5", 3, 5, false}, {" 1  of 1 ", 1, 1, false}, {"0 of 5", 0, 0, true}, {"6 of 5", 0, 0, true}, {"3/5", 0, 0, true}} {
		m, n, err := parseMofN(tc.s)
		if (err != nil) != tc.bad || m != tc.m || n != tc.n {
			t.Errorf("%q: got %d of %d, %v", tc.s, m, n, err)
		}
	}
	if !(Alarm{Metric: MetricP95Latency}).BreachesAbove() || (Alarm{Metric: MetricRunningTasks}).BreachesAbove() {
		t.Error("BreachesAbove is wrong")
	}
	check(t, "circuit breaker threshold 1", CircuitBreakerThreshold(1), 3)
	check(t, "circuit breaker threshold 9", CircuitBreakerThreshold(9), 5)
	check(t, "circuit breaker threshold 1000", CircuitBreakerThreshold(1000), 200)
}

func TestDuration(t *testing.T) {
	var v struct {
		D Duration `yaml:"d" json:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m30s"), &v); err != nil || v.D.Std() != 90*time.Second {
		t.Fatalf("yaml: %v %v", v.D, err)
	}
	out, err := json.Marshal(v)
	if err != nil || string(out) != `{"d":"1m30s"}` {
		t.Fatalf("json: %s %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"d":"250ms"}`), &v); err != nil || v.D.Std() != 250*time.Millisecond {
		t.Fatalf("json decode: %v %v", v.D, err)
	}
	y, err := yaml.Marshal(v)
	if err != nil || strings.TrimSpace(string(y)) != "d: 250ms" {
		t.Fatalf("yaml encode: %s %v", y, err)
	}
	for in, want := range map[string]string{
		"d: 2":   `"2" is not a duration (write "2s")`,
		"d: 1.5": `"1.5" is not a duration (write "1.5s")`,
		"d: abc": `"abc" is not a duration`,
		"d: [1]": "expected a duration",
	} {
		if err := yaml.Unmarshal([]byte(in), &v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", in, err, want)
		}
	}
	if d, err := ParseDuration("0"); err != nil || d != 0 {
		t.Errorf("0: %v %v", d, err)
	}
}

func TestConfigHash(t *testing.T) {
	c, err := Load("testdata/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	be := *c.Services["backend"]
	h := be.ConfigHash()
	if len(h) != 64 {
		t.Fatalf("hash %q", h)
	}
	for range 5 {
		if again := c.Services["backend"].ConfigHash(); again != h {
			t.Fatal("hash is not stable")
		}
	}
	other := be
	other.Build = &Build{Context: "elsewhere"}
	check(t, "build does not count", other.ConfigHash(), h)
	other.Env = map[string]string{"CORS_ORIGIN": "http://127.0.0.1:9999"}
	if other.ConfigHash() == h {
		t.Error("env change does not change the hash")
	}
	other = be
	other.Port = 3002
	if other.ConfigHash() == h {
		t.Error("port change does not change the hash")
	}
}

func TestHealthAccepts(t *testing.T) {
	for _, tc := range []struct {
		codes  string
		status int
		want   bool
	}{{"200-399", 302, true}, {"200-399", 404, false}, {"200,204", 204, true}, {"200,204", 201, false}, {"200", 200, true}} {
		if got := (HealthCheck{SuccessCodes: tc.codes}).Accepts(tc.status); got != tc.want {
			t.Errorf("%s accepts %d = %v", tc.codes, tc.status, got)
		}
	}
}

// TestValidateBuiltConfig checks Validate on a Config built in Go (no source positions).
func TestValidateBuiltConfig(t *testing.T) {
	c := &Config{Version: 1, Project: "shop",
		Services:     map[string]*Service{"web": {Image: "x", Port: 70000}},
		Environments: map[string]*Environment{"staging": {}}}
	c.applyDefaults()
	err := c.Validate()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].String() != "services.web.port: 70000 is out of range (write a port from 1 to 65535)" {
		t.Fatalf("err = %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("cutover.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("cutover.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !jsonEqual(t, c, again) {
		t.Errorf("round trip changed the configuration:\n%s", out)
	}
}

// On ecs, every secret a service names is read from the SSM parameter
// /cutover/PROJECT/ENV/NAME (which the exported execution role may read),
// unless the environment's ecs settings name another source.
func TestECSSecretsDefaultToTheEnvironmentsParameters(t *testing.T) {
	y := `version: 1
project: shop
services:
  web: { image: "shop/web:1", port: 80, secrets: [DB_PASSWORD, API_KEY], route: { path_prefix: / } }
  worker: { image: "shop/worker:1", port: 81, route: { path_prefix: /worker } }
environments:
  production:
    platform: ecs
    ecs:
      region: eu-west-1
      stack: shop-app-production
      services:
        web: { secrets: { API_KEY: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cutover/shop/production/api-AbCdEf", EXTRA: /cutover/shop/production/EXTRA } }
`
	c, err := ParseDir("cutover.yaml", t.TempDir(), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	got := c.ECSSecrets("production", "web")
	want := map[string]string{
		"DB_PASSWORD": "/cutover/shop/production/DB_PASSWORD",
		"API_KEY":     "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cutover/shop/production/api-AbCdEf",
		"EXTRA":       "/cutover/shop/production/EXTRA",
	}
	if !maps.Equal(got, want) {
		t.Errorf("web's ECS secrets: %v, want %v", got, want)
	}
	if got := c.ECSSecrets("production", "worker"); got != nil {
		t.Errorf("worker's ECS secrets: %v, want none", got)
	}
	if got := c.SecretNames(); !slices.Equal(got, []string{"API_KEY", "DB_PASSWORD"}) {
		t.Errorf("secret names: %v", got)
	}
}
