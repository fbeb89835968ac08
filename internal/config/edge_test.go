package config

import (
	"strings"
	"testing"
	"time"
)

func TestProxyEdge(t *testing.T) {
	base := "version: 1\nproject: p\nservices:\n  web: { build: { context: . }, port: 80, route: { path_prefix: / } }\nenvironments:\n  production:\n    listen: { port: 8080 }\n"
	c, err := Parse("cutover.yaml", []byte(base+"    proxy: { trusted_proxies: [10.0.0.0/8, 192.0.2.7], read_header_timeout: 5s, body_idle_timeout: 20s, idle_timeout: 1m, target_timeout: 2m, max_header_bytes: 16384, body_min_rate: 200, max_body_bytes: 10485760, tunnel_idle_timeout: 2h, max_client_conns: 64 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Environments["production"].Proxy
	if e == nil || strings.Join(e.TrustedProxies, ",") != "10.0.0.0/8,192.0.2.7" || e.ReadHeaderTimeout.Std() != 5*time.Second ||
		e.BodyIdleTimeout.Std() != 20*time.Second || e.IdleTimeout.Std() != time.Minute || e.TargetTimeout.Std() != 2*time.Minute || e.MaxHeaderBytes != 16384 || e.BodyMinRate != 200 || e.MaxBodyBytes != 10<<20 || e.TunnelIdleTimeout.Std() != 2*time.Hour || e.MaxClientConns != 64 {
		t.Fatalf("parsed %+v", e)
	}
	_, err = Parse("cutover.yaml", []byte(base+"    proxy:\n      trusted_proxies: [10.0.0.300, none]\n      max_header_bytes: 100\n      body_min_rate: -5\n      max_body_bytes: -1\n      tunnel_idle_timeout: 2000h\n      max_client_conns: 2000000\n"))
	for _, want := range []string{
		`cutover.yaml:9:`, `environments.production.proxy.trusted_proxies[0]: "10.0.0.300" is neither a CIDR`,
		`environments.production.proxy.trusted_proxies[1]: none trusts nobody`,
		`environments.production.proxy.max_header_bytes: 100 is out of range`,
		`environments.production.proxy.body_min_rate: -5 is out of range`,
		`environments.production.proxy.max_body_bytes: -1 is negative`,
		`environments.production.proxy.tunnel_idle_timeout: 2000h0m0s is out of range (write 1s to 1000h; default 1h)`,
		`environments.production.proxy.max_client_conns: 2000000 is out of range (write 1 to 1048576 connections; default 1024)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
}
