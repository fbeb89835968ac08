package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Limits bound what one client may make a listener wait for or hold. Zero
// fields take the defaults below. They apply when the listener opens: a
// change to the limits of an open listener takes effect when the proxy
// restarts (`cutover proxy restart`) or the
// listener moves to another port.
type Limits struct {
	// ReadHeaderTimeout bounds the time to receive a request's line and
	// headers (slow-header clients); then the connection is closed.
	ReadHeaderTimeout Duration `json:"read_header_timeout,omitempty"`
	// BodyIdleTimeout bounds the wait for the next bytes of a request body;
	// a stalled body is answered 408 and its connection closed.
	BodyIdleTimeout Duration `json:"body_idle_timeout,omitempty"`
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
	// TargetTimeout bounds the wait for a target once it has the whole
	// request: for the head of its answer, restarted by each interim
	// answer (then 504, counted against its
	// group: a release whose handler hangs shows in the error rate), and
	// for each next bytes of the answer's body (then the answer is cut);
	// and for the target to take the next part of a request it takes
	// slowly (its head or body; then 504).
	TargetTimeout Duration `json:"target_timeout,omitempty"`
	// MaxHeaderBytes bounds the size of a request's line and headers;
	// a larger request is answered 431.
	MaxHeaderBytes int `json:"max_header_bytes,omitempty"`
	// BodyMinRate is the pace, in bytes a second, a request body must
	// keep on average: from the end of its head, it has BodyIdleTimeout
	// plus 1/BodyMinRate s for each byte it brought. A body that comes
	// slower (a trickle, each part within BodyIdleTimeout of the last) is
	// answered 408 and its connection closed.
	BodyMinRate int `json:"body_min_rate,omitempty"`
	// MaxBodyBytes bounds a request's body: one whose Content-Length is
	// over it is answered 413 before a target is picked (with Expect:
	// 100-continue, before the client sends it); a chunked one that goes
	// past it has its target's request cut and is answered 413. Neither
	// counts against a target group. Zero: no bound (as an ALB; nginx's
	// client_max_body_size is 1 MiB by default).
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// TunnelIdleTimeout bounds how long a tunnel (a WebSocket or other
	// upgraded connection, after its 101) may pass no data either way;
	// then both ends are closed. Off Linux it is not enforced.
	TunnelIdleTimeout Duration `json:"tunnel_idle_timeout,omitempty"`
	// MaxClientConns bounds the connections one client (an IPv4 address,
	// an IPv6 /64) holds open to the listener at once, tunnels included;
	// a connection over it is closed as it is accepted, before any byte
	// is read. The listener's trusted_proxies are not bounded: the
	// clients behind them share their address.
	MaxClientConns int `json:"max_client_conns,omitempty"`
}

// The default limits: about nginx's, tighter on headers and their time.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyIdleTimeout   = 30 * time.Second
	DefaultIdleTimeout       = 75 * time.Second
	DefaultTargetTimeout     = 60 * time.Second // nginx's proxy_read_timeout, an ALB's idle timeout
	DefaultMaxHeaderBytes    = 32 << 10
	DefaultBodyMinRate       = 100 // bytes a second: a 2G link's is some thousands
	// DefaultTunnelIdleTimeout is HAProxy's suggested "timeout tunnel":
	// long enough for a WebSocket whose application pings now and then
	// (nginx's 60 s cuts those that ping less often), short enough that
	// tunnels whose ends forgot them do not pile up.
	DefaultTunnelIdleTimeout = time.Hour

	// DefaultMaxClientConns leaves room for a large office or a carrier's
	// NAT behind one address (a browser opens 6 connections to a host)
	// while one machine cannot hold a listener's descriptors alone.
	DefaultMaxClientConns = 1024

	maxBodyMinRate = 1 << 30
	maxClientConns = 1 << 20

	// A tunnel's idle time is the kernel's, in milliseconds (32 bits: at
	// most 49 days); under a second, a new tunnel would hardly outlive
	// its first pause.
	minTunnelIdle = time.Second
	maxTunnelIdle = 1000 * time.Hour

	minHeaderBytes = 1 << 10
	maxHeaderBytes = 1 << 20
)

func (l Limits) readHeader() time.Duration {
	return orDefault(time.Duration(l.ReadHeaderTimeout), DefaultReadHeaderTimeout)
}
func (l Limits) bodyIdle() time.Duration {
	return orDefault(time.Duration(l.BodyIdleTimeout), DefaultBodyIdleTimeout)
}
func (l Limits) idle() time.Duration {
	return orDefault(time.Duration(l.IdleTimeout), DefaultIdleTimeout)
}
func (l Limits) target() time.Duration {
	return orDefault(time.Duration(l.TargetTimeout), DefaultTargetTimeout)
}
func (l Limits) maxHeader() int { return orDefault(l.MaxHeaderBytes, DefaultMaxHeaderBytes) }
func (l Limits) maxClientConns() int {
	return orDefault(l.MaxClientConns, DefaultMaxClientConns)
}
func (l Limits) tunnelIdle() time.Duration {
	return orDefault(time.Duration(l.TunnelIdleTimeout), DefaultTunnelIdleTimeout)
}

