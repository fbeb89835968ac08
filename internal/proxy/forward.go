package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// attempt is the state of one forwarded request, from the handler to the
// end of the response body it streams. Pooled.
type attempt struct {
	route  *route
	fw     *forward
	target *target
	start  time.Time
	status int // recorded against fw's group when not 0
	// writeIdle bounds each write of a streamed answer to the client (the
	// listener's idle_timeout): a client that stops reading is let go.
	writeIdle time.Duration
	// targetWait bounds the wait for the target once it has the request:
	// for its answer's head (then 504) and each next part of a streamed
	// body (the listener's target_timeout).
	targetWait time.Duration
	// tunnelIdle bounds a tunnel's time without data (the listener's
	// tunnel_idle_timeout).
	tunnelIdle time.Duration
	hj         *hijacks     // the listener's
	clients    *clientConns // the listener's: refusals counted there
}

var attemptPool = sync.Pool{New: func() any { return new(attempt) }}

// finish releases the target and records the answer; called exactly once,
// when the response has been written (or given up).
func (a *attempt) finish() {
	a.target.inFlight.Add(-1)
	if a.status != 0 {
		a.fw.record(a.status, time.Since(a.start))
	}
	*a = attempt{}
	attemptPool.Put(a)
}

// listenerHandler serves one listener address from the current snapshot.
type listenerHandler struct {
	clients *clientConns // the listener's: refusals counted there
	p       *Proxy
	addr    string
	body    bodyPace
	// writeIdle, targetWait and tunnelIdle: see attempt.
	writeIdle, targetWait, tunnelIdle time.Duration
	hj                                *hijacks
	// draining: the listener hands over to the next proxy; each answer
	// closes its connection (the client's next request goes there)
	draining *atomic.Bool
}

// serve is the fasthttp handler of a listener: it answers the request
// (answer), then sets the write deadline the server would set, the idle
// time. Set by the handler, it also makes the server send the answer whole
// before it serves the next request: left to itself, the server keeps the
// answer to a request that a client pipelined in its write buffer while it
// serves the next one, so that answer waited on the next target's work, and
// the next request's Early Hints, written past that buffer, reached the
// client before it (TestLoopAttackEarlyHintsBehindAPipelinedAnswer). The
// server then clears the deadline: floorWrites keeps one (off Linux the
// server's own way is kept).
func (h *listenerHandler) serve(ctx *fasthttp.RequestCtx) {
	h.answer(ctx)
	if h.draining.Load() {
		ctx.SetConnectionClose()
	}
	if floorWrites(ctx.Conn(), h.writeIdle) {
		ctx.SetWriteDeadline(time.Now().Add(h.writeIdle))
	}
}

// answer routes the request by host and path, picks a target by weight and
// forwards to it.
func (h *listenerHandler) answer(ctx *fasthttp.RequestCtx) {
	start := ctx.Time() // the server read the clock just before calling the handler
	// A request read from the server's buffer (pipelined) may follow an
	// answer not yet sent: nothing of this one's (an early hint) waits.
	undefer(ctx.Conn())
	if status, msg := refuseFraming(&ctx.Request.Header); status != 0 {
		h.clients.refuse(ctx, status, msg)
		return
	}
	if cl := int64(ctx.Request.Header.ContentLength()); h.body.over(cl) {
		// Read (and drop) a body the client is sending anyway, for
		// drainTime at most, so that it reads the answer rather than a
		// reset connection.
		if r := ctx.RequestBodyStream(); r != nil {
			buf := smallPool.Get().(*[]byte)
			discardBody(ctx, r, *buf)
			smallPool.Put(buf)
		}
		tooLarge(ctx, h.clients, h.body)
		return
	}
	// A small body is read before a target is picked: a client that sends
	// it slowly holds no target meanwhile, and a target removed meanwhile
	// gets nothing (the route and the pick are made when the request can
	// go, from the routes then).
	buf := smallPool.Get().(*[]byte)
	defer smallPool.Put(buf)
	small, err := readSmallBody(ctx, *buf, h.body)
	if err != nil {
		h.p.log.Debug("bad request body", "remote", ctx.RemoteAddr().String(), "err", err)
		badBody(ctx, h.clients, err, h.body)
		return
	}
	lr := h.p.snap.Load().byAddr[h.addr]
	if lr != nil && lr.redirectPort != 0 {
		redirectHTTPS(ctx, h.clients, lr)
		return
	}
	host := ctx.Request.Header.Host() // of an absolute-form target, the URI's (RFC 9112 §3.2.2)
	path := ctx.Path()
	var rt *route
	if lr != nil {
		rt = lr.match(host, path)
	}
	if rt == nil {
		name := ""
		if lr != nil {
			name = lr.name
		}
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBodyString("cutover: no route for host " + string(host) + " path " + string(path) + " on listener " + name + "\n")
		return
	}
	fw, t := rt.pick(nil)
	if t == nil {
		p := rt.primary()
		p.noTarget.Inc()
		p.g.noTarget.Add(1)
		p.requests[4].Inc()
		p.g.classes[4].Add(1)
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(rt.noTargetMessage())
		return
	}
	t.inFlight.Add(1)
	a := attemptPool.Get().(*attempt)
	*a = attempt{route: rt, fw: fw, target: t, start: start, writeIdle: h.writeIdle, targetWait: h.targetWait, tunnelIdle: h.tunnelIdle, hj: h.hj, clients: h.clients}
	client := remoteAddr(ctx)
	if streamed := h.p.forward(ctx, a, small, h.body, client, trusts(lr.trusted, client)); !streamed {
		a.finish()
	}
}

