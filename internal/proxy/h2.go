package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// HTTP/2 from clients, on TLS listeners (ALPN "h2"; no cleartext h2c).
//
// fasthttp speaks HTTP/1.1 only, and everything the proxy does to a request
// (routing, the edge's limits and refusals, the forwarding fields and whom
// to trust with them, streaming, retries, metrics, draining) is written
// against it. So a TLS connection that negotiates h2 is served by net/http's
// HTTP/2 server (its frame, flow-control, stream-count and reset-flood
// limits), and each of its requests is written, as HTTP/1.1, over an
// in-memory connection into the listener's own fasthttp server: the path an
// HTTP/1.1 client's request takes, on a connection that carries the
// client's address and TLS state. A request over HTTP/2 is therefore
// routed, limited, counted and answered exactly as one over HTTP/1.1, and
// its body streams both ways, as there. The target speaks HTTP/1.1 as
// before.
//
// What HTTP/2 does not carry: upgrades (a WebSocket client uses HTTP/1.1,
// as browsers do unless told otherwise) and trailers.

// http2Proto is HTTP/2's ALPN name.
const http2Proto = "h2"

// h2Bridge serves the HTTP/2 connections of one listener.
type h2Bridge struct {
	l    *listener
	srv  *http.Server
	rp   *httputil.ReverseProxy
	ln   *handoffListener // srv's: the connections that chose h2
	open atomic.Int64     // HTTP/2 connections open
	// heads holds, for each connection that has not yet sent a whole
	// request head, the timer that closes it at read_header_timeout.
	heads sync.Map // *tls.Conn -> *time.Timer
}

// Context keys of a request: its client connection (h2ClientKey), and
// its h2Request (h2RequestKey).
type (
	h2ClientKey  struct{}
	h2RequestKey struct{}
)

// h2Request is what the bridge keeps of a request it forwards.
type h2Request struct {
	done <-chan struct{} // the request's end: its stream reset, its connection gone, its answer sent
	body *h2Body         // nil without a body
	// ended is closed when the request's HTTP/1.1 side is over (its
	// in-memory connection served), if it was dialed.
	ended  chan struct{}
	dialed atomic.Bool
}

// DefaultMaxHTTP2InFlight bounds the HTTP/2 requests in flight on the
// HTTP/1.1 path, all listeners together, counted as requests of a listener
// with the default max_header_bytes. Each costs about what an HTTP/1.1
// connection does (goroutines, buffers: ~100 KiB measured), but 128 of them
// come on one TCP connection: without a bound, a few hundred connections of
// stalled streams would take gigabytes. nginx counts each stream as a
// connection against worker_connections (512 by default) for the same
// reason. Past it, a request is answered 503, counted against no group.
const DefaultMaxHTTP2InFlight = 8192

// DefaultMaxHTTP2InFlightPerClient bounds those of one client address: the
// streams of 8 connections. Without it one client with 64 connections of
// stalled streams took the whole bound, and every other HTTP/2 client got
// 503 for as long as it trickled its bodies. An IPv6 client is its /64 (one
// host's share); a listener's trusted_proxies, which carry many clients,
// are bound by the proxy's figure only.
const DefaultMaxHTTP2InFlightPerClient = 1024

// h2StreamBase is what a request over HTTP/2 costs besides its bridged
// connection's read buffer (max_header_bytes): goroutines, the HTTP/2
// server's state, the write buffer (~64 KiB measured).
const h2StreamBase = 64 << 10

// h2StreamCost is the memory a request in flight over HTTP/2 holds on a
// listener whose max_header_bytes is maxHeader: its bridged connection
// reads through a buffer that size. At the 1 MiB a listener may set, a
// stalled stream held ~1.1 MiB, 11 times the default's: counted as one
// request, 8 connections of one client held over a gigabyte.
func h2StreamCost(maxHeader int) int64 { return int64(maxHeader) + h2StreamBase }

// h2Budget counts the memory the HTTP/2 requests in flight hold
// (h2StreamCost each), all listeners together and per client address.
type h2Budget struct {
	max, perClient int64 // bytes
	total          atomic.Int64
	requests       atomic.Int64 // requests in flight
	mu             sync.Mutex
	clients        map[netip.Addr]int64
}

