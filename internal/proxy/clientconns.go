package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// clientConns counts the connections each client (clientKey: an IPv4
// address, an IPv6 /64) holds open to one listener, to bound them
// (max_client_conns): one machine opening connections and holding them
// would otherwise take every descriptor the listener may use (fdbudget.go)
// and leave everyone else refused. A connection is counted from its accept
// to its close, wherever it is served (a loop, the HTTP server, a tunnel).
//
// It also counts what the listener refused its clients, for the metrics
// and GET /v1/stats (listenerStats): those connections, and the requests
// the proxy answered itself because of what the client sent or did
// (refuse), which count against no target group.
type clientConns struct {
	max    int
	trusts func(netip.Addr) bool // trusted_proxies: not bounded
	log    *slog.Logger
	name   atomic.Pointer[string] // the listener's (rename)

	mu     sync.Mutex
	n      map[netip.Addr]int
	warned atomic.Int64 // unix nanoseconds of the last warning

	connsRefused atomic.Uint64
	reqsRefused  [len(refusalCodes)]atomic.Uint64
	// noted, noted503: unix nanoseconds of the last refusal logged, of a
	// client's mistakes and of the HTTP/2 budget's 503s: a trickle of the
	// first must not hide the second.
	noted, noted503 atomic.Int64
}

// refusalCodes are the statuses the proxy refuses a client's request with:
// malformed or smuggling framing, a bad target or header name (400), a
// head or body too slow (408), a body over max_body_bytes (413), a request
// line (414) or head (431) over max_header_bytes, CONNECT (501), HTTP/2
// requests over the in-flight budget (503), an HTTP version not served
// (505).
var refusalCodes = [...]int{400, 408, 413, 414, 431, 501, 503, 505}

func newClientConns(name string, max int, trusts func(netip.Addr) bool, log *slog.Logger) *clientConns {
	cc := &clientConns{max: max, trusts: trusts, log: log, n: map[netip.Addr]int{}}
	cc.rename(name)
	return cc
}

// refuse answers a request the client botched and closes the connection:
// what follows on it cannot be trusted. It counts in the listener's
// refusals, against no target group.
func (cc *clientConns) refuse(ctx *fasthttp.RequestCtx, status int, msg string) {
	cc.refusedRequest(status, msg, remoteAddr(ctx))
	lingerOnClose(ctx.Conn())
	ctx.Response.Reset()
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(status)
	ctx.SetBodyString(msg)
	ctx.SetConnectionClose()
}

// refusedRequest counts a request the proxy answered status itself
// because of client (one of refusalCodes; another counts as 400), and logs
// it with why (the answer's text, the proxy's own words: never the
// request's bytes, which may carry credentials) at most every ten seconds
// per listener: a client turned away by the proxy, not by the app, is
// otherwise a mystery to whoever runs it.
func (cc *clientConns) refusedRequest(status int, why string, client netip.Addr) {
	i := 0
	for j, c := range refusalCodes {
		if c == status {
			i = j
			break
		}
	}
	cc.reqsRefused[i].Add(1)
	level, last := slog.LevelInfo, &cc.noted // the client's doing
	if status == 503 {
		level, last = slog.LevelWarn, &cc.noted503 // the proxy's HTTP/2 budget: raise it, or find who fills it
	}
	if cc.log.Enabled(context.Background(), level) && due(last, 10*time.Second) {
		cc.log.Log(context.Background(), level, "refused a client's request (logged at most every 10s per listener; all are counted in cutover_proxy_requests_refused_total)",
			"listener", *cc.name.Load(), "status", status, "why", strings.TrimSuffix(strings.TrimPrefix(why, "cutover: "), "\n"), "client", client.String())
	}
}

// refusals returns what the listener refused its clients so far: requests
// by status (those counted), and connections over max_client_conns.
func (cc *clientConns) refusals() (reqs map[string]uint64, conns uint64) {
	reqs = map[string]uint64{}
	for i, c := range refusalCodes {
		if n := cc.reqsRefused[i].Load(); n > 0 {
			reqs[strconv.Itoa(c)] = n
		}
	}
	return reqs, cc.connsRefused.Load()
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
		cc.connsRefused.Add(1)
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