// refuseFraming returns the status and the reason a request whose framing
// (or target, or method) cannot be trusted is refused with, or 0. fasthttp rejects most bad framing itself (duplicate
// Content-Length, unknown Transfer-Encoding, malformed chunks); a request
// with both Content-Length and Transfer-Encoding it would serve by the
// latter, which is how requests are smuggled past a proxy that reads the
// former (RFC 9112 §6.1), so it is refused here.
func refuseFraming(h *fasthttp.RequestHeader) (status int, msg string) {
	if h.IsConnect() {
		// A load balancer does not tunnel to other hosts: the target
		// would get "CONNECT /". First, so that any CONNECT gets its 501.
		return fasthttp.StatusNotImplemented, "cutover: CONNECT is not served here\n" // a method not served (RFC 9110 §15.6.2)
	}
	if !h.IsHTTP11() {
		// The parser reads any other HTTP/x.y as 1.0: a major version
		// other than 1 is refused, as nginx does (RFC 9110 §15.6.6).
		if p := h.Protocol(); len(p) == len("HTTP/1.0") && p[5] != '1' {
			return fasthttp.StatusHTTPVersionNotSupported, "cutover: HTTP/" + string(p[5:]) + " is not served here: speak HTTP/1.1\n"
		}
	}
	if len(h.Host()) == 0 && h.IsHTTP11() {
		return fasthttp.StatusBadRequest, "cutover: the request has no Host header\n"
	}
	raw := h.RawHeaders()
	if len(raw) > 0 && !bytes.HasSuffix(raw, crlf2) {
		// The head ended at an empty line after a bare LF, before a CRLF
		// CRLF that the loop (and a server before or after the proxy) may
		// take for its end: what follows would be a second request to
		// one and the body to another (RFC 9112 §2.2 lets a server refuse
		// a bare LF; nginx takes it).
		return fasthttp.StatusBadRequest, bareLFMessage
	}
	f := scanFields(raw)
	chunked := h.ContentLength() == -1
	if chunked && f.contentLength {
		return fasthttp.StatusBadRequest, "cutover: the request has both Content-Length and Transfer-Encoding\n"
	}
	if !chunked && f.transferEncoding {
		// "Transfer-Encoding: identity": the parser took the body as empty,
		// and what followed the head as the next request. A request whose
		// last transfer coding is not chunked has no length the proxy can
		// trust (RFC 9112 §6.3).
		return fasthttp.StatusBadRequest, "cutover: the request's Transfer-Encoding does not end in chunked\n"
	}
	if f.badName {
		// "X-Real IP: 1.2.3.4": the parser keeps such a line, and sent on
		// raw it got the target's own 400 (counted against the release),
		// or a reading of its own from a lenient one (RFC 9110 §5.1: a
		// field name is a token; RFC 9112 §5.1: no space before the colon).
		return fasthttp.StatusBadRequest, "cutover: the request has a header field name with a space or other separator in it, or before its colon\n"
	}
	if badEscape(h.RequestURI()) {
		// "/%0X": routed by one reading of it, refused by the target as
		// its own 400 (counted against the release); nginx answers 400.
		return fasthttp.StatusBadRequest, "cutover: the request target has a % not followed by two hex digits\n"
	}
	if bytes.IndexByte(h.RequestURI(), '#') >= 0 {
		// Not valid in a request target (RFC 9112 §3.2). The parser routes
		// by the path before it ("GET /public#/../internal" as /public),
		// while the target would read the line another way (a cleaning
		// server as /internal; "http://a.example#/admin" went on as
		// /admin).
		return fasthttp.StatusBadRequest, "cutover: the request target has a fragment (#), which a request does not carry\n"
	}
	return 0, ""
}

var crlf2 = []byte("\r\n\r\n")

var lf2, lfcrlf = []byte("\n\n"), []byte("\n\r\n")

// bareLFEnd reports whether b, the start of a request head with no CRLF
// CRLF in it, holds the end of a head written with bare LF line ends: an
// empty line after a bare LF, or a bare empty line. The server's parser (as
// the loop) takes a head's end at CRLF CRLF only, so such a head would wait
// for read_header_timeout and get 408; RFC 9112 §2.2 lets a server refuse a
// bare LF, and a head whose lines end one way for the proxy and another for
// a server before or after it is how requests are smuggled. The loops look
// at every head; a TLS connection (alpnConn) at its first.
func bareLFEnd(b []byte) bool {
	return bytes.Contains(b, lf2) || bytes.Contains(b, lfcrlf)
}