// newH2Budget bounds the requests in flight to max, and to perClient for
// one client, counted at the default max_header_bytes.
func newH2Budget(max, perClient int64) *h2Budget {
	unit := h2StreamCost(DefaultMaxHeaderBytes)
	return &h2Budget{max: max * unit, perClient: perClient * unit, clients: map[netip.Addr]int64{}}
}

// take counts a request of client ip (exempt from the per-client bound: a
// trusted proxy) on a listener whose max_header_bytes is maxHeader, or
// names the bound it would pass.
func (b *h2Budget) take(ip netip.Addr, exempt bool, maxHeader int) (release func(), refused string) {
	cost := h2StreamCost(maxHeader)
	// One request is always let in: a bound smaller than one request of
	// a listener with large heads would refuse every one.
	if t := b.total.Add(cost); t > b.max && t > cost {
		b.total.Add(-cost)
		return nil, fmt.Sprintf("%d requests at this listener's max_header_bytes, all clients", b.max/cost)
	}
	b.requests.Add(1)
	if exempt {
		return func() { b.requests.Add(-1); b.total.Add(-cost) }, ""
	}
	key := clientKey(ip)
	b.mu.Lock()
	if n := b.clients[key]; n > 0 && n+cost > b.perClient {
		b.mu.Unlock()
		b.requests.Add(-1)
		b.total.Add(-cost)
		return nil, fmt.Sprintf("%d requests at this listener's max_header_bytes, of one client", b.perClient/cost)
	}
	b.clients[key] += cost
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		if b.clients[key] -= cost; b.clients[key] <= 0 {
			delete(b.clients, key)
		}
		b.mu.Unlock()
		b.requests.Add(-1)
		b.total.Add(-cost)
	}, ""
}

// clientAddr is the address of a request's client (the HTTP/2 server's
// RemoteAddr); the zero Addr if it cannot be read.
func clientAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientKey is what a client is counted by: its IPv4 address, or its IPv6
// address's /64 (one host's share: a host with a /64 has 2^64 addresses to
// spread over), but for the prefixes where IPv6 addresses stand for IPv4
// hosts: the IPv4 address one carries (the well-known translator prefix,
// Teredo), or the whole address (a translator's own prefix).
func clientKey(ip netip.Addr) netip.Addr {
	if !ip.Is6() {
		return ip
	}
	b := ip.As16()
	switch {
	case nat64WellKnown.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	case teredo.Contains(ip):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}) // stored inverted
	case nat64Local.Contains(ip):
		return ip
	}
	if p, err := ip.Prefix(64); err == nil {
		return p.Addr()
	}
	return ip
}

// The IPv6 prefixes whose addresses stand for IPv4 hosts. The well-known
// prefix of IPv4/IPv6 translators (RFC 6052 §2.1) carries the IPv4 address
// in its last 32 bits: every IPv4 client of a translator in front of an
// IPv6 listener would otherwise share one /64. A translator's own prefix
// is taken from the local-use /48 (RFC 8215) at a length of its choosing,
// which places the IPv4 address differently: there each address counts
// alone. Teredo (RFC 4380 §4): a relay delivers by the client's IPv4
// address and port alone, so one IPv4 host choosing its own server field,
// flags and port would otherwise be a new client (a new /64, or a new
// address) for each.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	teredo         = netip.MustParsePrefix("2001::/32")
)

