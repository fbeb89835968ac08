package proxy

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clientConns counts the connections each client (clientKey: an IPv4
// address, an IPv6 /64) holds open to one listener, to bound them
// (max_client_conns): one machine opening connections and holding them
// would otherwise take every descriptor the listener may use (fdbudget.go)
// and leave everyone else refused. A connection is counted from its accept
// to its close, wherever it is served (a loop, the HTTP server, a tunnel).
type clientConns struct {
	max     int
	trusts  func(netip.Addr) bool  // trusted_proxies: not bounded
	refused *prometheus.CounterVec // by listener
	log     *slog.Logger
	name    atomic.Pointer[string] // the listener's (rename)

	mu     sync.Mutex
	n      map[netip.Addr]int
	warned atomic.Int64 // unix nanoseconds of the last warning
}

func newClientConns(name string, max int, trusts func(netip.Addr) bool, refused *prometheus.CounterVec, log *slog.Logger) *clientConns {
	cc := &clientConns{max: max, trusts: trusts, refused: refused, log: log, n: map[netip.Addr]int{}}
	cc.rename(name)
	return cc
}

// rename follows the listener's name (its metric label) when the routes
// rename it.
func (cc *clientConns) rename(name string) { cc.name.Store(&name) }

// admit counts a connection just accepted from ip. It returns the release
// to call when the connection closes, which acts once however often it is
// called (nil: a trusted proxy's, not counted), and ok false when the client holds max_client_conns already:
// the caller closes the connection then.
func (cc *clientConns) admit(ip netip.Addr) (release func(), ok bool) {
	if !ip.IsValid() || cc.trusts(ip) {
		return nil, true
	}
	key := clientKey(ip)
	cc.mu.Lock()
	n := cc.n[key]
	if n >= cc.max {
		cc.mu.Unlock()
		cc.refused.WithLabelValues(*cc.name.Load()).Inc()
		cc.warn(key)
		return nil, false
	}
	cc.n[key] = n + 1
	cc.mu.Unlock()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			cc.release(key)
		}
	}, true
}

func (cc *clientConns) release(key netip.Addr) {
	cc.mu.Lock()
	if n := cc.n[key]; n <= 1 {
		delete(cc.n, key)
	} else {
		cc.n[key] = n - 1
	}
	cc.mu.Unlock()
}

// warn says, at most every ten seconds per listener, that a client was
// refused: an attack, or clients behind a proxy that is not in
// trusted_proxies.
func (cc *clientConns) warn(key netip.Addr) {
	if !due(&cc.warned, 10*time.Second) {
		return
	}
	cc.log.Warn("a client holds max_client_conns connections: its new ones are closed as they come (clients behind a proxy share its address: list it in trusted_proxies, or raise max_client_conns)",
		"listener", *cc.name.Load(), "client", key.String(), "max_client_conns", cc.max)
}

// releasing returns c with release (nil: none) called at its first Close:
// a client connection that is not a rawConn (off Linux, or not TCP).
func releasing(c net.Conn, release func()) net.Conn {
	if release == nil {
		return c
	}
	return &releasingConn{Conn: c, release: release}
}

type releasingConn struct {
	net.Conn
	release func() // acts once (admit)
}

func (c *releasingConn) Close() error {
	defer c.release()
	return c.Conn.Close()
}

// SyscallConn gives the socket, as the connection's own would.
func (c *releasingConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// CloseWrite half-closes the connection, as the connection's own would.
func (c *releasingConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}
