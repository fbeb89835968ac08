package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamPool holds keep-alive connections to targets and forwards one
// request at a time on them, on the handler's goroutine: write the head
// (and a small body), read the answer's head, then stream its body to the
// client. Only a request body too big to have arrived with the head gets a
// goroutine of its own, so a target may answer before reading all of it.
type upstreamPool struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int // per target address
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*upConn // by address; most recently used last
	closed bool
	stop   chan struct{}
}

// upConn is one keep-alive connection to a target and its buffers.
type upConn struct {
	addr   string // as dialled: the pool's key
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// idleFor is how long it had been idle when taken from the pool.
	idleFor time.Duration
	// spoiled: a deadline in the past was set to abort a read or write.
	spoiled atomic.Bool
	// tr is what br reads from: the socket, with target_timeout before
	// each read of an answer's body.
	tr timedReader
}

// newUpConn wraps a connection to a target.
func newUpConn(addr string, c net.Conn) *upConn {
	uc := &upConn{addr: addr, c: c, bw: bufio.NewWriterSize(c, 4<<10)}
	uc.tr.c = c
	uc.br = bufio.NewReaderSize(&uc.tr, upReadBuffer)
	return uc
}

// timedReader reads a target's socket; with wait set, each read first
// gives the target wait to send (nginx's proxy_read_timeout: between two
// reads, not for the whole body), so a read the chunk decoder or Peek
// makes after a pause of the client's starts its own clock.
type timedReader struct {
	c    net.Conn
	wait time.Duration
}

func (r *timedReader) Read(p []byte) (int, error) {
	if r.wait > 0 {
		r.c.SetReadDeadline(time.Now().Add(r.wait))
	}
	return r.c.Read(p)
}

const (
	// smallBody is the largest request body sent from memory: the server
	// reads up to 8 KiB of a body with its head.
	smallBody = 8 << 10
	// smallAnswer is the largest response body read whole before it is
	// written to the client (like nginx's proxy buffers); larger ones stream.
	smallAnswer = 16 << 10
	// upReadBuffer bounds a target's response head.
	upReadBuffer = 32 << 10
	// deferAfterIdle: a connection idle for longer does not defer the
	// request's write (deferWrites). The one thing a target sends unasked
	// is the end of an idle connection, whose readiness the deferred write
	// would clear; the target's reset of the write then wakes the read.
	// Targets close idle connections after seconds, so this keeps even
	// that reliance to a rare race.
	deferAfterIdle = time.Second
	// watchEvery is how often a request waiting for its target checks that
	// its client is still there.
	watchEvery = 200 * time.Millisecond
)

func newUpstreamPool(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int, idleTimeout time.Duration) *upstreamPool {
	p := &upstreamPool{dial: dial, maxIdle: maxIdle, idleTimeout: idleTimeout,
		idle: map[string][]*upConn{}, stop: make(chan struct{})}
	go p.janitor()
	return p
}

// exchange is the outcome of one round trip.
type exchange struct {
	body       *upBody // the response body still to stream, or nil
	size       int     // its length, -1 if unknown
	err        error   // the target failed (or could not be reached: *dialError)
	clientErr  error   // reading the request body from the client failed
	clientGone bool    // the client hung up while the target worked
	resent     bool    // sent again after a reused connection failed
}