// body is the pace a request body is read at.
func (l Limits) body() bodyPace {
	return bodyPace{idle: l.bodyIdle(), minRate: orDefault(l.BodyMinRate, DefaultBodyMinRate), max: l.MaxBodyBytes}
}

// bodyPace bounds a request body: each read, BodyIdleTimeout from now and
// no later than its BodyMinRate allows; its size, MaxBodyBytes.
type bodyPace struct {
	idle    time.Duration
	minRate int
	max     int64 // 0: no bound
}

// over reports whether a body of n bytes is larger than the bound.
func (bp bodyPace) over(n int64) bool { return bp.max > 0 && n > bp.max }

// errBodyTooLarge: a chunked request body went past max_body_bytes.
var errBodyTooLarge = errors.New("the request body is over the listener's max_body_bytes")

// deadline is when the next read of a body whose head ended at start, and
// which brought got bytes since, must end.
func (bp bodyPace) deadline(start time.Time, got int64) time.Time {
	d := time.Now().Add(bp.idle)
	allowed := bp.idle + time.Duration(float64(got)/float64(bp.minRate)*float64(time.Second))
	if e := start.Add(allowed); e.Before(d) {
		return e
	}
	return d
}

func orDefault[T time.Duration | int](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func validateLimits(at string, l Limits, add func(string, ...any)) {
	for _, d := range []struct {
		name string
		v    Duration
	}{{"read_header_timeout", l.ReadHeaderTimeout}, {"body_idle_timeout", l.BodyIdleTimeout}, {"idle_timeout", l.IdleTimeout}, {"target_timeout", l.TargetTimeout}, {"tunnel_idle_timeout", l.TunnelIdleTimeout}} {
		if d.v < 0 {
			add("%s limits.%s %s is negative: give a duration such as \"10s\" (or leave it out for the default)", at, d.name, d.v)
		}
	}
	if d := time.Duration(l.TunnelIdleTimeout); d > 0 && (d < minTunnelIdle || d > maxTunnelIdle) {
		add("%s limits.tunnel_idle_timeout %s is out of range: give 1s to 1000h (default 1h)", at, d)
	}
	if n := l.BodyMinRate; n < 0 || n > maxBodyMinRate {
		add("%s limits.body_min_rate %d is out of range: give 1 to %d bytes a second (default %d)", at, n, maxBodyMinRate, DefaultBodyMinRate)
	}
	if l.MaxBodyBytes < 0 {
		add("%s limits.max_body_bytes %d is negative: give a size in bytes (or leave it out for no bound)", at, l.MaxBodyBytes)
	}
	if n := l.MaxClientConns; n < 0 || n > maxClientConns {
		add("%s limits.max_client_conns %d is out of range: give 1 to %d connections (default %d)", at, n, maxClientConns, DefaultMaxClientConns)
	}
	if n := l.MaxHeaderBytes; n != 0 && (n < minHeaderBytes || n > maxHeaderBytes) {
		add("%s limits.max_header_bytes %d is out of range: give %d to %d bytes (default %d)", at, n, minHeaderBytes, maxHeaderBytes, DefaultMaxHeaderBytes)
	}
}

// loopback is whom a listener trusts when TrustedProxies is unset: its
// clients are on this machine (listeners bind to local addresses), such as
// a TLS terminator in front of the proxy.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// TrustNone, alone in TrustedProxies, trusts nobody's forwarding headers.
const TrustNone = "none"

// parseTrusted reads trusted_proxies: CIDRs ("10.0.0.0/8") or single IPs;
// empty means loopback, and TrustNone alone nobody. (An empty list does not
// mean nobody: it would not survive a round trip through YAML.)
func parseTrusted(list []string) ([]netip.Prefix, error) {
	if len(list) == 0 {
		return loopback, nil
	}
	if slices.Contains(list, TrustNone) {
		if len(list) > 1 {
			return nil, fmt.Errorf("%q trusts nobody: it cannot be listed with addresses", TrustNone)
		}
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an IP address (192.0.2.7); %q trusts nobody", s, TrustNone)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// trusts reports whether the client at ip is a trusted proxy.
func trusts(trusted []netip.Prefix, ip netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