// errBareLFHead is what a TLS connection's read returns when the first
// request's head ends in bare LFs (alpnConn), for serverError's 400.
var errBareLFHead = errors.New("the request head ends in bare LF line ends")

// answerHeadEnd is the length of the answer head data starts with, through
// the empty line that ends it, or -1 if that has not come yet. Its lines
// may end in bare LFs: RFC 9112 §2.2 lets a recipient take a bare LF as a
// line's end, and nginx and Go's client do. fasthttp's parser waits for a
// CRLF CRLF that does not come, so such an answer waited for
// target_timeout, then 504 (TestBareLFAnswersArePassedOnWithCRLFs).
func answerHeadEnd(data []byte) int {
	end := bytes.Index(data, crlf2)
	head := data
	if end >= 0 {
		end += 4
		head = data[:end]
	}
	if i := bytes.Index(head, lf2); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
		head = data[:end]
	}
	if i := bytes.Index(head, lfcrlf); i >= 0 && (end < 0 || i+3 < end) {
		end = i + 3
	}
	return end
}

// crlfLines appends b to dst with each bare LF made a CRLF.
func crlfLines(dst, b []byte) []byte {
	for i, x := range b {
		if x == '\n' && (i == 0 || b[i-1] != '\r') {
			dst = append(dst, '\r')
		}
		dst = append(dst, x)
	}
	return dst
}

const bareLFMessage = "cutover: bad request: every line of a request head must end in CRLF\n"

// requestLineTooLong is the 414's text: a request line over
// max_header_bytes, on the loops and on the server path.
const requestLineTooLong = "cutover: the request target is too long\n"

// refused reports whether refuseFraming refuses h: the loop hands such a
// request to the server path, which answers it.
func refused(h *fasthttp.RequestHeader) bool {
	status, _ := refuseFraming(h)
	return status != 0
}

// badEscape reports a '%' in uri not followed by two hex digits (RFC 3986
// §2.1).
func badEscape(uri []byte) bool {
	for i := bytes.IndexByte(uri, '%'); i >= 0; {
		if i+2 >= len(uri) || !isHex(uri[i+1]) || !isHex(uri[i+2]) {
			return true
		}
		j := bytes.IndexByte(uri[i+3:], '%')
		if j < 0 {
			return false
		}
		i += 3 + j
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fieldScan is what refuseFraming looks for in a request's raw header
// lines, in one pass.
type fieldScan struct {
	badName          bool // a field name that is not a token (RFC 9110 §5.1)
	contentLength    bool
	transferEncoding bool
}

// scanFields scans raw header lines. Continuation lines (obs-fold) belong
// to the field before them.
func scanFields(raw []byte) (f fieldScan) {
	for line := range headerLines(raw) {
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, _, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(k) == 0 {
			f.badName = true
			continue
		}
		for _, c := range k {
			if !tchar[c] {
				f.badName = true
				break
			}
		}
		switch len(k) {
		case 14:
			f.contentLength = f.contentLength || equalFold(k, "content-length")
		case 17:
			f.transferEncoding = f.transferEncoding || equalFold(k, "transfer-encoding")
		}
	}
	return f
}

// tchar marks the bytes of a token (RFC 9110 §5.6.2).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// badBody answers a request whose body the client botched (or stalled
// in): 400, or 408 for a read that timed out.
func badBody(ctx *fasthttp.RequestCtx, cc *clientConns, err error, bp bodyPace) {
	if errors.Is(err, errBodyTooLarge) {
		tooLarge(ctx, cc, bp)
		return
	}
	status, msg := fasthttp.StatusBadRequest, "cutover: bad request body\n"
	if isTimeout(err) {
		status, msg = fasthttp.StatusRequestTimeout, "cutover: request body timed out\n"
	}
	cc.refuse(ctx, status, msg)
}

// tooLarge answers a request whose body is over max_body_bytes.
func tooLarge(ctx *fasthttp.RequestCtx, cc *clientConns, bp bodyPace) {
	cc.refuse(ctx, fasthttp.StatusRequestEntityTooLarge, "cutover: the request body is larger than this listener takes ("+strconv.FormatInt(bp.max, 10)+" bytes)\n")
}

// discardBody reads and drops what is left of a request body, for
// drainTime at most (as nginx's lingering close, bounded by time, not
// bytes: 24 MiB sent to a 64 KiB bound lost its 413 to a reset when 16 MiB
// were read): a connection closed with the client's bytes unread is reset,
// and the client may lose the answer that refuses it.
func discardBody(ctx *fasthttp.RequestCtx, r io.Reader, buf []byte) {
	ctx.SetReadDeadline(time.Now().Add(drainTime))
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
	}
}

// serverError answers the requests fasthttp refuses before the handler:
// malformed or oversized headers and bodies, timeouts. A connection that
// carried no request (a TLS handshake that failed, a client that said
// nothing before read_header_timeout: !asked) or whose client closed in
// the middle of a head is closed without an answer and counted as no
// refusal, as the loops do: there was no request to refuse, and nobody to
// read the answer.
func serverError(ctx *fasthttp.RequestCtx, cc *clientConns, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, errBareLFHead):
		cc.refuse(ctx, fasthttp.StatusBadRequest, bareLFMessage)
	case !asked(ctx.Conn()) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		ctx.Conn().Close() // the server's answer then goes nowhere
	case errors.As(err, &small) && lineTooLong(ctx.Conn()):
		cc.refuse(ctx, fasthttp.StatusRequestURITooLong, requestLineTooLong)
	case errors.As(err, &small):
		cc.refuse(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "cutover: request headers too large\n")
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, fasthttp.ErrTimeout):
		cc.refuse(ctx, fasthttp.StatusRequestTimeout, "cutover: request timed out\n")
	default:
		cc.refuse(ctx, fasthttp.StatusBadRequest, "cutover: bad request\n")
	}
}