// roundTrip sends the request of ctx, with head as its line and headers, to
// addr and sets ctx.Response's head (and small body) from the answer.
// small is the request body when it came whole with the head (smallBody).
// targetWait bounds the wait for the answer's head once the request has
// been sent whole (errTargetTimedOut). resent: it was sent again already
// (to another target), and is not again.
func (p *upstreamPool) roundTrip(ctx *fasthttp.RequestCtx, addr string, head, small []byte, body bodyPace, targetWait time.Duration, resent bool) (ex exchange) {
	req := &ctx.Request
	cl := req.Header.ContentLength()
	streamBody := cl > smallBody || cl == -1
	// Only a request without a body whose method is safe to repeat is sent
	// again when a reused connection fails before any answer (the target
	// closed it between get's check and the write).
	replay := cl <= 0 && cl != -1 && isIdempotent(req.Header.Method())
	for ; ; resent = true {
		// Sent again once at most, on a new connection: a request that
		// makes its target close without an answer must not go to it once
		// per idle connection.
		ex.resent = resent
		uc, reused, err := p.get(addr, resent)
		if err != nil {
			ex.err = err
			return ex
		}
		if !streamBody && (!reused || uc.idleFor < deferAfterIdle) {
			// The request goes out with the first read of its answer, which
			// then waits without a read that would find nothing.
			deferWrites(uc.c)
		}
		// The target has target_timeout to take the request (a head over
		// the buffer is written now; a pooled connection may carry an
		// earlier request's deadline).
		uc.c.SetWriteDeadline(time.Now().Add(targetWait))
		if _, err = uc.bw.Write(head); err == nil {
			_, err = uc.bw.Write(small)
		}
		var copier *bodyCopier
		switch {
		case err != nil:
			// A head over the buffer the target did not take: the body's
			// copy would find the writer failed, and the answer's read be
			// left without a deadline (the copy sets it once the body is
			// sent), for good.
		case streamBody:
			// No deadline left from an earlier request on this connection
			// while the body goes: the copy sets the wait once it is sent.
			uc.c.SetReadDeadline(time.Time{})
			copier = startBodyCopier(ctx, uc, int64(cl), body, targetWait)
		default:
			// The request goes out by the read of its answer (or now).
			uc.c.SetReadDeadline(time.Now().Add(targetWait))
			err = uc.bw.Flush()
		}
		if err != nil {
			uc.c.Close()
			if reused && replay && !resent && !isTimeout(err) {
				continue
			}
			ex.err = notTaken(err)
			return ex
		}
		var watch *clientWatch
		if _, h2 := ctx.Conn().(*h2Stream); copier == nil || h2 {
			// An HTTP/2 stream's end is not read off a socket: it is
			// watched while its body is sent too.
			watch = startClientWatch(ctx, uc)
		}
		// An interim answer restarts the wait for the final head; not
		// while a body is still being sent (the copy sets the wait once it
		// is sent).
		err = readResponseHead(ctx, uc.br, func() {
			if copier == nil || copier.finished() {
				uc.c.SetReadDeadline(time.Now().Add(targetWait))
			}
		})
		if watch != nil {
			ex.clientGone = watch.end()
		}
		early := false
		if copier != nil {
			if err == nil && !copier.ended() {
				// The target answered before taking the whole body: stop
				// sending it, read (and drop) the rest of the client's upload
				// within bounds so that it reads this answer rather than a
				// reset connection; the connection ends with this request.
				copier.drain()
				early = true
			}
			if cerr := copier.wait(); cerr != nil {
				ex.clientErr = cerr
				uc.c.Close()
				return ex
			}
		}
		if err != nil {
			uc.c.Close()
			if ex.clientGone {
				return ex
			}
			// A reused connection the target closed while idle fails before
			// any byte of an answer (the request may have been sent by that
			// read: deferWrites): send the request again on another.
			if reused && replay && !resent && (err == io.EOF || isWriteError(err)) {
				continue
			}
			ex.err = err
			return ex
		}
		if ex.clientGone {
			// The head came, but the watch saw the client go first and
			// spoiled the connection: the client's leaving, not a 502.
			uc.c.Close()
			return ex
		}
		reuse := copier == nil || copier.complete
		uc.tr.wait = targetWait // the head is in: each read of the body has the wait
		ex = p.responseBody(ctx, uc, reuse)
		if early {
			// After the target's own close and keep-alive were dropped.
			ctx.SetConnectionClose()
		}
		return ex
	}
}

