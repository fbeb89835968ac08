package local

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/proxy"
)

const twoServices = `version: 1
project: shop
services:
  api:
    image: api:1
    port: 3001
    health: { path: /api/health, interval: 1s }
    route: { path_prefix: /api }
    desired_count: 2
  web:
    image: web:1
    port: 80
    route: { path_prefix: / }
environments:
  prod:
    listen: { port: 9080, test_port: 9081 }
`

func mustConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("cutover.yaml", []byte(twoServices))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRoutesFirstStartSendsEverythingToTheNewSet(t *testing.T) {
	cfg := mustConfig(t)
	next := colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 40001}, {"a2", 40002}}, "web": {{"w1", 40003}}}}
	st := routes(cfg, "prod", nil, next, 100)
	if len(st.Listeners) != 2 || st.Listeners[0].Addr != "127.0.0.1:9080" || st.Listeners[1].Addr != "127.0.0.1:9081" {
		t.Fatalf("listeners %+v", st.Listeners)
	}
	if len(st.TargetGroups) != 2 || st.TargetGroups[0].Name != "shop.prod/api/blue" || len(st.TargetGroups[0].Targets) != 2 {
		t.Fatalf("groups %+v", st.TargetGroups)
	}
	if a := st.TargetGroups[0].Targets[1].Addr; a != "127.0.0.1:40002" {
		t.Fatalf("target addr %s", a)
	}
	if h := st.TargetGroups[0].Health; h.Path != "/api/health" || h.Interval.String() != "1s" {
		t.Fatalf("health %+v", h)
	}
	r := st.Listeners[0].Rules[0]
	if r.PathPrefix != "/api" || len(r.Forward) != 1 || r.Forward[0].Weight != 100 {
		t.Fatalf("rule %+v", r)
	}
	if got := servingColor(st, "shop.prod"); got != Blue {
		t.Fatalf("serving %q", got)
	}
}

func TestRoutesBesideTheOldSetKeepProductionOnIt(t *testing.T) {
	cfg := mustConfig(t)
	prev := colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 1}}, "web": {{"w1", 2}}}}
	next := colorSet{Color: Green, Tasks: map[string][]taskAddr{"api": {{"a3", 3}}, "web": {{"w2", 4}}}}
	st := routes(cfg, "prod", &prev, next, 0)
	if len(st.TargetGroups) != 4 {
		t.Fatalf("want both colors' groups, got %d", len(st.TargetGroups))
	}
	prod, test := st.Listeners[0], st.Listeners[1]
	for _, r := range prod.Rules {
		weights := map[string]int{}
		for _, f := range r.Forward {
			weights[colorOfGroup(f.TargetGroup)] = f.Weight
		}
		if len(r.Forward) != 2 || weights[Green] != 0 || weights[Blue] != 100 {
			t.Fatalf("production rule %+v", r)
		}
	}
	for _, r := range test.Rules {
		if len(r.Forward) != 1 || colorOfGroup(r.Forward[0].TargetGroup) != Green {
			t.Fatalf("test listener must reach the new set only: %+v", r)
		}
	}
	if got := servingColor(st, "shop.prod"); got != Blue {
		t.Fatalf("serving %q, want blue", got)
	}
	if got := servingColor(routes(cfg, "prod", nil, next, 100), "shop.prod"); got != Green {
		t.Fatalf("after the switch serving %q, want green", got)
	}
	if got := servingColor(st, "other.prod"); got != "" {
		t.Fatalf("another scope must not match: %q", got)
	}
}

func TestRoutingReadsBackWhatBuildScopeWrote(t *testing.T) {
	cfg := mustConfig(t)
	sets := map[string]map[string][]taskAddr{
		Blue:  {"api": {{"a1", 1}}, "web": {{"w1", 2}}},
		Green: {"api": {{"a2", 3}}, "web": {{"w2", 4}}},
	}
	for _, r := range []deploy.Routing{
		{Production: map[string]int{Blue: 100}},
		{Production: map[string]int{Blue: 100, Green: 0}, Test: Green},
		{Production: map[string]int{Blue: 70, Green: 30}, Test: Green},
		{Production: map[string]int{Green: 100}},
	} {
		st := buildScope(cfg, "prod", sets, r)
		got := routingOf(st, "shop.prod")
		if fmt.Sprint(got) != fmt.Sprint(r) {
			t.Errorf("wrote %+v, read back %+v", r, got)
		}
		if err := st.Validate(); err != nil {
			t.Errorf("%+v: proxy rejects the state: %v", r, err)
		}
	}
	// Leaving tasks are simply absent; a color without tasks and weight has no group.
	st := buildScope(cfg, "prod", map[string]map[string][]taskAddr{Green: sets[Green]}, deploy.Routing{Production: map[string]int{Green: 100}})
	if len(st.TargetGroups) != 2 {
		t.Fatalf("want only green groups, got %+v", st.TargetGroups)
	}
}

