package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// upgrade forwards a request asking to switch protocols (WebSocket) on a
// connection of its own. If the target agrees (101), the client's
// connection is taken over from the server and the two are joined until
// either side closes; the target stays in flight meanwhile, so draining it
// waits for the tunnel (up to the deregistration delay). Any other answer is
// relayed like a plain response. It returns true when a.finish is left to
// the tunnel or the streamed body.
func (p *Proxy) upgrade(ctx *fasthttp.RequestCtx, a *attempt, head []byte) bool {
	c, err := p.upstream.dial(context.Background(), "tcp", a.target.addr)
	var de *dialError
	if errors.As(err, &de) && !outOfResources(err) {
		if fw, t := a.route.pick(a.target); t != nil {
			t.inFlight.Add(1)
			a.target.inFlight.Add(-1)
			a.target, a.fw = t, fw
			c, err = p.upstream.dial(context.Background(), "tcp", a.target.addr)
		}
	}
	if err == nil {
		_, err = c.Write(head)
	}
	var uc *upConn
	if c != nil {
		uc = newUpConn(a.target.addr, c)
	}
	if err == nil {
		c.SetReadDeadline(time.Now().Add(a.targetWait))
		err = readResponseHead(ctx, uc.br)
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		if outOfResources(err) {
			p.unavailable(ctx, a, err)
		} else {
			p.badGateway(ctx, a, err)
		}
		return false
	}
	a.status = ctx.Response.StatusCode()
	if a.status != fasthttp.StatusSwitchingProtocols {
		uc.tr.wait = a.targetWait // as roundTrip's: each read of the body has the wait
		ex := p.upstream.responseBody(ctx, uc, false)
		if ex.err != nil {
			p.badGateway(ctx, a, ex.err)
			return false
		}
		return streamBody(ctx, a, ex)
	}
	answer := append([]byte(nil), ctx.Response.Header.Header()...)
	a.hj.hijack(ctx, func() { c.Close(); a.finish() }, func(client net.Conn) {
		defer a.finish()
		defer c.Close()
		// The tunnel lives as long as its two ends: no deadline left
		// from the server's write of the head, nor the wait for the 101.
		client.SetDeadline(time.Time{})
		c.SetReadDeadline(time.Time{})
		if _, err := client.Write(answer); err != nil {
			return
		}
		join(client, c, uc.br)
	})
	return true
}

// join copies between the client and the target (whose first bytes may be
// buffered in br) until one side is done, then closes both.
func join(client, target net.Conn, br *bufio.Reader) {
	var once sync.Once
	stop := func() { once.Do(func() { client.Close(); target.Close() }) }
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(target, client)
		stop()
	})
	io.Copy(client, br)
	stop()
	wg.Wait()
}

// hijacks holds, for each connection of a listener whose handler asked to
// take it over, what to release if the server never hands it over: it
// first sends the answers it holds for earlier pipelined requests, and if
// that fails (the client reset or stopped reading) it closes the
// connection without running the taker. Whoever comes first, the taker
// or the connection's close, gets the release; the other finds nothing.
type hijacks struct {
	mu      sync.Mutex
	pending map[net.Conn]func()
	// live counts the connections taken over or about to be (the proxy's
	// tunnels: a proxy handing over to the next waits for them).
	live *atomic.Int64
}

func newHijacks(live *atomic.Int64) *hijacks {
	return &hijacks{pending: map[net.Conn]func(){}, live: live}
}

// hijack takes ctx's connection over for run, once the server has sent
// what it holds; release is called instead if it never does.
func (h *hijacks) hijack(ctx *fasthttp.RequestCtx, release func(), run func(net.Conn)) {
	key := ctx.Conn()
	h.live.Add(1) // until release or run ends: one of them runs
	h.mu.Lock()
	h.pending[key] = func() {
		defer h.live.Add(-1)
		release()
	}
	h.mu.Unlock()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if h.take(key) == nil {
			c.Close() // released already
			return
		}
		defer h.live.Add(-1)
		run(c)
	})
}

// take removes and returns c's pending release, or nil.
func (h *hijacks) take(c net.Conn) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.pending[c]
	delete(h.pending, c)
	return r
}

// closed releases what c's taker would have, when the server closed c
// without handing it over.
func (h *hijacks) closed(c net.Conn) {
	if r := h.take(c); r != nil {
		r()
	}
}