// errTargetTimedOut: the target did not answer (or go on with its answer)
// within the listener's target_timeout.
var errTargetTimedOut = errors.New("the target did not answer within the target timeout")

// notTaken is err, a failed write of a request to a target, as the
// target's timeout when the write's deadline (target_timeout) passed: the
// target took none of the rest for that long, a 504 as the loop answers
// it (takingSlowly).
func notTaken(err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: it took none of the request for that long", errTargetTimedOut)
	}
	return err
}

var http11 = []byte("HTTP/1.1")

// readResponseHead reads a response head into ctx.Response, relaying 103
// Early Hints to the client and skipping other interim (1xx) answers but 101,
// calling spoke (if not nil) after each. A read deadline that passed is
// errTargetTimedOut.
func readResponseHead(ctx *fasthttp.RequestCtx, br *bufio.Reader, spoke func()) error {
	rh := &ctx.Response.Header
	for n := 0; ; n++ {
		head := peekAnswerHead(br)
		if err := noStatus(head); err != nil {
			return err
		}
		var err error
		if len(head) > 0 && !bytes.HasSuffix(head, crlf2) {
			// Its lines end in bare LFs: parsed, and passed on, with CRLFs
			// (through a reader it fits: fasthttp's parser needs the head
			// whole in its buffer).
			norm := crlfLines(nil, head)
			err = rh.Read(bufio.NewReaderSize(bytes.NewReader(norm), len(norm)+16))
			br.Discard(len(head))
		} else {
			err = rh.Read(br)
		}
		if err != nil {
			if isTimeout(err) {
				return errTargetTimedOut
			}
			return err
		}
		sc := rh.StatusCode()
		if sc >= 200 || sc == fasthttp.StatusSwitchingProtocols {
			// The answer goes on in the proxy's own version (RFC 9110
			// §6.2), as the loop writes it: a target's "HTTP/1.0"
			// status line over the proxy's chunks would have the client
			// read them as the body, to a close that never comes.
			rh.SetProtocol(http11)
			return nil
		}
		if n >= 5 {
			// A sixth interim answer is not passed on as the final one.
			return errors.New("the target sent too many interim answers")
		}
		if sc == fasthttp.StatusEarlyHints {
			ctx.EarlyHints()
		}
		if spoke != nil {
			spoke()
		}
	}
}

// peekAnswerHead waits until br holds a whole answer head (answerHeadEnd)
// and returns it, unread; nil if br fills, or its reader fails, first (the
// parser then says why).
func peekAnswerHead(br *bufio.Reader) []byte {
	for {
		b, _ := br.Peek(br.Buffered())
		if end := answerHeadEnd(b); end > 0 {
			return b[:end]
		}
		if len(b) >= br.Size() {
			return nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil
		}
	}
}

// Answers with no status: a status code under 100 (RFC 9110 §15: 100-599;
// a recipient treats others as 5xx), which fasthttp reads as 200 ("000")
// or as an interim answer ("099"); or an empty line where the status line
// goes, which fasthttp skips on one path and the loop did not. The proxy
// answers 502, counted against the target's group, on both paths.
var (
	errStatusBelow100 = errors.New("the target's status code is under 100")
	errNoStatusLine   = errors.New("the target's answer starts with an empty line")
)

// noStatus says why the answer head starts with no status (see
// errStatusBelow100), or nil.
func noStatus(head []byte) error {
	if len(head) > 0 && (head[0] == '\r' || head[0] == '\n') {
		return errNoStatusLine
	}
	sp := bytes.IndexByte(head, ' ')
	if sp < 0 {
		return nil
	}
	// The parser skips any spaces before the code (a helper's review).
	d := bytes.TrimLeft(head[sp:], " ")
	if len(d) >= 3 && d[0] == '0' && '0' <= d[1] && d[1] <= '9' && '0' <= d[2] && d[2] <= '9' {
		return errStatusBelow100
	}
	return nil
}

