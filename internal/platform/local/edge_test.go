package local

import (
	"slices"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
)

// TestListenersCarryTheEnvironmentsProxyEdge: cutover.yaml's proxy section
// reaches both listeners of the environment, and the proxy accepts it.
func TestListenersCarryTheEnvironmentsProxyEdge(t *testing.T) {
	cfg, err := config.Parse("cutover.yaml", []byte(twoServices+"    proxy: { trusted_proxies: [none], read_header_timeout: 3s, body_idle_timeout: 4s, idle_timeout: 5s, target_timeout: 6s, max_header_bytes: 8192, body_min_rate: 50, max_body_bytes: 4096, tunnel_idle_timeout: 7s, max_client_conns: 9 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	next := colorSet{Color: Blue, Tasks: map[string][]taskAddr{"api": {{"a1", 40001}}, "web": {{"w1", 40003}}}}
	st := routes(cfg, "prod", nil, next, 100)
	want := proxy.Limits{ReadHeaderTimeout: proxy.Duration(3 * time.Second), BodyIdleTimeout: proxy.Duration(4 * time.Second),
		IdleTimeout: proxy.Duration(5 * time.Second), TargetTimeout: proxy.Duration(6 * time.Second), MaxHeaderBytes: 8192, BodyMinRate: 50, MaxBodyBytes: 4096, TunnelIdleTimeout: proxy.Duration(7 * time.Second), MaxClientConns: 9}
	if len(st.Listeners) != 2 {
		t.Fatalf("listeners %+v", st.Listeners)
	}
	for _, l := range st.Listeners {
		if l.Limits != want || !slices.Equal(l.TrustedProxies, []string{proxy.TrustNone}) {
			t.Errorf("listener %s: limits %+v trusted %v", l.Name, l.Limits, l.TrustedProxies)
		}
	}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	if plain := routes(mustConfig(t), "prod", nil, next, 100); plain.Listeners[0].Limits != (proxy.Limits{}) || plain.Listeners[0].TrustedProxies != nil {
		t.Errorf("without a proxy section the listener keeps the defaults: %+v", plain.Listeners[0])
	}
}
