package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// attempt is the per-request state shared by the handler, the Rewrite hook,
// the retrying transport and the response hooks. Pooled.
type attempt struct {
	route   *route
	fw      *forward
	target  *target
	body    *guardedBody
	status  int
	retry   bool
	trusted bool // the client is a trusted proxy: keep its forwarding headers
}

type attemptKey struct{}

var attemptPool = sync.Pool{New: func() any { return new(attempt) }}

func attemptFrom(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// listenerHandler serves one listener address from the current snapshot.
type listenerHandler struct {
	p        *Proxy
	addr     string
	bodyIdle time.Duration
}

func (h *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lr := h.p.snap.Load().byAddr[h.addr]
	var rt *route
	if lr != nil {
		rt = lr.match(requestHost(r.Host), r.URL.Path)
	}
	if rt == nil {
		name := ""
		if lr != nil {
			name = lr.name
		}
		http.Error(w, "cutover: no route for host "+r.Host+" path "+r.URL.Path+" on listener "+name, http.StatusNotFound)
		return
	}
	fw, t := rt.pick(nil)
	if t == nil {
		p := rt.primary()
		p.noTarget.Inc()
		p.g.noTarget.Add(1)
		p.requests[4].Inc()
		p.g.classes[4].Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, rt.noTargetMessage())
		return
	}
	t.inFlight.Add(1)

	a := attemptPool.Get().(*attempt)
	*a = attempt{route: rt, fw: fw, target: t, trusted: trusts(lr.trusted, r.RemoteAddr)}
	out := r.WithContext(context.WithValue(r.Context(), attemptKey{}, a))
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		a.body = &guardedBody{rc: r.Body, ctl: http.NewResponseController(w), idle: h.bodyIdle}
		out.Body = a.body
	}
	// Deferred: ReverseProxy aborts with a panic (http.ErrAbortHandler) when
	// the response copy fails midway, and the target must still be released.
	defer func() {
		a.target.inFlight.Add(-1)
		if a.status != 0 {
			a.fw.record(a.status, time.Since(start))
		}
		*a = attempt{}
		attemptPool.Put(a)
	}()
	h.p.rp.ServeHTTP(w, out)
}

// rewrite points the outgoing request at the chosen target. The Host header
// stays the client's. From a trusted proxy, X-Forwarded-For is appended to
// (like an ALB does) and X-Forwarded-Proto/-Host, X-Real-IP and Forwarded
// are kept; from any other client they are what the proxy sees, so a client
// cannot pass for another address.
func rewrite(pr *httputil.ProxyRequest) {
	a := attemptFrom(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = a.target.addr
	in, out := pr.In.Header, pr.Out.Header
	if !a.trusted {
		// ReverseProxy already dropped Forwarded and X-Forwarded-*.
		delete(out, "X-Real-Ip")
		pr.SetXForwarded()
		return
	}
	if prior, ok := in["X-Forwarded-For"]; ok {
		out["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	for _, k := range [...]string{"X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
		if v, ok := in[k]; ok {
			out[k] = v
		}
	}
}

func modifyResponse(resp *http.Response) error {
	if a := attemptFrom(resp.Request.Context()); a != nil {
		a.status = resp.StatusCode
		if a.body != nil {
			// The target answered: a body it left unread is no longer
			// waited for, so the body idle deadline must not cut the answer.
			a.body.answered()
		}
	}
	return nil
}

// errorHandler answers 502 when the target failed; a client that went away
// is counted as 499, as nginx does, not against the target.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	a := attemptFrom(r.Context())
	if a != nil && a.body != nil {
		if cerr := a.body.clientErr(); cerr != nil {
			// The client's body broke (bad chunking, a stall, a hang-up): the
			// client's fault, not the target's, so it is not counted.
			a.status = 0
			p.log.Debug("bad request body", "group", a.target.group.name, "remote", r.RemoteAddr, "err", cerr)
			clientBodyError(w, cerr)
			return
		}
	}
	status := http.StatusBadGateway
	if r.Context().Err() != nil {
		status = 499
	}
	if a != nil {
		a.status = status
		p.log.Debug("forwarding failed", "group", a.target.group.name, "target", a.target.id, "addr", a.target.addr, "err", err)
	}
	if status == 499 {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	group := "the target"
	if a != nil {
		group = a.target.group.name
	}
	io.WriteString(w, badGatewayMessage(group))
}

// badGatewayMessage is the body of a 502: it names the target group (the
// environment's service), never a target's ID or address or the error,
// which go to the proxy's log.
func badGatewayMessage(group string) string {
	return "cutover: " + group + " failed to answer\n"
}

// clientBodyError answers a request whose body could not be read from the
// client, and closes the connection: what follows on it cannot be trusted.
func clientBodyError(w http.ResponseWriter, err error) {
	status, msg := http.StatusBadRequest, "cutover: bad request body\n"
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		status, msg = http.StatusRequestTimeout, "cutover: request body timed out\n"
	}
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

// retryTransport retries a request whose connection could not be made, once,
// on another healthy target of the same rule: nothing was sent, so it is
// safe for any method. This is what keeps a stopped task or a weight change
// at zero failed requests. Failures after the request was written are not
// retried here; http.Transport itself retries GET/HEAD without a body when a
// reused idle connection turns out to be dead.
type retryTransport struct {
	base http.RoundTripper
}

func (rt retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	a := attemptFrom(req.Context())
	var de *dialError
	if a == nil || a.retry || !errors.As(err, &de) || (a.body != nil && a.body.touched.Load()) || req.Context().Err() != nil {
		return nil, err
	}
	fw, t := a.route.pick(a.target)
	if t == nil {
		return nil, err
	}
	a.retry = true
	t.inFlight.Add(1)
	a.target.inFlight.Add(-1)
	a.target, a.fw = t, fw
	again := *req
	u := *req.URL
	u.Host = t.addr
	again.URL = &u
	if a.body != nil {
		// The transport closed ReverseProxy's no-op-close wrapper on the
		// failed attempt; nothing was read, so send the same body again.
		again.Body = io.NopCloser(a.body)
	}
	return rt.base.RoundTrip(&again)
}

// dialError marks a failure to connect: the request was not sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return c, nil
	}
}

// guardedBody records whether any of a request body was read, which is
// what decides whether a failed request may be sent to another target,
// and whether reading it failed on the client's side. Each read waits at
// most idle for the client.
type guardedBody struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController
	idle    time.Duration
	touched atomic.Bool
	done    atomic.Bool // read to its end, or the target answered
	err     atomic.Pointer[error]
}

func (b *guardedBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	if !b.done.Load() {
		b.ctl.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.answered()
	} else if err != nil {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// answered lifts the body's read deadline.
func (b *guardedBody) answered() {
	if b.done.CompareAndSwap(false, true) {
		b.ctl.SetReadDeadline(time.Time{})
	}
}

// clientErr is the error reading the body from the client, if any.
func (b *guardedBody) clientErr() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (b *guardedBody) Close() error { return b.rc.Close() }

// bufferPool lends ReverseProxy its 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