// responseBody prepares the body of the answer whose head is in
// ctx.Response: none, read whole if small, else streamed from uc.
func (p *upstreamPool) responseBody(ctx *fasthttp.RequestCtx, uc *upConn, reuse bool) (ex exchange) {
	rh := &ctx.Response.Header
	reuse = reuse && !rh.ConnectionClose()
	// The connection to the target is not the client's: its close and
	// keep-alive settings stay here.
	rh.ResetConnectionClose()
	dropHopByHop(rh)
	sc := rh.StatusCode()
	if sc == fasthttp.StatusSwitchingProtocols {
		// Not asked for (the upgrade path takes a 101 itself): the
		// connection now speaks something else, and goes.
		uc.c.Close()
		ex.err = errors.New("the target switched protocols unasked")
		return ex
	}
	cl := rh.ContentLength()
	if ctx.IsHead() || sc < 200 || sc == fasthttp.StatusNoContent || sc == fasthttp.StatusNotModified {
		p.release(uc, reuse)
		return ex
	}
	switch {
	case cl >= 0 && cl <= smallAnswer:
		b, err := uc.br.Peek(cl)
		if err != nil {
			uc.c.Close()
			ex.err = err
			if isTimeout(err) {
				ex.err = errTargetTimedOut
			}
			return ex
		}
		ctx.Response.SetBody(b)
		uc.br.Discard(cl)
		p.release(uc, reuse)
		return ex
	case cl >= 0:
		ex.body = &upBody{p: p, uc: uc, r: io.LimitReader(uc.br, int64(cl)), reuse: reuse, fixed: true}
		ex.size = cl
	case cl == -1:
		ex.body = &upBody{p: p, uc: uc, r: httputil.NewChunkedReader(uc.br), reuse: reuse, chunked: true}
		ex.size = -1
	default: // until the target closes the connection
		ex.body = &upBody{p: p, uc: uc, r: uc.br}
		ex.size = -1
	}
	return ex
}

// dropHopByHop removes from an answer's head the fields that concern the
// target's connection only (RFC 9110 §7.6.1: Keep-Alive, Upgrade, TE,
// Trailer... and the fields its Connection lists), as the loop's
// appendResponseHead leaves them out. The framing fields stay, even when
// Connection lists them, for the server to rewrite: deleting Content-Length
// makes the parsed length 0, and the body left unread on a pooled
// connection would be the next client's answer.
func dropHopByHop(rh *fasthttp.ResponseHeader) {
	conn := append([]byte(nil), rh.Peek("Connection")...)
	var drop [][]byte
	for k := range rh.All() {
		if equalFold(k, "content-length") || equalFold(k, "transfer-encoding") {
			continue
		}
		if listedIn(conn, k) || isHopByHop(k) {
			drop = append(drop, append([]byte(nil), k...))
		}
	}
	for _, k := range drop {
		rh.DelBytes(k)
	}
	rh.DelCookie(SessionCookie) // as appendResponseHead drops it (setsSessionCookie)
}

// readSmallBody returns a request body of up to smallBody bytes, read
// now (each read at the body's pace) so it can be sent again
// to another target.
func readSmallBody(ctx *fasthttp.RequestCtx, buf []byte, pace bodyPace) ([]byte, error) {
	cl := ctx.Request.Header.ContentLength()
	if cl <= 0 || cl > smallBody {
		return nil, nil
	}
	r := ctx.RequestBodyStream()
	if r == nil { // the server read it whole
		return ctx.Request.Body(), nil
	}
	b := buf[:cl]
	for n := 0; n < cl; {
		ctx.SetReadDeadline(pace.deadline(ctx.Time(), int64(n)))
		m, err := r.Read(b[n:])
		if n += m; n < cl && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return b[:n], err
		}
	}
	return b, nil
}

var smallPool = sync.Pool{New: func() any { b := make([]byte, smallBody); return &b }}

func isIdempotent(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions:
		return true
	}
	return false
}

