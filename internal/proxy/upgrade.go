package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
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
	br := bufio.NewReaderSize(c, upReadBuffer)
	if err == nil {
		err = readResponseHead(ctx, br)
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
		ex := p.upstream.responseBody(ctx, &upConn{addr: a.target.addr, c: c, br: br}, false)
		if ex.err != nil {
			p.badGateway(ctx, a, ex.err)
			return false
		}
		return streamBody(ctx, a, ex)
	}
	answer := append([]byte(nil), ctx.Response.Header.Header()...)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		defer a.finish()
		defer c.Close()
		// The tunnel lives as long as its two ends: no deadline left
		// from the server's write of the head.
		client.SetDeadline(time.Time{})
		if _, err := client.Write(answer); err != nil {
			return
		}
		join(client, c, br)
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