func TestRoutesBindTheProductionListenerOnTheConfiguredAddress(t *testing.T) {
	cfg, err := config.Parse("cutover.yaml", []byte(strings.Replace(twoServices, "listen: { port: 9080, test_port: 9081 }", "listen: { address: 0.0.0.0, port: 443, test_port: 9081 }", 1)))
	if err != nil {
		t.Fatal(err)
	}
	next := colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 40001}}, "web": {{"w1", 40003}}}}
	st := routes(cfg, "prod", nil, next, 100)
	if len(st.Listeners) != 2 || st.Listeners[0].Addr != "0.0.0.0:443" || st.Listeners[1].Addr != "127.0.0.1:9081" {
		t.Fatalf("listeners %+v: want production on 0.0.0.0:443, test on 127.0.0.1:9081", st.Listeners)
	}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRoutesServeTLSAndRedirectPlainHTTP(t *testing.T) {
	y := strings.Replace(twoServices, "listen: { port: 9080, test_port: 9081 }",
		"listen: { address: 0.0.0.0, port: 443, test_port: 9081, http_redirect_port: 80, tls: { cert_file: certs/app.pem, key_file: /etc/cutover/app.key } }", 1)
	cfg, err := config.Parse("/srv/shop/cutover.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	next := colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 40001}}, "web": {{"w1", 40003}}}}
	st := routes(cfg, "prod", nil, next, 100)
	if len(st.Listeners) != 3 {
		t.Fatalf("listeners %+v", st.Listeners)
	}
	prod, test, redirect := st.Listeners[0], st.Listeners[2], st.Listeners[1]
	if prod.Addr != "0.0.0.0:443" || prod.TLS == nil || prod.TLS.CertFile != "/srv/shop/certs/app.pem" || prod.TLS.KeyFile != "/etc/cutover/app.key" || prod.TLS.HTTP1Only {
		t.Fatalf("production %+v tls %+v (HTTP/2 is offered unless http2: false)", prod, prod.TLS)
	}
	if redirect.Name != "shop.prod/redirect" || redirect.Addr != "0.0.0.0:80" || redirect.RedirectTo != prod.Name || len(redirect.Rules) != 0 {
		t.Fatalf("redirect %+v", redirect)
	}
	if test.Addr != "127.0.0.1:9081" || test.TLS != nil {
		t.Fatalf("test listener %+v", test)
	}
	if got := routingOf(st, "shop.prod"); got.Serving() != Blue {
		t.Fatalf("routing read back %+v", got)
	}
}

func TestRoutesCarryHTTP2FalseToTheProxy(t *testing.T) {
	for _, tc := range []struct {
		tls  string
		only bool
	}{
		{"{ cert_file: app.pem, key_file: app.key, http2: false }", true},
		{"{ cert_file: app.pem, key_file: app.key, http2: true }", false},
		{"{ acme: { email: ops@shop.test, domains: [shop.test] }, http2: false }", true},
	} {
		y := strings.Replace(twoServices, "listen: { port: 9080, test_port: 9081 }", "listen: { port: 443, test_port: 9081, tls: "+tc.tls+" }", 1)
		cfg, err := config.Parse("/srv/shop/cutover.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		st := routes(cfg, "prod", nil, colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 40001}}, "web": {{"w1", 40003}}}}, 100)
		if tl := st.Listeners[0].TLS; tl == nil || tl.HTTP1Only != tc.only {
			t.Errorf("tls %s: proxy TLS %+v, want http1_only %v", tc.tls, tl, tc.only)
		}
	}
}

func TestRoutesCarryACMESettingsToTheProxy(t *testing.T) {
	y := strings.Replace(twoServices, "listen: { port: 9080, test_port: 9081 }",
		"listen: { port: 443, test_port: 9081, http_redirect_port: 80, tls: { acme: { email: ops@shop.test, domains: [shop.test], directory: \"https://127.0.0.1:14000/dir\", ca_root: pebble.pem, renew_before: 240h } } }", 1)
	cfg, err := config.Parse("/srv/shop/cutover.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	next := colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 40001}}, "web": {{"w1", 40003}}}}
	st := routes(cfg, "prod", nil, next, 100)
	a := st.Listeners[0].TLS.ACME
	if a == nil || a.Email != "ops@shop.test" || a.Domains[0] != "shop.test" || a.Directory != "https://127.0.0.1:14000/dir" || a.CARoot != "/srv/shop/pebble.pem" || a.RenewBefore.String() != "240h0m0s" {
		t.Fatalf("acme %+v", a)
	}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
}

// routes is the scope with production on prev and next by percentNext
// and the test listener on next: buildScope, as the tests call it.
func routes(cfg *config.Config, envName string, prev *colorSet, next colorSet, percentNext int) proxy.State {
	sets := map[string]map[string][]taskAddr{next.Color: next.Tasks}
	r := deploy.Routing{Production: map[string]int{next.Color: percentNext}, Test: next.Color}
	if prev != nil && percentNext < 100 {
		sets[prev.Color] = prev.Tasks
		r.Production[prev.Color] = 100 - percentNext
	}
	return buildScope(cfg, envName, sets, r)
}

// servingColor is the color that takes most production traffic in a
// scope's routes, or "" when none does (routingOf, as the tests call it).
func servingColor(st proxy.State, scope string) string {
	return routingOf(st, scope).Serving()
}