// get returns an idle connection to addr, or dials one (always with
// fresh). An idle connection is first checked: one the target closed, or
// wrote to after its answer, is closed instead. Bytes a target sends unasked
// would otherwise be read as the answer to the next request on it, another
// client's (a whole second answer would be served to them).
func (p *upstreamPool) get(addr string, fresh bool) (*upConn, bool, error) {
	p.mu.Lock()
	for list := p.idle[addr]; !fresh && len(list) > 0; list = p.idle[addr] {
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[addr] = list[:len(list)-1]
		if uc.idleFor = time.Since(uc.idleAt); uc.idleFor < p.idleTimeout {
			p.mu.Unlock()
			if !stillOpen(uc.c) {
				uc.c.Close()
				p.mu.Lock()
				continue
			}
			return uc, true, nil
		}
		uc.c.Close()
	}
	p.mu.Unlock()
	// Not the request's context: a context made from a fasthttp.RequestCtx
	// keeps a goroutine that reads it when the server stops, after the
	// server has reused it for another request. The dial has its own
	// timeout, as an upgrade's.
	c, err := p.dial(context.Background(), "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return newUpConn(addr, c), false, nil
}

// stillOpen reports whether an idle connection has not been closed (or
// written to) by its peer, without blocking.
func stillOpen(c net.Conn) bool {
	eof, data := peek(c)
	return !eof && !data
}

// peek looks at c without blocking or consuming: eof when the peer closed it
// (or it failed), data when bytes wait to be read.
func peek(c net.Conn) (eof, data bool) {
	// A client's connection may be the TLS connection over the socket or
	// one the loop handed off with its first bytes read.
	c = underTLS(c)
	if s, ok := c.(*h2Stream); ok {
		return s.gone(), false
	}
	if pc, ok := c.(*prefixConn); ok {
		if len(pc.pre) > 0 {
			return false, true
		}
		c = pc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true, false
	}
	rc.Control(func(fd uintptr) { eof, data = peekFD(fd) })
	return eof, data
}

// release returns uc to the pool if it may carry another request, or closes it.
func (p *upstreamPool) release(uc *upConn, reuse bool) {
	// A connection whose deadline was spoiled (its client hung up) is not
	// reused either.
	if !reuse || uc.br.Buffered() > 0 || uc.spoiled.Load() {
		uc.c.Close()
		return
	}
	uc.tr.wait = 0
	uc.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle[uc.addr]) >= p.maxIdle {
		p.mu.Unlock()
		uc.c.Close()
		return
	}
	p.idle[uc.addr] = append(p.idle[uc.addr], uc)
	p.mu.Unlock()
}

// janitor closes connections idle for longer than idleTimeout, so targets
// that went away do not keep sockets open here.
func (p *upstreamPool) janitor() {
	tick := time.NewTicker(p.idleTimeout / 3)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		for addr, list := range p.idle {
			keep := list[:0]
			for _, uc := range list {
				if time.Since(uc.idleAt) < p.idleTimeout {
					keep = append(keep, uc)
				} else {
					uc.c.Close()
				}
			}
			clear(list[len(keep):])
			if len(keep) == 0 {
				delete(p.idle, addr)
			} else {
				p.idle[addr] = keep
			}
		}
		p.mu.Unlock()
	}
}

// close closes every idle connection and stops pooling; connections in use
// are closed when their response ends.
func (p *upstreamPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	for _, list := range p.idle {
		for _, uc := range list {
			uc.c.Close()
		}
	}
	clear(p.idle)
}

// upBody streams a response body from its target to the client. Read to its
// end, it gives the connection back; closed before that (the client went
// away), it closes the connection rather than read what nobody wants. Its
// end ends the request's attempt.
type upBody struct {
	p       *upstreamPool
	uc      *upConn
	r       io.Reader
	a       *attempt
	client  net.Conn // the server writes what Read returns to it
	sock    net.Conn // the client's connection as the server has it (writeStalled)
	reuse   bool
	fixed   bool // r is the Content-Length's worth
	chunked bool // r decodes chunks: the trailer follows its end
	done    bool
	// held: a write of what Read gave waited heldFor or longer on the
	// client's full socket (the client did not take the answer as it
	// came, so the target waited on the proxy). Off Linux, where that is
	// not seen, a write that took heldFor (read: when the last Read
	// returned).
	read time.Time
	held bool
}