// badGatewayMessage is the body of a 502: it names the target group (the
// environment's service), never a target's ID or address or the error,
// which go to the proxy's log.
func badGatewayMessage(group string) string {
	return "cutover: " + group + " failed to answer\n"
}

// gatewayTimeoutMessage is the body of a 504: the target group did not
// answer within the listener's target_timeout.
func gatewayTimeoutMessage(group string, wait time.Duration) string {
	return "cutover: " + group + " did not answer within " + wait.String() + "\n"
}

// tunnelled reports whether an Upgrade field asks for a protocol the proxy
// tunnels: any but h2c. An h2c tunnel would carry HTTP/2 requests for any
// path past the proxy's rules, forwarding headers and counters ("h2c
// smuggling"); such a request goes on as HTTP/1.1 without its Upgrade (and
// the HTTP2-Settings its Connection lists), as nginx sends it.
func tunnelled(upgrade []byte) bool {
	if len(bytes.TrimSpace(upgrade)) == 0 {
		return false
	}
	for _, t := range bytes.Split(upgrade, []byte(",")) {
		t, _, _ = bytes.Cut(bytes.TrimSpace(t), []byte("/"))
		if equalFold(t, "h2c") {
			return false
		}
	}
	return true
}

// forward sends the request of client to a.target (another target once if it cannot
// be reached) and sets the response. It returns true when the response
// body streams from the target after the handler returns; a.finish is then
// called when it ends.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, a *attempt, small []byte, body bodyPace, client netip.Addr, trusted bool) bool {
	head := headPool.Get().(*[]byte)
	defer headPool.Put(head)
	upgrade := ctx.Request.Header.ConnectionUpgrade() && tunnelled(ctx.Request.Header.Peek("Upgrade"))
	*head = appendRequestHead((*head)[:0], &ctx.Request.Header, ctx.LocalAddr(), ctx.IsTLS(), client, trusted, upgrade)
	if upgrade {
		if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
			// The tunnel path sends the head only: the body's length would
			// go on without the body, and the target wait for it.
			a.clients.refuse(ctx, fasthttp.StatusBadRequest, "cutover: an upgrade request with a body is refused\n")
			return false
		}
		return p.upgrade(ctx, a, *head)
	}
	var ex exchange
	for retried := false; ex.clientErr == nil; retried = true {
		// A GET sent again after a reused connection failed is not sent
		// again to another target too (sent twice at most).
		ex = p.upstream.roundTrip(ctx, a.target.addr, *head, small, body, a.targetWait, ex.resent)
		if !couldNotConnect(ex.err) || ex.clientErr != nil || retried {
			break
		}
		// Nothing was sent: safe to try another target, once, for any method.
		fw, t := a.route.reroute(a.fw, a.target, nil)
		if t == nil {
			break
		}
		a.target, a.fw = t, fw
	}
	switch {
	case ex.clientErr != nil:
		p.log.Debug("bad request body", "group", a.target.group.name, "remote", ctx.RemoteAddr().String(), "err", ex.clientErr)
		badBody(ctx, a.clients, ex.clientErr, body)
		return false
	case ex.clientGone:
		a.status = 499 // as nginx counts it; not the target's fault
		ctx.SetConnectionClose()
		return false
	case ex.err != nil && outOfResources(ex.err):
		p.unavailable(ctx, a, ex.err)
		return false
	case ex.err != nil:
		p.badGateway(ctx, a, ex.err)
		return false
	}
	a.status = ctx.Response.StatusCode()
	if streamBody(ctx, a, ex) {
		return true
	}
	if ctx.Request.Header.IsHead() && !ctx.Request.Header.IsHTTP11() && ctx.Response.Header.ContentLength() == -1 {
		// The head a GET would get says chunked: no transfer coding goes
		// to an HTTP/1.0 client (RFC 9112 §6.1), even with no body. No
		// length then, and the connection closes after it.
		ctx.Response.Header.SetContentLength(-2)
		ctx.Response.Header.Del(fasthttp.HeaderTransferEncoding)
	}
	// The request was read whole (it has no body, -2, or a small one, read
	// above) and the answer is in memory: it goes out with the read of the
	// next request.
	if cl := ctx.Request.Header.ContentLength(); cl == -2 || cl >= 0 && cl <= smallBody {
		deferAnswer(ctx.Conn())
	}
	return false
}