// h2Bridge returns l's bridge, started on first use (and again after
// retireH2); nil once shutdownH2 has run.
func (l *listener) h2Bridge() *h2Bridge {
	if b := l.h2.Load(); b != nil {
		return b
	}
	l.h2mu.Lock()
	defer l.h2mu.Unlock()
	if b := l.h2.Load(); b != nil || l.h2closed {
		return b
	}
	b := &h2Bridge{l: l, ln: newHandoffListener(h2Addr{})}
	errLog := slog.NewLogLogger(l.log.Handler(), slog.LevelDebug)
	b.rp = &httputil.ReverseProxy{
		// Rewrite mode drops the client's forwarding fields and adds
		// none; the four it drops are put back, for the HTTP/1.1 path
		// to keep or replace as it does for any client.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = l.addr // names the in-memory connection only
			for _, k := range rewriteDropped {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return l.bridgeConn(ctx)
			},
			// One in-memory connection a request: each carries its
			// client's address, and a pooled one could carry another's.
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 1 << 20,
		},
		// What the HTTP/1.1 path passes on goes to the client as it
		// comes: by default only answers of unknown length were flushed,
		// and one of known length waited, HEADERS frame and all, until it
		// filled the server's buffer (TestFirstBytesOfAFixedLengthAnswerAreNotHeldBack).
		FlushInterval: -1,
		ErrorHandler:  b.failed,
		ErrorLog:      errLog,
	}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(b.serve),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			// A new connection has read_header_timeout for its preface
			// and its first request's head, as over HTTP/1.1 (the
			// HTTP/2 server would give it 10s, then idle_timeout).
			b.heads.Store(c, time.AfterFunc(l.limits.readHeader(), func() { c.Close() }))
			return context.WithValue(ctx, h2ClientKey{}, c)
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				b.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.open.Add(-1)
				b.headDone(c)
			}
		},
		// Every stream's writes are bounded from its start, its
		// answer's last flush and the server's own refusals (431)
		// included; serve lifts it while the target works (h2Writer).
		WriteTimeout: l.limits.idle(),
		IdleTimeout:  l.limits.idle(),
		// OPTIONS * goes to the target, as over HTTP/1.1.
		DisableGeneralOptionsHandler: true,
		MaxHeaderBytes:               l.limits.maxHeader(),
		// A client that stops reading its socket: the HTTP/1.1 path
		// gives each write the idle time too (and serve each stream's
		// writes, which flow control can stop where the socket does not).
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: 128, WriteByteTimeout: l.limits.idle()},
		ErrorLog: errLog,
	}
	go b.srv.Serve(b.ln) // returns when Shutdown or Close closes b.ln
	l.h2.Store(b)
	l.h2all = append(l.h2all, b)
	return b
}

// headDone stops the head timer of c, once.
func (b *h2Bridge) headDone(c any) {
	if t, ok := b.heads.LoadAndDelete(c); ok {
		t.(*time.Timer).Stop()
	}
}

// serve forwards one request over HTTP/2: what HTTP/2 lets through that the
// HTTP/1.1 path would refuse is refused here; the answer's writes are
// bounded by the idle time; the request's end goes with it, so a stream the
// client resets is a client that hung up.
func (b *h2Bridge) serve(w http.ResponseWriter, r *http.Request) {
	b.headDone(r.Context().Value(h2ClientKey{}))
	hw := &h2Writer{ResponseWriter: w, rc: http.NewResponseController(w), idle: b.l.limits.idle()}
	// The stream's WriteTimeout deadline (srv) is lifted while the target
	// works; each write, and the server's last flush after this handler
	// returns, has the idle time.
	hw.disarm()
	defer hw.arm()
	if msg := h2Refused(r); msg != "" {
		b.l.clients.refusedRequest(http.StatusBadRequest, msg, clientAddr(r.RemoteAddr))
		hw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		hw.WriteHeader(http.StatusBadRequest)
		io.WriteString(hw, msg)
		return
	}
	ip := clientAddr(r.RemoteAddr)
	release, refused := b.l.h2Budget.take(ip, b.l.trusts(ip), b.l.limits.maxHeader())
	if refused != "" {
		b.l.clients.refusedRequest(http.StatusServiceUnavailable, "HTTP/2: too many requests in flight: "+refused, ip)
		hw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		hw.Header().Set("Retry-After", "1")
		hw.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(hw, "cutover: too many requests in flight, retry\n")
		return
	}
	defer release()
	req := &h2Request{done: r.Context().Done(), ended: make(chan struct{})}
	// The handler returns only once the request's HTTP/1.1 side is over:
	// a stream the client resets ends here at once, and without this wait
	// the HTTP/2 server's bound on streams (128 a connection, and its
	// rapid-reset defence) would not bound the requests at the target.
	defer func() {
		if req.dialed.Load() {
			<-req.ended
		}
	}()
	if r.Body != nil && r.Body != http.NoBody {
		req.body = &h2Body{ReadCloser: r.Body}
		r.Body = req.body
	}
	r = r.WithContext(context.WithValue(r.Context(), h2RequestKey{}, req))
	b.rp.ServeHTTP(hw, r)
}