// heldFor is how long a write of an answer's part to the client may wait
// before the client counts as holding the answer up (a moment's
// backpressure does not: a target's own send timeout is seconds); where a
// full socket is not seen (writeStalled), how long the write took.
const heldFor = 100 * time.Millisecond

func (b *upBody) Read(buf []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if stalled, known := writeStalled(b.sock); known {
		b.held = b.held || stalled
	} else if !b.read.IsZero() && time.Since(b.read) > heldFor {
		b.held = true
	}
	n, err := b.r.Read(buf)
	b.read = time.Now()
	if n > 0 && b.client != nil && b.a != nil && b.a.writeIdle > 0 {
		// What is read now is written next: the client has the idle
		// time to take it (the server set it for the head).
		b.client.SetWriteDeadline(b.read.Add(b.a.writeIdle))
	}
	if err == io.EOF {
		ok := true
		if b.chunked {
			ok = skipTrailer(b.uc.br) == nil
		}
		if b.fixed && n == 0 && b.r.(*io.LimitedReader).N > 0 {
			ok, err = false, io.ErrUnexpectedEOF
			b.brokenOff(err)
		}
		b.end(b.reuse && ok)
		return n, err
	}
	if err != nil {
		b.brokenOff(err)
		b.end(false)
	}
	return n, err
}

// brokenOff records that the target broke off its answer (short of its
// length, a malformed chunk, a reset): the client got a cut answer, which
// is the target's 502, as on the loop; unless the client held the answer
// up (a target's own send timeout then cuts it: not its failure).
func (b *upBody) brokenOff(err error) {
	// A timeout is the target's silence while the proxy was reading (each
	// read has its own clock): its failure even if the client paused before.
	if b.a == nil || b.a.status >= 500 || b.held && !isTimeout(err) {
		return
	}
	b.a.status = fasthttp.StatusBadGateway
	if isTimeout(err) {
		// The target stopped sending for target_timeout.
		b.a.status = fasthttp.StatusGatewayTimeout
	}
}

// Close is called by the server once the body is written, or given up.
func (b *upBody) Close() error {
	b.end(false)
	return nil
}

func (b *upBody) end(reuse bool) {
	if b.done {
		return
	}
	b.done = true
	b.p.release(b.uc, reuse)
	if b.a != nil {
		b.a.finish()
		b.a = nil
	}
}

// skipTrailer reads the trailer section after a chunked body's last chunk.
func skipTrailer(br *bufio.Reader) error {
	for range 64 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
	return errors.New("too many trailer fields")
}

// bodyCopier sends a request body that did not come whole with the head to
// the target while the handler waits for the answer.
type bodyCopier struct {
	ctx       *fasthttp.RequestCtx
	uc        *upConn
	done      chan struct{}
	clientErr error        // reading from the client failed
	complete  bool         // the whole body was sent
	last      atomic.Bool  // the body's end was read: its last part is being sent
	draining  atomic.Bool  // the target answered early: the rest is read and dropped
	drainEnd  atomic.Int64 // unix nanoseconds after which draining stops
	drained   int64
}

// After an early answer, at most this much of the rest of an upload is read
// and dropped, for at most this long, before the connection is closed.
const (
	drainLimit = 16 << 20
	drainTime  = 3 * time.Second
)

// startBodyCopier sends the request's body of size bytes (-1: chunked) to
// the target in the background.
func startBodyCopier(ctx *fasthttp.RequestCtx, uc *upConn, size int64, pace bodyPace, targetWait time.Duration) *bodyCopier {
	bc := &bodyCopier{ctx: ctx, uc: uc, done: make(chan struct{})}
	go bc.run(size, pace, targetWait)
	return bc
}