// streamBody hands a response body still to come from the target to the
// server, which ends a when it has written it. It reports whether it did.
func streamBody(ctx *fasthttp.RequestCtx, a *attempt, ex exchange) bool {
	if ex.body == nil {
		return false
	}
	ex.body.a = a
	// Whether the client holds the answer up is read off its socket's
	// writes from here on (not an earlier answer's).
	ex.body.sock = ctx.Conn()
	writeStalled(ex.body.sock)
	if ex.size < 0 && !ctx.Request.Header.IsHTTP11() {
		closeDelimited(ctx, a.hj, ex.body)
		return true
	}
	ex.body.client = ctx.Conn()
	ctx.Response.SetBodyStream(ex.body, ex.size)
	// The head goes at once, and with it out of the server's write buffer
	// the body is copied through the connection's ReadFrom, each read
	// written as it comes (rawConn, alpnConn, h2Stream). Otherwise a body
	// of known length waited in the buffer with its head until 16 KiB of
	// it came (TestFirstBytesOfAFixedLengthAnswerAreNotHeldBack).
	ctx.Response.ImmediateHeaderFlush = true
	return true
}

// closeDelimited sends an HTTP/1.0 client a body of unknown length the only
// way it can read one: without a length, ended by closing the connection
// (RFC 9112 §6.3; the server would send it chunked, which HTTP/1.0 does not
// know). The server hands the connection over for it, as for a tunnel.
func closeDelimited(ctx *fasthttp.RequestCtx, hj *hijacks, body *upBody) {
	ctx.Response.Header.SetContentLength(-2) // no length, Connection: close
	ctx.Response.Header.Del(fasthttp.HeaderTransferEncoding)
	head := append([]byte(nil), ctx.Response.Header.Header()...)
	hj.hijack(ctx, func() { body.Close() }, func(c net.Conn) {
		defer body.Close()
		// Each write has the idle timeout (upBody.Read extends it).
		body.client = c
		if body.a != nil && body.a.writeIdle > 0 {
			c.SetWriteDeadline(time.Now().Add(body.a.writeIdle))
		}
		if _, err := c.Write(head); err != nil {
			return
		}
		io.Copy(c, body)
	})
}

// badGateway answers 502 for a target that failed to answer, or 504 for
// one that did not answer within the listener's target_timeout, counted
// against its group; the error goes to the log only.
func (p *Proxy) badGateway(ctx *fasthttp.RequestCtx, a *attempt, err error) {
	status, msg := fasthttp.StatusBadGateway, badGatewayMessage(a.target.group.name)
	if errors.Is(err, errTargetTimedOut) {
		status, msg = fasthttp.StatusGatewayTimeout, gatewayTimeoutMessage(a.target.group.name, a.targetWait)
	}
	a.status = status
	p.log.Debug("forwarding failed", "group", a.target.group.name, "target", a.target.id, "addr", a.target.addr, "err", err)
	ctx.Response.Reset()
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(status)
	ctx.SetBodyString(msg)
}

// unavailable answers 503 when the proxy could not open a connection to
// the target for want of resources: the proxy's shortage, counted against
// no group (see outOfResources).
func (p *Proxy) unavailable(ctx *fasthttp.RequestCtx, a *attempt, err error) {
	a.status = 0
	warnOutOfResources(p.log, "forwarding a request", err)
	ctx.Response.Reset()
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Retry-After", "1")
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.SetBodyString(unavailableMessage)
}

