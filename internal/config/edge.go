package config

import (
	"net/netip"
	"strconv"
	"time"
)

// Edge bounds what clients may do to an environment's listeners on the
// local load balancer (platform local), and decides whose forwarding headers
// it believes. Zero fields take the load balancer's defaults.
type Edge struct {
	TrustedProxies    []string `yaml:"trusted_proxies,omitempty" json:"trusted_proxies,omitempty" jsonschema_description:"CIDRs or IPs of clients (such as a TLS terminator) whose X-Forwarded-For is extended and whose other X-Forwarded-* headers, Forwarded and client-address headers (X-Real-IP, Client-IP, True-Client-IP, CF-Connecting-IP, ...) are kept; other clients' are replaced or dropped. Default: loopback; [none] trusts nobody."`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout,omitempty" json:"read_header_timeout,omitempty" jsonschema:"default=10s" jsonschema_description:"Time to receive a request's line and headers; then the connection is closed."`
	BodyIdleTimeout   Duration `yaml:"body_idle_timeout,omitempty" json:"body_idle_timeout,omitempty" jsonschema:"default=30s" jsonschema_description:"Longest wait for the next bytes of a request body; then 408."`
	IdleTimeout       Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty" jsonschema:"default=75s" jsonschema_description:"How long a keep-alive connection waits for its next request."`
	TargetTimeout     Duration `yaml:"target_timeout,omitempty" json:"target_timeout,omitempty" jsonschema:"default=60s" jsonschema_description:"Longest wait for a target once it has the request: for its answer's head (an interim answer such as 103 Early Hints restarts it; then 504, counted in the release's error rate) and for each next part of its answer's body (then the answer is cut); and for it to take each part of an upload (then 504)."`
	MaxHeaderBytes    int      `yaml:"max_header_bytes,omitempty" json:"max_header_bytes,omitempty" jsonschema:"minimum=1024,maximum=1048576,default=32768" jsonschema_description:"Largest request line and headers; larger is answered 431."`
	BodyMinRate       int      `yaml:"body_min_rate,omitempty" json:"body_min_rate,omitempty" jsonschema:"minimum=1,maximum=1073741824,default=100" jsonschema_description:"Pace in bytes a second a request body must keep on average: it has body_idle_timeout plus 1/body_min_rate s per byte it brought, from the end of its head; a slower one (a trickle) is answered 408."`
	MaxBodyBytes      int64    `yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty" jsonschema:"minimum=1" jsonschema_description:"Largest request body in bytes (10485760 for 10 MiB); one with a larger Content-Length is answered 413 before it reaches a target (with Expect: 100-continue, before it is sent), and a chunked one that goes past it has its request to the target cut and is answered 413. Default: no bound."`
	MaxClientConns    int      `yaml:"max_client_conns,omitempty" json:"max_client_conns,omitempty" jsonschema:"minimum=1,maximum=1048576,default=1024" jsonschema_description:"Most connections one client (an IPv4 address, an IPv6 /64) may hold open to a listener at once, WebSockets included; a connection over it is closed as it is accepted. Clients in trusted_proxies are not bounded (those behind them share their address)."`
	TunnelIdleTimeout Duration `yaml:"tunnel_idle_timeout,omitempty" json:"tunnel_idle_timeout,omitempty" jsonschema:"default=1h" jsonschema_description:"From 1s to 1000h. Longest time a tunnel (a WebSocket or other upgraded connection) may pass no data either way; then both ends are closed. Raise it for WebSockets that ping less often."`
}

// edge checks the proxy settings of environment name.
func (v *validator) edge(name string, e *Environment) {
	if e.Proxy == nil {
		return
	}
	p := "environments." + name + ".proxy"
	if e.Platform != PlatformLocal {
		v.add(p, "applies to the local load balancer only (platform local); remove it for platform %s", e.Platform)
	}
	if n := e.Proxy.MaxHeaderBytes; n != 0 && (n < 1024 || n > 1<<20) {
		v.add(p+".max_header_bytes", "%d is out of range (write 1024 to 1048576 bytes; default 32768)", n)
	}
	if d := e.Proxy.TunnelIdleTimeout.Std(); d > 0 && (d < time.Second || d > 1000*time.Hour) {
		v.add(p+".tunnel_idle_timeout", "%s is out of range (write 1s to 1000h; default 1h)", d)
	}
	if n := e.Proxy.MaxBodyBytes; n < 0 {
		v.add(p+".max_body_bytes", "%d is negative (write a size in bytes, such as 10485760 for 10 MiB, or leave it out for no bound)", n)
	}
	if n := e.Proxy.MaxClientConns; n < 0 || n > 1<<20 {
		v.add(p+".max_client_conns", "%d is out of range (write 1 to 1048576 connections; default 1024)", n)
	}
	if n := e.Proxy.BodyMinRate; n < 0 || n > 1<<30 {
		v.add(p+".body_min_rate", "%d is out of range (write 1 to 1073741824 bytes a second; default 100)", n)
	}
	for i, s := range e.Proxy.TrustedProxies {
		at := p + ".trusted_proxies[" + strconv.Itoa(i) + "]"
		if s == "none" {
			if len(e.Proxy.TrustedProxies) > 1 {
				v.add(at, "none trusts nobody: it cannot be listed with addresses")
			}
			continue
		}
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(s); err != nil {
			v.add(at, "%q is neither a CIDR (10.0.0.0/8) nor an IP address (192.0.2.7); write none to trust nobody", s)
		}
	}
}