// h2Refused says why r, as net/http's HTTP/2 server let it through, is not
// one to forward: a method that is not a token (HTTP/1.1's request line
// cannot carry it), no host, a Content-Length that is not one number
// (net/http reads it as 0 and would drop the body).
func h2Refused(r *http.Request) string {
	if !httpguts.ValidHeaderFieldName(r.Method) {
		return "cutover: bad request method\n"
	}
	if r.Host == "" {
		// Neither :authority nor host: HTTP/1.1 needs a Host (the
		// transport would write the listener's address).
		return "cutover: the request names no host (:authority)\n"
	}
	if cl, ok := r.Header["Content-Length"]; ok {
		if n, err := strconv.ParseInt(textproto.TrimString(strings.Join(cl, ",")), 10, 64); err != nil || n != r.ContentLength {
			return "cutover: bad Content-Length\n"
		}
	}
	return ""
}

// failed answers a request the HTTP/1.1 path gave no answer to: 400 when
// reading the client's body failed (a stream reset or ended short), 502
// otherwise; nothing to a client that went away.
func (b *h2Bridge) failed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	code, msg := http.StatusBadGateway, "cutover: the request could not be forwarded\n"
	if req, ok := r.Context().Value(h2RequestKey{}).(*h2Request); ok && req.body != nil && req.body.failed() {
		code, msg = http.StatusBadRequest, "cutover: bad request body\n" // counted by the HTTP/1.1 path (badBody)
	}
	b.l.log.Debug("HTTP/2 request: no answer from the HTTP/1.1 path", "listener", b.l.name, "status", code, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

// h2Body is an HTTP/2 request's body, which remembers a failed read.
type h2Body struct {
	io.ReadCloser
	err atomic.Pointer[error]
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (b *h2Body) failed() bool { return b.err.Load() != nil }

// h2Writer gives each write of an answer the idle time: a stream whose
// client stops reading (its flow-control window shut) is reset then, as a
// client connection that stops reading is closed over HTTP/1.1. Between
// writes there is no deadline (a quiet target is target_timeout's).
type h2Writer struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *h2Writer) arm()    { w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }
func (w *h2Writer) disarm() { w.rc.SetWriteDeadline(time.Time{}) }

func (w *h2Writer) Write(p []byte) (int, error) {
	w.arm()
	defer w.disarm()
	return w.ResponseWriter.Write(p)
}

func (w *h2Writer) FlushError() error {
	w.arm()
	defer w.disarm()
	return w.rc.Flush()
}

func (w *h2Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// rewriteDropped are the fields httputil.ReverseProxy's Rewrite mode removes.
var rewriteDropped = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// bridgeConn opens an in-memory connection into l's fasthttp server for one
// request of the client connection in ctx.
func (l *listener) bridgeConn(ctx context.Context) (net.Conn, error) {
	client, ok := ctx.Value(h2ClientKey{}).(*tls.Conn)
	if !ok {
		return nil, errors.New("no client connection in the request's context")
	}
	var done <-chan struct{} // nil: never
	var ended chan struct{}
	if req, ok := ctx.Value(h2RequestKey{}).(*h2Request); ok {
		done = req.done
		if req.dialed.CompareAndSwap(false, true) {
			ended = req.ended
		}
	}
	ours, theirs := net.Pipe()
	go func() {
		if ended != nil {
			defer close(ended)
		}
		if err := l.srv.ServeConn(&h2Stream{Conn: theirs, client: client, done: done}); err != nil {
			l.log.Debug("HTTP/2 request on the HTTP/1.1 path", "listener", l.name, "err", err)
		}
	}()
	return ours, nil
}

// h2Stream is the server's end of the in-memory connection of one HTTP/2
// request: it answers for the client's connection (its addresses, its TLS
// state), so the server sees the client as it would over HTTP/1.1.
type h2Stream struct {
	net.Conn
	client *tls.Conn
	done   <-chan struct{} // the request's end: its stream reset, its connection gone
}

// ReadFrom writes what it reads from r as it comes (an answer's body
// streaming through the server; see streamBody).
func (s *h2Stream) ReadFrom(r io.Reader) (int64, error) { return copyThrough(s.Conn, r) }

// gone reports whether the request's client hung up (peek asks, as it asks
// a socket, while the request waits for its target).
func (s *h2Stream) gone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *h2Stream) RemoteAddr() net.Addr                 { return s.client.RemoteAddr() }
func (s *h2Stream) LocalAddr() net.Addr                  { return s.client.LocalAddr() }
func (s *h2Stream) Handshake() error                     { return nil }
func (s *h2Stream) ConnectionState() tls.ConnectionState { return s.client.ConnectionState() }

// takeH2 hands c, which negotiated h2, to l's HTTP/2 server; false when
// it no longer accepts (the listener is shutting down).
func (l *listener) takeH2(c *tls.Conn) bool {
	b := l.h2Bridge()
	if b == nil {
		return false
	}
	c.SetDeadline(time.Time{}) // the handshake's; the HTTP/2 server keeps its own
	select {
	case b.ln.ch <- c:
		return true
	case <-b.ln.closed:
		return false
	}
}

// h2Addr is the address of a bridge's listener.
type h2Addr struct{}

func (h2Addr) Network() string { return "h2" }
func (h2Addr) String() string  { return "h2-bridge" }

// alpnConn is a client's TLS connection as the HTTP/1.1 server reads it:
// its first read completes the handshake (under the server's read
// deadline, as for any TLS connection) and, if the client chose h2 (on a
// listener that offers it), hands the connection to the HTTP/2 server and
// reads EOF, so the HTTP/1.1 server lets it go without a word (its Close
// then leaves it open). It notes whether any byte of a request came
// (asked).
type alpnConn struct {
	*tls.Conn
	l    *listener
	read bool // the first read was made; only the server's goroutine reads
	got  bool // a read returned bytes: a request began
	lf   bool // a read returned a line end: the first request line was whole
	// headed: the first request's head ended (CRLF CRLF); until then tail
	// holds the last bytes read, to find an end split across reads.
	headed bool
	tail   []byte
	handed chan struct{}
}

// ReadFrom writes what it reads from r as it comes (an answer's body
// streaming through the server; see streamBody).
func (c *alpnConn) ReadFrom(r io.Reader) (int64, error) { return copyThrough(c.Conn, r) }

func (c *alpnConn) Read(b []byte) (int, error) {
	if !c.read {
		c.read = true
		if err := c.Conn.Handshake(); err != nil {
			return 0, err
		}
		if c.Conn.ConnectionState().NegotiatedProtocol == http2Proto {
			if c.l.takeH2(c.Conn) {
				close(c.handed)
			} else {
				refuseH2(c.Conn)
			}
			return 0, io.EOF
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.got = true
		c.lf = c.lf || bytes.IndexByte(b[:n], '\n') >= 0
		if !c.headed && c.bareLFHead(b[:n]) {
			return 0, errBareLFHead
		}
	}
	return n, err
}

// bareLFHead follows the first request's head through the reads: it
// reports whether the head ends in bare LFs, which the server's parser
// would wait on until read_header_timeout (408) where the loops answer 400
// at once. Later requests on the connection are not followed (the server
// reads their heads and bodies alike): theirs still wait.
func (c *alpnConn) bareLFHead(b []byte) bool {
	edge := append(c.tail, b[:min(3, len(b))]...) // an end split across reads
	if bytes.Contains(b, crlf2) || bytes.Contains(edge, crlf2) {
		c.headed, c.tail = true, nil
		return false
	}
	if bareLFEnd(b) || bareLFEnd(edge) {
		return true
	}
	if len(b) >= 3 {
		edge = b
	}
	c.tail = append(c.tail[:0], edge[max(0, len(edge)-3):]...)
	return false
}

// asked reports whether any byte of a request came on c, a connection the
// HTTP/1.1 server reads: false for a TLS connection whose handshake failed
// (a client that refused the certificate, a scanner) or whose client said
// nothing (a browser's preconnect). A connection a loop handed over, or a
// plain one, is taken as asked.
func asked(c net.Conn) bool {
	if ac, ok := c.(*alpnConn); ok {
		return ac.got
	}
	return true
}

// lineTooLong reports whether no line end came on c, a connection the
// HTTP/1.1 server reads, whose head the server found over max_header_bytes:
// then it is the first request's, and its request line alone was over it
// (414, as the loops and nginx answer; 431 is for a head too large past its
// request line). A later request's is taken for 431.
func lineTooLong(c net.Conn) bool {
	ac, ok := c.(*alpnConn)
	return ok && !ac.lf
}

func (c *alpnConn) Close() error {
	select {
	case <-c.handed:
		return nil // the HTTP/2 server's now
	default:
		return c.Conn.Close()
	}
}

// http2Open counts the open HTTP/2 connections of each listener that has
// had one.
func (p *Proxy) http2Open() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int64{}
	for _, l := range p.listeners {
		if bs := l.bridges(); len(bs) > 0 {
			var n int64
			for _, b := range bs {
				n += b.open.Load()
			}
			out[l.name] = n
		}
	}
	return out
}

// underTLS returns the connection under c when c is a client's TLS
// connection, else c.
func underTLS(c net.Conn) net.Conn {
	switch tc := c.(type) {
	case *tls.Conn:
		return tc.NetConn()
	case *alpnConn:
		return tc.NetConn()
	}
	return c
}

// refuseH2 answers a connection that chose h2 after the listener's HTTP/2
// server stopped (its handshake ended after a Close or a hand-over's
// step-down began): the server's SETTINGS and a GOAWAY that took no stream,
// so the client sends its requests again on a new connection (which the
// next proxy accepts), rather than a close it may not retry on. Then a
// lingering close: a close with the client's request unread would reset
// the connection, and the GOAWAY might be lost with it.
func refuseH2(c *tls.Conn) {
	c.SetDeadline(time.Now().Add(time.Second))
	fr := http2.NewFramer(c, c)
	if fr.WriteSettings() == nil && fr.WriteGoAway(0, http2.ErrCodeNo, nil) == nil && c.CloseWrite() == nil {
		io.Copy(io.Discard, c) // until the client closes, or the second passes
	}
	c.Close()
}

// retireH2 is for an Apply that stops offering h2 on l: its HTTP/2
// connections get a GOAWAY (clients come back with HTTP/1.1, or with h2
// to a new bridge should it be offered again), and their streams in
// flight get until target_timeout to end.
func (l *listener) retireH2() {
	l.h2mu.Lock()
	b := l.h2.Swap(nil)
	l.h2mu.Unlock()
	if b == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.limits.target())
		defer cancel()
		if b.srv.Shutdown(ctx) != nil {
			b.srv.Close()
		}
	}()
}

// bridges returns every bridge l has started (the current one and those
// retired, which may still be ending).
func (l *listener) bridges() []*h2Bridge {
	l.h2mu.Lock()
	defer l.h2mu.Unlock()
	return slices.Clone(l.h2all)
}

// shutdownH2 stops l's HTTP/2 connections as Shutdown does: a GOAWAY to
// each, then it waits until their streams end or ctx does (then closes
// them). No bridge starts after it.
func (l *listener) shutdownH2(ctx context.Context) error {
	l.h2mu.Lock()
	l.h2closed = true
	l.h2.Store(nil)
	l.h2mu.Unlock()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range l.bridges() {
		wg.Go(func() {
			if err := b.srv.Shutdown(ctx); err != nil {
				b.srv.Close()
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// closeH2 closes l's HTTP/2 connections at once.
func (l *listener) closeH2() {
	for _, b := range l.bridges() {
		b.srv.Close()
	}
}