func isTimeout(err error) bool {
	// Not net.Error: fasthttp's ErrTimeout (a head read that timed out
	// before its first byte) has Timeout only.
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendRequestHead appends the request line and headers sent to a target:
// the client's (whose IP is client, on local address local, over TLS or
// not), minus hop-by-hop fields, with the client's Host and framing the
// target can read. From a trusted proxy, X-Forwarded-For is appended to
// (like an ALB does) and X-Forwarded-Proto/-Host, X-Real-IP and Forwarded
// are kept; from any other client they are what the proxy sees, so a client
// cannot pass for another address.
func appendRequestHead(dst []byte, h *fasthttp.RequestHeader, local net.Addr, isTLS bool, client netip.Addr, trusted, upgrade bool) []byte {
	dst = append(dst, h.Method()...)
	dst = append(dst, ' ')
	// An absolute-form target ("GET http://a.example/x") goes on in
	// origin-form with its host as Host, the one it was routed by (the
	// server takes it over the Host field, RFC 9112 §3.2.2): the client's
	// Host field goes, or a target reading Host would see another host
	// than the rules did.
	abs := absoluteForm(h.RequestURI())
	dst = appendOriginForm(dst, h.RequestURI())
	dst = append(dst, " HTTP/1.1\r\n"...)
	if abs {
		dst = append(append(append(dst, "Host: "...), h.Host()...), '\r', '\n')
	} else if len(h.Host()) == 0 && local != nil {
		// An HTTP/1.0 client may leave Host out; HTTP/1.1 needs one.
		dst = append(append(append(dst, "Host: "...), local.String()...), '\r', '\n')
	}
	conn := h.Peek("Connection")
	var xff []byte
	seenProto, seenHost := false, false
	skip := true // a continuation line follows its field's fate
	// cookie is where the Cookie field being written starts in dst, or -1:
	// once it is whole (its continuation lines unfolded onto it), a field
	// with the session cookie is written again without it.
	cookie := -1
	for line := range headerLines(h.RawHeaders()) {
		if line[0] == ' ' || line[0] == '\t' {
			if !skip {
				dst = appendUnfolded(dst, line)
			}
			continue
		}
		dst, cookie = dropSessionCookie(dst, cookie), -1
		k, v, ok := splitField(line)
		if !ok {
			skip = true
			continue
		}
		skip = false
		switch {
		case abs && equalFold(k, "host"):
			skip = true
		case isHopByHop(k), listedIn(conn, k) && !equalFold(k, "host"):
			// Host was routed by and stays, whatever Connection lists.
			skip = true
		case equalFold(k, "cookie"):
			cookie = len(dst)
		case equalFoldName(k, "x-forwarded-for"):
			skip = true
			if trusted {
				if len(xff) > 0 {
					xff = append(xff, ", "...)
				}
				xff = append(xff, v...)
			}
		case equalFoldName(k, "x-forwarded-proto"):
			skip, seenProto = !trusted, trusted
		case equalFoldName(k, "x-forwarded-host"):
			skip, seenHost = !trusted, trusted
		case isForwardingField(k):
			skip = !trusted
		}
		if !skip {
			dst = append(append(dst, line...), '\r', '\n')
		}
	}
	dst = dropSessionCookie(dst, cookie)
	dst = append(dst, "X-Forwarded-For: "...)
	if len(xff) > 0 {
		dst = append(append(dst, xff...), ", "...)
	}
	dst = append(client.AppendTo(dst), '\r', '\n')
	if !seenProto {
		if isTLS {
			dst = append(dst, "X-Forwarded-Proto: https\r\n"...)
		} else {
			dst = append(dst, "X-Forwarded-Proto: http\r\n"...)
		}
	}
	if !seenHost && len(h.Host()) > 0 {
		dst = append(append(append(dst, "X-Forwarded-Host: "...), h.Host()...), '\r', '\n')
	}
	switch n := h.ContentLength(); {
	case n > 0:
		dst = strconv.AppendInt(append(dst, "Content-Length: "...), int64(n), 10)
		dst = append(dst, '\r', '\n')
	case n == -1:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if upgrade {
		dst = append(append(append(dst, "Connection: Upgrade\r\nUpgrade: "...), h.Peek("Upgrade")...), '\r', '\n')
	}
	return append(dst, '\r', '\n')
}

// SessionCookie is the dashboard's session cookie. A browser sends a
// host's cookies to every port of the host (RFC 6265 §8.5), so one logged
// in to the dashboard on 127.0.0.1:8790 sends it to an app on
// 127.0.0.1:8080 too; the proxy never passes it on to a target, so no app
// it serves can read the dashboard with it.
const SessionCookie = "cutover_session"

var sessionCookieName = []byte(SessionCookie)

// dropSessionCookie writes again the Cookie field that dst ends with from
// offset start (its line, continuation lines unfolded onto it) without the
// session cookie, when it has it; start -1: no Cookie field.
func dropSessionCookie(dst []byte, start int) []byte {
	if start < 0 || !bytes.Contains(dst[start:], sessionCookieName) {
		return dst
	}
	line := dst[start : len(dst)-2]
	var buf [512]byte
	// Not splitField's value: bytes.TrimSpace takes the U+00A0 or U+3000
	// that the last pair's value may end with. Copied: the field is written
	// over where it was.
	v := append(buf[:0], trimOWS(line[bytes.IndexByte(line, ':')+1:])...)
	return appendCookieWithout(dst[:start], v)
}

// appendCookieWithout appends a Cookie field with value v's pairs but
// those named SessionCookie, or nothing when none is left.
func appendCookieWithout(dst, v []byte) []byte {
	start := len(dst)
	dst = append(dst, "Cookie: "...)
	kept := 0
	for len(v) > 0 {
		pair := v
		if i := bytes.IndexByte(v, ';'); i >= 0 {
			pair, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		// Only SP and HTAB are spaces around a pair (RFC 6265 §5.4's OWS):
		// bytes.TrimSpace also took the U+00A0 or U+3000 an app's value
		// may end with.
		pair = trimOWS(pair)
		name := pair
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			name = trimOWS(pair[:i])
		}
		if len(pair) == 0 || bytes.Equal(name, sessionCookieName) {
			continue
		}
		if kept > 0 {
			dst = append(dst, "; "...)
		}
		dst = append(dst, pair...)
		kept++
	}
	if kept == 0 {
		return dst[:start]
	}
	return append(dst, '\r', '\n')
}

// setsSessionCookie reports whether a Set-Cookie field's value v sets the
// dashboard's session cookie: an app cannot log a browser out of the
// dashboard, or into another session, with a cookie of that name (cookies
// ignore ports, RFC 6265 §8.5). The answer goes on without the field.
func setsSessionCookie(v []byte) bool {
	name, _, ok := bytes.Cut(v, []byte{'='})
	return ok && bytes.Equal(trimOWS(name), sessionCookieName)
}

// trimOWS trims SP and HTAB from both ends of b.
func trimOWS(b []byte) []byte { return bytes.Trim(b, " \t") }

// framing is how the body of a target's answer ends, and so how it is
// relayed.
type framing uint8

const (
	frameNone    framing = iota // no body (HEAD, 1xx, 204, 304)
	frameFixed                  // Content-Length bytes
	frameChunked                // chunked: relayed as it is, followed by chunkScanner
	frameClose                  // until the target closes: chunked for the client
)

// chunked reports whether the client gets the body chunked.
func (f framing) chunked() bool { return f == frameChunked || f == frameClose }

// answerFraming is the framing of the answer whose head is rh, to a HEAD
// request or not, and its length when fixed.
func answerFraming(rh *fasthttp.ResponseHeader, isHead bool) (framing, int64) {
	sc := rh.StatusCode()
	cl := rh.ContentLength()
	switch {
	case isHead || sc < 200 || sc == fasthttp.StatusNoContent || sc == fasthttp.StatusNotModified:
		return frameNone, 0
	case cl >= 0:
		return frameFixed, int64(cl)
	case cl == -1:
		return frameChunked, 0
	}
	return frameClose, 0
}

// appendResponseHead appends the head of a target's answer as the client
// gets it: raw is the answer's head as the target sent it (parsed into rh),
// with its status line's version made HTTP/1.1, its fields in their order
// and spelling minus hop-by-hop ones and framing, then the framing the
// client reads (chunked: the body goes out chunked; else rh's
// Content-Length, if any) and Connection: close when closing.
func appendResponseHead(dst, raw []byte, rh *fasthttp.ResponseHeader, chunked, closing bool) []byte {
	first := raw
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		first, raw = raw[:i], raw[i+1:]
	}
	first = bytes.TrimSuffix(first, []byte{'\r'})
	// The status line: the code as parsed (and counted), with the target's
	// reason phrase when its line says that code, else the standard one.
	sc := rh.StatusCode()
	dst = strconv.AppendInt(append(dst, "HTTP/1.1 "...), int64(sc), 10)
	reason := []byte(fasthttp.StatusMessage(sc))
	if _, rest, ok := bytes.Cut(first, []byte{' '}); ok {
		code, phrase, _ := bytes.Cut(rest, []byte{' '})
		if n, err := strconv.Atoi(string(code)); err == nil && n == sc && len(code) == 3 {
			reason = phrase
		}
	}
	dst = append(append(append(dst, ' '), reason...), '\r', '\n')
	conn := rh.Peek("Connection")
	skip := true
	for line := range headerLines(raw) {
		if line[0] == ' ' || line[0] == '\t' {
			if !skip {
				dst = appendUnfolded(dst, line)
			}
			continue
		}
		k, v, ok := splitField(line)
		if n := len(k); ok && (k[n-1] == ' ' || k[n-1] == '\t') {
			// "Content-Length : 5": the parser framed the answer by the
			// name without the whitespace, so the proxy reads it so too and
			// passes it on without (RFC 9112 §5.1: a proxy MUST remove it);
			// raw, a lenient client downstream would frame it differently.
			k = bytes.TrimRight(k, " \t")
			if skip = len(k) == 0 || isHopByHop(k) || listedIn(conn, k); !skip {
				dst = append(append(append(append(dst, k...), ": "...), v...), '\r', '\n')
			}
			continue
		}
		skip = !ok || isHopByHop(k) || listedIn(conn, k) || equalFold(k, "set-cookie") && setsSessionCookie(v)
		if !skip {
			dst = append(append(dst, line...), '\r', '\n')
		}
	}
	switch cl := rh.ContentLength(); {
	case chunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case cl >= 0 && !(rh.StatusCode() < 200 || rh.StatusCode() == fasthttp.StatusNoContent):
		dst = strconv.AppendInt(append(dst, "Content-Length: "...), int64(cl), 10)
		dst = append(dst, '\r', '\n')
	}
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, '\r', '\n')
}