// run copies the body; once it is sent whole, the wait for the answer's
// head (read meanwhile by the handler) has targetWait.
func (bc *bodyCopier) run(size int64, pace bodyPace, targetWait time.Duration) {
	chunked := size < 0
	defer close(bc.done)
	buf := smallPool.Get().(*[]byte)
	defer smallPool.Put(buf)
	r := bc.ctx.RequestBodyStream()
	if r == nil { // the server read it whole (Body would drain a stream)
		r = bytes.NewReader(bc.ctx.Request.Body())
	}
	w := bc.uc.bw
	var got int64
	// The body's pace counts the client's time only: it starts here, as
	// the client is read (not while the target was picked and connected
	// to), and stops while the target takes a part (its socket full).
	start := time.Now()
	for {
		deadline := pace.deadline(start, got)
		bc.ctx.SetReadDeadline(deadline)
		if end := time.Unix(0, bc.drainEnd.Load()); bc.draining.Load() && end.Before(deadline) {
			// Draining (drain sets its flag, then its deadline, so this
			// is checked after setting ours): its end, not the idle time,
			// bounds this read.
			bc.ctx.SetReadDeadline(end)
		}
		n, err := r.Read(*buf)
		got += int64(n)
		if pace.over(got) && !bc.draining.Load() {
			// Past max_body_bytes (a chunked body: one with a length over
			// it was refused before): the target's request is cut, and the
			// rest read and dropped so that the client reads its 413.
			bc.clientErr = errBodyTooLarge
			bc.uc.c.Close()
			discardBody(bc.ctx, r, *buf)
			return
		}
		if err == io.EOF && !chunked && got < size {
			// The server's stream ends at the connection's end as at the
			// body's: a client that hung up (or reset its HTTP/2 stream)
			// mid-body sent a short one, not a whole one.
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			// Its last bytes may come with the end: from here the target
			// may have the whole body before the copy is done (ended).
			bc.last.Store(true)
		}
		if n > 0 && bc.draining.Load() {
			if bc.drained += int64(n); bc.drained > drainLimit {
				return
			}
			n = 0 // dropped
		}
		if n > 0 {
			sending := time.Now()
			bc.sendWait(targetWait) // before the writes: a full buffer flushes itself
			if chunked {
				w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write((*buf)[:n])
			if chunked {
				w.WriteString("\r\n")
			}
			if werr := w.Flush(); werr != nil && !bc.draining.Load() {
				if isTimeout(werr) {
					// The target took nothing for target_timeout: end the
					// wait for its answer (nginx's proxy_send_timeout).
					bc.uc.spoiled.Store(true)
					bc.uc.c.SetReadDeadline(time.Unix(1, 0))
				}
				return // the target's failure shows when its answer is read
			}
			start = start.Add(time.Since(sending))
		}
		if err == io.EOF {
			bc.sendWait(targetWait)
			if chunked {
				w.WriteString("0\r\n\r\n")
			}
			bc.complete = w.Flush() == nil
			if bc.complete && !bc.draining.Load() {
				bc.uc.c.SetReadDeadline(time.Now().Add(targetWait))
			}
			return
		}
		if err != nil {
			if !bc.draining.Load() {
				bc.clientErr = err
				// The target waits for the rest of the body: end its wait.
				bc.uc.c.Close()
			}
			return
		}
	}
}

// sendWait gives the target wait to take the next part of the body; not
// once drain has set a deadline in the past to stop the copy (checked
// after setting, since drain sets its flag before its deadline).
func (bc *bodyCopier) sendWait(wait time.Duration) {
	bc.uc.c.SetWriteDeadline(time.Now().Add(wait))
	if bc.draining.Load() {
		bc.uc.c.SetWriteDeadline(time.Unix(1, 0))
	}
}

func (bc *bodyCopier) finished() bool {
	select {
	case <-bc.done:
		return true
	default:
		return false
	}
}

// lastPartWait bounds how long an answer that came while the body's last
// part was being sent waits for that send to end before it counts as
// early: a target answers as soon as it has the body, which may be before
// the copy has seen its write return.
const lastPartWait = 200 * time.Millisecond

// ended reports whether the copy is over: done, or done within
// lastPartWait once the body's last part was being sent.
func (bc *bodyCopier) ended() bool {
	if bc.finished() {
		return true
	}
	if !bc.last.Load() {
		return false
	}
	t := time.NewTimer(lastPartWait)
	defer t.Stop()
	select {
	case <-bc.done:
		return true
	case <-t.C:
		return false
	}
}

// drain stops sending the body to the target and lets the copy read and
// drop the rest of it, within drainLimit and drainTime.
func (bc *bodyCopier) drain() {
	end := time.Now().Add(drainTime)
	bc.drainEnd.Store(end.UnixNano())
	bc.draining.Store(true)
	bc.uc.spoiled.Store(true)
	bc.uc.c.SetWriteDeadline(time.Unix(1, 0))
	// A read of the client already waiting (a stalled upload) would
	// otherwise hold the answer for body_idle_timeout.
	bc.ctx.SetReadDeadline(end)
}

// wait waits for the copy to end and returns the client's error, if any.
func (bc *bodyCopier) wait() error {
	<-bc.done
	// A body cut at max_body_bytes as the target's early answer came is
	// still refused (413): the copy closed the target's connection, and
	// reading the rest of that answer gave a 502 counted against the
	// group (a helper's review: a chunked upload raced against a 401).
	if bc.draining.Load() && !errors.Is(bc.clientErr, errBodyTooLarge) {
		return nil
	}
	return bc.clientErr
}

// clientWatch checks, while a request waits for its target, that the client
// is still connected; if it hung up, the target's connection is closed so
// the target stops working on an answer nobody will read.
type clientWatch struct {
	mu     sync.Mutex
	t      *time.Timer
	ctx    *fasthttp.RequestCtx
	uc     *upConn
	active bool
	gone   bool
}

var watchPool = sync.Pool{New: func() any {
	w := &clientWatch{}
	w.t = time.AfterFunc(time.Hour, w.check)
	w.t.Stop()
	return w
}}

func startClientWatch(ctx *fasthttp.RequestCtx, uc *upConn) *clientWatch {
	w := watchPool.Get().(*clientWatch)
	w.mu.Lock()
	w.ctx, w.uc, w.active, w.gone = ctx, uc, true, false
	w.mu.Unlock()
	w.t.Reset(watchEvery)
	return w
}

func (w *clientWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.active {
		return
	}
	// The head's read deadline may have passed while the target works; it
	// would keep the peek from looking. The server resets it afterwards.
	if _, h2 := w.ctx.Conn().(*h2Stream); !h2 {
		w.ctx.SetReadDeadline(time.Time{})
	}
	if eof, _ := peek(w.ctx.Conn()); eof {
		w.gone = true
		w.uc.spoiled.Store(true)
		w.uc.c.SetDeadline(time.Unix(1, 0))
		return
	}
	w.t.Reset(watchEvery)
}

// end stops watching and reports whether the client hung up.
func (w *clientWatch) end() bool {
	w.t.Stop()
	w.mu.Lock()
	gone := w.gone
	w.active, w.ctx, w.uc = false, nil, nil
	w.mu.Unlock()
	watchPool.Put(w)
	return gone
}

// isWriteError reports a failed write (of the request).
func isWriteError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && (oe.Op == "write" || oe.Op == "raw-write")
}

// dialError marks a failure to connect: the request was not sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = overDialCap(int(fd)) }); cerr != nil {
			return cerr
		}
		return err
	}}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return newRawConn(c, nil), nil
	}
}
