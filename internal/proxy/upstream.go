package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamPool is the round tripper for the common request: a GET, HEAD or
// OPTIONS without a body and without an upgrade. It writes the request and
// reads the response on the calling goroutine over a pooled keep-alive
// connection, with net/http's own Request.Write and ReadResponse.
//
// Why not http.Transport alone: it hands every request to a per-connection
// writer goroutine and every response back from a reader goroutine. On a
// small machine those wake-ups, not the bytes, were most of the proxy's added
// latency (the proxy was mostly idle while adding a millisecond at the
// median). Every other request (bodies, Expect, upgrades) still goes to
// http.Transport, which handles them concurrently and fully.
type upstreamPool struct {
	base        http.RoundTripper
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
}

func newUpstreamPool(base http.RoundTripper, dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int, idleTimeout time.Duration) *upstreamPool {
	p := &upstreamPool{base: base, dial: dial, maxIdle: maxIdle, idleTimeout: idleTimeout,
		idle: map[string][]*upConn{}, stop: make(chan struct{})}
	go p.janitor()
	return p
}

// pooled reports whether req takes the synchronous path: nothing but
// headers goes up, so a request can be written whole before the answer is
// read, and resent on a fresh connection if a reused one turns out dead.
func pooled(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return (req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		req.URL.Scheme == "http" && req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == ""
}

func (p *upstreamPool) RoundTrip(req *http.Request) (*http.Response, error) {
	if !pooled(req) {
		return p.base.RoundTrip(req)
	}
	ctx := req.Context()
	for {
		uc, reused, err := p.get(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, sent, err := p.exchange(ctx, uc, req)
		if err == nil {
			return resp, nil
		}
		uc.c.Close()
		// A reused connection the target closed while idle fails before any
		// byte of an answer: like http.Transport, send the (idempotent,
		// bodiless) request again on the next connection.
		if reused && !sent && ctx.Err() == nil {
			continue
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
}

// exchange writes req on uc and reads the answer's header. sent reports
// whether any byte of an answer arrived, after which a retry is unsafe.
func (p *upstreamPool) exchange(ctx context.Context, uc *upConn, req *http.Request) (resp *http.Response, sent bool, err error) {
	// A client that goes away aborts the exchange by expiring the deadline.
	stop := context.AfterFunc(ctx, func() { uc.c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if err := req.Write(uc.bw); err != nil {
		return nil, false, err
	}
	if err := uc.bw.Flush(); err != nil {
		return nil, false, err
	}
	if _, err := uc.br.Peek(1); err != nil {
		return nil, false, err
	}
	trace := httptrace.ContextClientTrace(ctx)
	for n := 0; ; n++ {
		resp, err = http.ReadResponse(uc.br, req)
		if err != nil {
			return nil, true, err
		}
		// 1xx informational answers (103 Early Hints) precede the real one;
		// ReverseProxy relays them through the trace hook.
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols || n >= 5 {
			break
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, true, err
			}
		}
	}
	reuse := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		p.release(uc, stop, reuse)
		return resp, true, nil
	}
	resp.Body = &upBody{p: p, uc: uc, rc: resp.Body, stop: stop, reuse: reuse}
	return resp, true, nil
}

// release returns uc to the pool if it may carry another request, or closes it.
func (p *upstreamPool) release(uc *upConn, stop func() bool, reuse bool) {
	// stop fails when the cancel func already ran (or is running): the
	// connection's deadline is then spoiled.
	if !stop() || !reuse || uc.br.Buffered() > 0 {
		uc.c.Close()
		return
	}
	p.put(uc)
}

func (p *upstreamPool) get(ctx context.Context, addr string) (*upConn, bool, error) {
	p.mu.Lock()
	for list := p.idle[addr]; len(list) > 0; list = p.idle[addr] {
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[addr] = list[:len(list)-1]
		if time.Since(uc.idleAt) < p.idleTimeout {
			p.mu.Unlock()
			return uc, true, nil
		}
		uc.c.Close()
	}
	p.mu.Unlock()
	c, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &upConn{addr: addr, c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}, false, nil
}

func (p *upstreamPool) put(uc *upConn) {
	addr := uc.addr
	uc.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle[addr]) >= p.maxIdle {
		p.mu.Unlock()
		uc.c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], uc)
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

// upBody is a pooled response body: read to its end, it gives the
// connection back; closed before that, it closes the connection rather
// than read the rest of a body nobody wants.
type upBody struct {
	p     *upstreamPool
	uc    *upConn
	rc    io.ReadCloser
	stop  func() bool
	reuse bool
	done  atomic.Bool
}

func (b *upBody) Read(buf []byte) (int, error) {
	if b.done.Load() {
		return 0, io.EOF
	}
	n, err := b.rc.Read(buf)
	if err != nil && b.done.CompareAndSwap(false, true) {
		b.p.release(b.uc, b.stop, b.reuse && errors.Is(err, io.EOF))
	}
	return n, err
}

func (b *upBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.stop()
		b.uc.c.Close()
	}
	return nil
}