// appendEarlyHints appends the 103 Early Hints answer to pass on for the
// interim head rh: its Link fields only, as the server path sends it
// (fasthttp's EarlyHints), nothing if it has none. Passed on as the target
// sent it, a 103 carried the fields its Connection lists (internal ones,
// which no final answer lets through), a space before a colon and bare LF
// line ends, which clients read differently.
func appendEarlyHints(dst []byte, rh *fasthttp.ResponseHeader) []byte {
	start := len(dst)
	dst = append(dst, "HTTP/1.1 103 Early Hints\r\n"...)
	links := 0
	for _, v := range rh.PeekAll(fasthttp.HeaderLink) {
		if len(v) > 0 {
			dst = append(append(append(dst, "Link: "...), v...), '\r', '\n')
			links++
		}
	}
	if links == 0 {
		return dst[:start]
	}
	return append(dst, '\r', '\n')
}

// appendUnfolded appends the continuation line of a folded field (obs-fold)
// to the field's line dst ends with, joined by a space, as RFC 9112 §5.2
// asks of a proxy: a target that does not unfold would read the line as a
// field of its own (" X-Forwarded-For: ...").
func appendUnfolded(dst, line []byte) []byte {
	dst = append(dst[:len(dst)-2], ' ')
	return append(append(dst, bytes.TrimLeft(line, " \t")...), '\r', '\n')
}

