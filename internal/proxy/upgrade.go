package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// upgrade forwards a request asking to switch protocols (WebSocket) on a
// connection of its own. If the target agrees (101), the client's
// connection is taken over from the server and the two are joined until
// either side closes; the target stays in flight meanwhile, so draining it
// waits for the tunnel (up to the deregistration delay). Any other answer is
// relayed like a plain response. It returns true when a.finish is left to
// the tunnel or the streamed body. A tunnel still open when its target's
// drain ends (the deregistration delay passed) is cut with the target.
func (p *Proxy) upgrade(ctx *fasthttp.RequestCtx, a *attempt, head []byte) bool {
	c, err := p.upstream.dial(context.Background(), "tcp", a.target.addr)
	if couldNotConnect(err) {
		if fw, t := a.route.reroute(a.fw, a.target, nil); t != nil {
			a.target, a.fw = t, fw
			c, err = p.upstream.dial(context.Background(), "tcp", a.target.addr)
		}
	}
	if err == nil {
		// The target has target_timeout to take the head, as on the
		// other paths: without it, one that took none of a large head held
		// the client for good.
		c.SetWriteDeadline(time.Now().Add(a.targetWait))
		_, err = c.Write(head)
		err = notTaken(err)
		c.SetWriteDeadline(time.Time{})
	}
	var uc *upConn
	if c != nil {
		uc = newUpConn(a.target.addr, c)
	}
	if err == nil {
		c.SetReadDeadline(time.Now().Add(a.targetWait))
		err = readResponseHead(ctx, uc.br, func() { c.SetReadDeadline(time.Now().Add(a.targetWait)) })
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
	raw, t, idle := ctx.Conn(), a.target, a.tunnelIdle // raw: the client's socket, for its half-close
	a.hj.hijack(ctx, func() { c.Close(); a.finish() }, func(client net.Conn) {
		defer a.finish()
		defer c.Close()
		// The tunnel lives as long as its two ends: no deadline left
		// from the server's write of the head, nor the wait for the 101.
		client.SetDeadline(time.Time{})
		c.SetReadDeadline(time.Time{})
		tn := &tunnelPair{client: client, raw: raw, target: c, idle: idle, cuts: p.metrics.tunnelsCut}
		if !t.addTunnel(tn) {
			return // the target's drain ended while the 101 came
		}
		defer t.removeTunnel(tn)
		if _, err := client.Write(answer); err != nil {
			return
		}
		tn.join(uc.br)
	})
	return true
}

// tunnelPair is a client joined to a target after a 101.
type tunnelPair struct {
	client net.Conn // as the server hands it over: reads what it buffered
	raw    net.Conn // the client's socket: the server's Close of client does not close it until the tunnel ends
	target net.Conn
	idle   time.Duration // the most time with no data either way (tunnel_idle_timeout)
	// cuts counts the tunnels the proxy cut, by reason.
	cuts *prometheus.CounterVec
	once sync.Once
	done chan struct{} // closed when the tunnel ends
}

// halfClosedCheck is how often a half-closed tunnel looks whether the end
// that half-closed has gone since.
const halfClosedCheck = 500 * time.Millisecond

// cut closes both sockets, which ends both copies. The first cut with a
// reason (the proxy's: cutIdle, cutDrain) is counted under it; a tunnel is
// counted once, and not at all if it had ended first. Counted before the
// close: whoever sees the tunnel end (its client, a test) finds it counted.
func (tn *tunnelPair) cut(reason string) {
	tn.once.Do(func() {
		if reason != "" {
			tn.cuts.WithLabelValues(reason).Inc()
		}
		tn.raw.Close()
		tn.target.Close()
	})
}

// join copies between the client and the target (whose first bytes may be
// buffered in br) until both directions are done, then closes both. A side
// that ends what it sends (EOF: a half-close, as Docker's attach or any
// "send, then read the rest" protocol does) has that passed on as a
// half-close of the other socket, and what comes back still flows; an error
// in either direction closes both, and so does the end of the side that
// half-closed (a reset, or its keep-alive probes unanswered), which no read
// would see any more. A tunnel with no data either way for tn.idle is cut.
func (tn *tunnelPair) join(br *bufio.Reader) {
	tn.done = make(chan struct{})
	defer close(tn.done)
	go tn.boundIdle()
	var wg sync.WaitGroup
	wg.Go(func() { tn.pass(tn.target, tn.client, tn.target, tn.raw) })
	tn.pass(tn.client, br, tn.raw, tn.target)
	wg.Wait()
	tn.cut("")
}

// pass copies src (whose socket is from) to dst, then half-closes dst's
// socket at src's end and watches from until the tunnel ends; or it cuts
// the tunnel if it cannot.
func (tn *tunnelPair) pass(dst io.Writer, src io.Reader, half, from net.Conn) {
	_, err := io.Copy(dst, src)
	if hc, ok := half.(interface{ CloseWrite() error }); err != nil || !ok || hc.CloseWrite() != nil {
		tn.cut("")
		return
	}
	go tn.watch(from)
}

// watch cuts the tunnel once c, an end that half-closed, is gone.
func (tn *tunnelPair) watch(c net.Conn) {
	tick := time.NewTicker(halfClosedCheck)
	defer tick.Stop()
	for {
		select {
		case <-tn.done:
			return
		case <-tick.C:
			if socketClosed(c) {
				tn.cut("")
				return
			}
		}
	}
}

// boundIdle cuts the tunnel once no data has passed its client's socket,
// either way, for tn.idle. All of a tunnel's data passes that socket, and
// the kernel keeps when it last did (so the copies count nothing); it is
// looked at when tn.idle could have passed, about once per tn.idle while
// data flows. Where the socket cannot tell (off Linux), there is no bound.
func (tn *tunnelPair) boundIdle() {
	t := time.NewTimer(tn.idle)
	defer t.Stop()
	for {
		select {
		case <-tn.done:
			return
		case <-t.C:
			idle, ok := socketIdle(tn.raw)
			if !ok {
				return
			}
			if idle >= tn.idle {
				tn.cut(cutIdle)
				return
			}
			t.Reset(max(tn.idle-idle, time.Millisecond)) // the kernel counts in milliseconds
		}
	}
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