// equalFoldName is equalFold for the names of the forwarding and hop-by-hop
// fields, with '_' and '.' as '-': servers that map fields to CGI variables
// (HTTP_X_FORWARDED_FOR) read X_Forwarded_For as X-Forwarded-For (lighttpd
// maps any other byte to '_' too).
func equalFoldName(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' || c == '.' {
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isForwardingField reports the other fields that carry what a proxy in
// front saw of the client or the request: any X-Forwarded-* (Port, Prefix,
// Ssl, Scheme, Server: frameworks build redirects and decide https by
// them), X-Forwarded and Forwarded-For, and the client-address fields of
// CDNs, load balancers and the libraries that read them (Rails'
// remote_ip and django-ipware read Client-IP; PHP's usual snippet reads
// it first). Only a trusted proxy's are kept. "_" and "." read as "-", as
// CGI-style servers read them. A list of names cannot be complete: an app
// that takes the client's address from a field should take it from
// X-Forwarded-For, which the proxy sets.
func isForwardingField(k []byte) bool {
	switch k[0] | 0x20 { // each name starts with one of these: most fields go at once
	case 'x', 'f', 'c', 't':
	default:
		return false
	}
	const xf = "x-forwarded-"
	if len(k) >= len(xf) && equalFoldName(k[:len(xf)], xf) {
		return true
	}
	for _, name := range clientAddressFields {
		if equalFoldName(k, name) {
			return true
		}
	}
	return false
}

var clientAddressFields = []string{"forwarded", "x-real-ip", "x-forwarded", "forwarded-for", "client-ip", "x-client-ip", "true-client-ip",
	"x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip", "x-original-forwarded-for", "x-originating-ip",
	"x-proxyuser-ip", "x-remote-ip", "x-remote-addr"}

// absoluteForm reports whether a request target is absolute-form
// ("http://host/path"), not origin-form ("/path") or asterisk-form ("*").
func absoluteForm(uri []byte) bool {
	return len(uri) > 0 && uri[0] != '/' && uri[0] != '*'
}

// appendOriginForm appends the request target as a target gets it:
// origin-form (RFC 9112 §3.2.1: path and query, the host being in Host),
// "http://host/a?b" as "/a?b".
func appendOriginForm(dst, uri []byte) []byte {
	if !absoluteForm(uri) {
		return append(dst, uri...)
	}
	if i := bytes.Index(uri, []byte("://")); i >= 0 {
		uri = uri[i+3:]
	}
	i := bytes.IndexAny(uri, "/?")
	if i < 0 {
		return append(dst, '/')
	}
	if uri[i] == '?' {
		dst = append(dst, '/')
	}
	return append(dst, uri[i:]...)
}

// headerLines yields the lines of a raw header block, without line ends,
// up to the empty line.
func headerLines(raw []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(raw) > 0 {
			i := bytes.IndexByte(raw, '\n')
			var line []byte
			if i < 0 {
				line, raw = raw, nil
			} else {
				line, raw = raw[:i], raw[i+1:]
			}
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) == 0 || !yield(line) {
				return
			}
		}
	}
}

// splitField splits "Name: value" (already validated by the server's
// parser) into its name and trimmed value.
func splitField(line []byte) (k, v []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	return line[:i], bytes.TrimSpace(line[i+1:]), true
}

// equalFold compares an ASCII field name with a lower-case one.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isHopByHop reports the fields that concern one connection only (RFC 9110
// §7.6.1), and those the proxy writes itself: framing and Expect (the proxy
// already answered 100 Continue). "_" reads as "-": a "Content_Length" or
// "Transfer_Encoding" sent on beside the proxy's own framing is framing to
// a server that reads names so (CGI-style ones do), as nginx and gunicorn
// drop such fields by default.
func isHopByHop(k []byte) bool {
	switch len(k) {
	case 2:
		return equalFold(k, "te")
	case 6:
		return equalFold(k, "expect")
	case 7:
		return equalFold(k, "upgrade") || equalFold(k, "trailer")
	case 10:
		return equalFold(k, "connection") || equalFoldName(k, "keep-alive")
	case 14:
		return equalFoldName(k, "content-length")
	case 16:
		return equalFoldName(k, "proxy-connection")
	case 17:
		return equalFoldName(k, "transfer-encoding")
	case 18:
		return equalFoldName(k, "proxy-authenticate")
	case 19:
		return equalFoldName(k, "proxy-authorization")
	}
	return false
}

// listedIn reports whether field k is named in a Connection header's value.
func listedIn(conn, k []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		if i := bytes.IndexByte(conn, ','); i >= 0 {
			tok, conn = conn[:i], conn[i+1:]
		} else {
			tok, conn = conn, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(tok), k) {
			return true
		}
	}
	return false
}

// remoteAddr is the client's IP, for trusts.
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
