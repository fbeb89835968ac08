// Package proxy is cutover's built-in L7 load balancer, the local stand-in
// for an AWS ALB: listeners with host/path rules forwarding by weight to
// target groups, active health checks, draining of removed targets, and
// Prometheus metrics. It runs as its own long-lived process (Run, the body
// of `cutover proxy run`) configured over an admin API on a unix socket
// (Client), persisting its routes so a restart serves them at once, and so a
// crash of the command that controls it never interrupts traffic.
//
// The engine (Proxy) keeps its routing table in an immutable snapshot
// swapped atomically on every Apply: requests never take a lock, and a
// change never fails a request already in flight.
package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/stats"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Options configure a Proxy. Zero values are fine.
type Options struct {
	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // where the proxy's metrics are registered; nil: nowhere
	// ACMEDir keeps the ACME account key and certificates (created 0700);
	// "": listeners with tls.acme are refused.
	ACMEDir string
	// MaxHTTP2InFlight bounds the HTTP/2 requests in flight, all
	// listeners together, counted at the default max_header_bytes (a
	// request on a listener with larger heads counts for more: h2.go's
	// h2StreamCost); 0: DefaultMaxHTTP2InFlight.
	MaxHTTP2InFlight int64
	// MaxHTTP2InFlightPerClient bounds those of one client address (an
	// IPv6 client's /64), but for a listener's trusted_proxies; 0:
	// DefaultMaxHTTP2InFlightPerClient.
	MaxHTTP2InFlightPerClient int64
}

// Proxy is the load balancing engine. All methods are safe for concurrent use.
type Proxy struct {
	log      *slog.Logger
	metrics  *metrics
	upstream *upstreamPool // keep-alive connections to targets
	acme     *acmeManagers
	snap     atomic.Pointer[snapshot]
	loops    loops // the event loops of plain listeners (Linux)
	// handover: the supervisor that keeps the listening sockets across a
	// crash, and those inherited (nil: none; Run sets it)
	handover *handover

	mu        sync.Mutex // serialises Apply, Close and the bookkeeping of drains
	listeners map[string]*listener
	groups    map[string]*group
	state     State
	closed    bool
	closing   chan struct{}
	bg        sync.WaitGroup // drains and listener shutdowns
	// tunnels counts the connections the server handed over, open or
	// about to be: upgraded ones (WebSockets) and HTTP/1.0 answers ended
	// by the close. A proxy that hands over to the next waits for them.
	tunnels atomic.Int64
	// h2Budget bounds the HTTP/2 requests in flight (h2.go).
	h2Budget *h2Budget
}

// listener is one open address and the server on it.
type listener struct {
	name, addr string
	limits     Limits // as opened
	srv        *fasthttp.Server
	ln         net.Listener
	loop       *loopListener              // nil: the server accepts from ln
	tls        atomic.Pointer[tlsServing] // nil: plain HTTP
	done       chan struct{}
	draining   atomic.Bool // handing over: answers close their connections
	log        *slog.Logger

	// h2 serves the TLS connections that negotiate HTTP/2 (h2.go); h2all
	// holds it and those retired (h2mu).
	h2       atomic.Pointer[h2Bridge]
	h2mu     sync.Mutex
	h2all    []*h2Bridge
	h2closed bool      // shut down: no bridge starts again
	h2Budget *h2Budget // the proxy's: HTTP/2 requests in flight
	// clients bounds the connections of each client (max_client_conns).
	clients *clientConns
	// trusts reports whether a client address is one of the listener's
	// trusted_proxies, as the current routes say.
	trusts func(netip.Addr) bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open client connections
	hj    *hijacks
}

// New returns a Proxy with no listeners; Apply configures it.
func New(opts Options) *Proxy {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		log:       log,
		listeners: map[string]*listener{},
		groups:    map[string]*group{},
		closing:   make(chan struct{}),
	}
	p.acme = &acmeManagers{dir: opts.ACMEDir, log: log}
	p.h2Budget = newH2Budget(cmp.Or(opts.MaxHTTP2InFlight, DefaultMaxHTTP2InFlight), cmp.Or(opts.MaxHTTP2InFlightPerClient, DefaultMaxHTTP2InFlightPerClient))
	p.metrics = newMetrics(p)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(p.metrics); err != nil {
			log.Warn("registering proxy metrics", "err", err)
		}
	}
	p.upstream = newUpstreamPool(dialer(), 512, 90*time.Second)
	p.snap.Store(&snapshot{})
	return p
}

// Apply reconciles the proxy to s: it opens and closes listeners, adds
// targets (initial until healthy), drains removed ones, updates health
// settings and swaps the routing table atomically. If a listener cannot be
// opened, nothing changes and the error names the address.
func (p *Proxy) Apply(ctx context.Context, s State) error {
	return p.apply(ctx, s, false)
}

// apply is Apply; with warm, new targets are taken to be restored ones that
// served before a restart: one passing check makes them healthy.
func (p *Proxy) apply(ctx context.Context, s State, warm bool) error {
	if err := s.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("the proxy is shutting down")
	}

	want := map[string]Listener{}
	tlsOf := map[string]*tlsServing{}
	var obtain []Listener // with a new ACME manager
	for _, l := range s.Listeners {
		want[l.Addr] = l
		t, fresh, err := p.loadTLS(l)
		if err != nil {
			return err
		}
		tlsOf[l.Addr] = t
		if fresh {
			obtain = append(obtain, l)
		}
	}
	opened := map[string]*listener{}
	for _, l := range s.Listeners {
		if _, ok := p.listeners[l.Addr]; ok {
			continue
		}
		ln, err := p.listen(ctx, l.Addr)
		if err != nil {
			for _, o := range opened {
				o.forceClose()
			}
			return listenError(l, err)
		}
		opened[l.Addr] = p.newListener(l, ln, tlsOf[l.Addr])
	}

	members := p.reconcileGroups(s, warm)
	p.snap.Store(p.buildSnapshot(s, members, tlsOf))

	oldNames := map[string]bool{}
	for _, l := range p.state.Listeners {
		oldNames[l.Name] = true
	}
	for _, l := range s.Listeners {
		delete(oldNames, l.Name)
	}
	for name := range oldNames {
		p.metrics.forgetListener(name)
	}
	for addr, l := range p.listeners {
		if nl, ok := want[addr]; ok {
			l.name = nl.Name
			l.clients.rename(nl.Name)
			l.tls.Store(tlsOf[addr])
			if !tlsOf[addr].offersH2() {
				l.retireH2() // if it had one
			}
			if nl.Limits != l.limits {
				p.log.Warn("listener limits changed: they take effect when the proxy restarts (cutover proxy restart)", "listener", nl.Name, "addr", addr)
			}
			continue
		}
		delete(p.listeners, addr)
		p.bg.Go(func() { p.shutdownListener(l, 30*time.Second) })
	}
	for addr, l := range opened {
		p.listeners[addr] = l
		p.log.Info("listening", "listener", l.name, "addr", addr)
	}
	p.state = s
	p.sendListeners()
	for _, l := range obtain {
		p.acme.obtain(l.Name, tlsOf[l.Addr].acme, l.TLS.ACME.Domains)
	}
	return nil
}

func listenError(l Listener, err error) error {
	why := unwrapURLError(err).Error()
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		why = "the port is already in use by another process: pick another port or stop that process"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		why = "that IP is not an address of this machine: use 127.0.0.1"
	case errors.Is(err, syscall.EACCES):
		why = "permission denied: ports below 1024 need privileges, use a higher port"
	}
	return fmt.Errorf("listener %q: cannot listen on %s: %s", l.Name, l.Addr, why)
}

// newListener serves ln with fasthttp, built for proxies: one goroutine
// per connection, reused buffers and request objects, a request body
// streamed to the target rather than read whole.
func (p *Proxy) newListener(l Listener, ln net.Listener, t *tlsServing) *listener {
	lim := l.Limits
	hj := newHijacks(&p.tunnels)
	nl := &listener{name: l.Name, addr: l.Addr, limits: lim, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}, hj: hj, log: p.log, h2Budget: p.h2Budget}
	nl.trusts = func(ip netip.Addr) bool {
		lr := p.snap.Load().byAddr[l.Addr]
		return lr != nil && trusts(lr.trusted, ip)
	}
	nl.clients = newClientConns(l.Name, lim.maxClientConns(), nl.trusts, p.log)
	h := &listenerHandler{clients: nl.clients, p: p, addr: l.Addr, body: lim.body(), writeIdle: lim.idle(), targetWait: lim.target(), tunnelIdle: lim.tunnelIdle(), hj: hj, draining: &nl.draining}
	nl.tls.Store(t)
	nl.srv = &fasthttp.Server{
		Handler:      h.serve,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) { serverError(ctx, nl.clients, err) },
		// After the head, a body gets the body idle time for its first
		// bytes (then each read of it extends it). The answer gets the
		// idle time for its writes: a streamed body extends it with each
		// part (upBody.Read), so a client that stops reading is let go
		// and the target's connection with it.
		//
		// MaxRequestBodySize 1: the server reads one byte of a body before
		// the handler (then streams it, as for any body over the size),
		// where it would read up to 8 KiB within that one deadline: a body
		// that came steadily but slower than 8 KiB per body_idle_timeout
		// got a 408. The handler reads the rest with a deadline per read.
		HeaderReceived: func(rh *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if rh.ContentLength() != 0 {
				return fasthttp.RequestConfig{ReadTimeout: h.body.idle, WriteTimeout: h.writeIdle, MaxRequestBodySize: 1}
			}
			return fasthttp.RequestConfig{WriteTimeout: h.writeIdle}
		},
		// A body over max_body_bytes announced with Expect: 100-continue
		// is refused before the client sends it (the handler is not
		// called then: the answer is made here; the server keeps its
		// text and sets the status).
		ExpectHandler: func(ctx *fasthttp.RequestCtx) int {
			if h.body.over(int64(ctx.Request.Header.ContentLength())) {
				tooLarge(ctx, h.clients, h.body)
				return fasthttp.StatusRequestEntityTooLarge
			}
			return fasthttp.StatusContinue
		},
		ReadTimeout:                  lim.readHeader(),
		IdleTimeout:                  lim.idle(),
		ReadBufferSize:               lim.maxHeader(),
		WriteBufferSize:              16 << 10,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		// fasthttp's errors quote the request head they failed on unless
		// told not to: its Authorization or cookies would reach the log.
		SecureErrorLogMessage: true,
		ConnState:             nl.track,
		Logger:                fasthttpLogger{p.log},
	}
	accept := ln
	if t == nil && p.serveWithLoops(nl) {
		accept = nl.loop.hand // what the loops do not serve
	}
	go func() {
		defer close(nl.done)
		if err := nl.srv.Serve(tlsSwitch{accept, nl}); err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Error("listener stopped", "listener", nl.name, "addr", nl.addr, "err", err)
		}
	}()
	return nl
}

// track keeps the set of open connections, to close them when a graceful
// shutdown runs out of time (as net/http's Server.Close, it leaves upgraded
// connections alone).
func (l *listener) track(c net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateNew:
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		// A hijacked connection (an upgraded one) is the tunnel's to close.
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		if st == fasthttp.StateClosed {
			l.hj.closed(c)
		}
	}
}

// shutdown stops accepting, lets requests in flight end until ctx ends,
// then closes what is left. With drain (a hand-over to the next proxy,
// which accepts from the same socket), kept-alive connections are not
// closed while idle, where a client may be sending its next request at that
// moment (a POST would fail): for drain, each one's next answer says
// Connection: close and closes it; those still idle after it close then.
func (l *listener) shutdown(ctx context.Context, drain time.Duration) error {
	if drain > 0 {
		l.draining.Store(true)
	}
	if l.loop != nil {
		l.loop.stopAccepting(drain)
		l.ln.Close()
	} else if drain > 0 {
		l.ln.Close() // the server stops accepting; its connections go on
	}
	if drain > 0 {
		select {
		case <-time.After(drain):
		case <-ctx.Done():
		}
		if l.loop != nil {
			// No connection left on the loops, none to hand to the server.
			l.loop.wait(ctx)
			l.loop.closeHand()
		}
	}
	// HTTP/2 connections get a GOAWAY now (after the drain, as kept-alive
	// ones get Connection: close during it); their requests in flight are
	// the server's, on in-memory connections, which it waits for.
	h2 := make(chan error, 1)
	go func() { h2 <- l.shutdownH2(ctx) }()
	err := l.srv.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) {
		// It closes its listener again after a drain closed it: that
		// listener's second close, not a request cut off (it waited for
		// them all the same).
		err = nil
	}
	if err == nil && l.loop != nil {
		err = l.loop.wait(ctx)
	}
	if h2err := <-h2; err == nil {
		err = h2err
	}
	if err != nil {
		l.forceClose()
	}
	<-l.done
	return err
}

func (l *listener) forceClose() {
	l.ln.Close()
	l.closeH2()
	if l.loop != nil {
		l.loop.stopAccepting(0) // the loops' own copy of the socket (once)
		l.loop.closeHand()
		l.loop.forceClose()
	}
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
}

// shutdownListener stops accepting on l and waits up to grace for its
// requests to finish.
func (p *Proxy) shutdownListener(l *listener, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	l.shutdown(ctx, 0)
	p.log.Info("listener closed", "listener", l.name, "addr", l.addr)
}

// fasthttpLogger sends fasthttp's messages to the proxy's log, at debug.
type fasthttpLogger struct{ log *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.log.Debug(fmt.Sprintf(format, args...))
}

// reconcileGroups brings the live groups and targets to s and returns the
// registered members of each group. Called with p.mu held.
func (p *Proxy) reconcileGroups(s State, warm bool) map[string][]*target {
	members := map[string][]*target{}
	for _, tg := range s.TargetGroups {
		g := p.groups[tg.Name]
		if g == nil {
			g = &group{name: tg.Name, targets: map[string]*target{}, hist: p.metrics.duration.WithLabelValues(tg.Name)}
			p.groups[tg.Name] = g
		}
		g.inState = true
		g.configure(tg)
		keep := map[string]bool{}
		list := make([]*target, 0, len(tg.Targets))
		for _, spec := range tg.Targets {
			k := targetKey(spec)
			keep[k] = true
			t := g.targets[k]
			if t == nil {
				t = newTarget(g, spec, p.log)
				t.warm = warm
				g.targets[k] = t
				t.start()
			} else {
				t.revive()
			}
			list = append(list, t)
		}
		for k, t := range g.targets {
			if !keep[k] {
				p.drain(g, k, t)
			}
		}
		members[tg.Name] = list
	}
	for name, g := range p.groups {
		if _, ok := members[name]; ok {
			continue
		}
		g.inState = false
		for k, t := range g.targets {
			p.drain(g, k, t)
		}
		if len(g.targets) == 0 {
			p.dropGroup(g)
		}
	}
	return members
}

// drain takes t out of rotation; a goroutine drops it once its in-flight
// requests end or the group's deregistration delay passes. It does not
// cancel requests still running then: they finish on their own (each is
// bounded by target_timeout); tunnels (WebSocket), which are not, are cut.
func (p *Proxy) drain(g *group, key string, t *target) {
	if TargetState(t.state.Load()) == StateDraining {
		return
	}
	gen := t.drain()
	delay := time.Duration(g.delay.Load())
	p.log.Info("target draining", "group", g.name, "target", t.id, "addr", t.addr, "in_flight", t.inFlight.Load(), "max", delay.String())
	p.bg.Go(func() {
		deadline := time.NewTimer(delay)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		closing := false
	wait:
		for {
			select {
			case <-deadline.C:
				break wait
			case <-p.closing:
				closing = true
				break wait
			case <-tick.C:
				if t.inFlight.Load() == 0 {
					break wait
				}
			}
		}
		var tunnels []*tunnelPair
		defer func() { // not under p.mu: a close may wait to send
			for _, tn := range tunnels {
				tn.cut(cutDrain)
			}
		}()
		p.mu.Lock()
		defer p.mu.Unlock()
		if !t.stillDraining(gen) {
			return
		}
		delete(g.targets, key)
		t.stopChecks()
		if !closing { // a closing proxy waits for its tunnels (waitTunnels)
			tunnels = t.endTunnels()
		}
		p.log.Info("target removed", "group", g.name, "target", t.id, "addr", t.addr, "in_flight", t.inFlight.Load(), "tunnels_cut", len(tunnels))
		if !g.inState && len(g.targets) == 0 && p.groups[g.name] == g {
			p.dropGroup(g)
		}
	})
}

func (p *Proxy) dropGroup(g *group) {
	delete(p.groups, g.name)
	p.metrics.forgetGroup(g.name)
}

// buildSnapshot resolves s's rules to live groups. Called with p.mu held.
func (p *Proxy) buildSnapshot(s State, members map[string][]*target, tlsOf map[string]*tlsServing) *snapshot {
	snap := &snapshot{byAddr: make(map[string]*listenerRoutes, len(s.Listeners))}
	for _, l := range s.Listeners {
		trusted, _ := parseTrusted(l.TrustedProxies) // validated
		lr := &listenerRoutes{name: l.Name, trusted: trusted}
		for _, r := range l.Rules {
			rt := &route{host: strings.ToLower(r.Host), prefix: r.PathPrefix}
			for _, f := range r.Forward {
				fw := forward{g: p.groups[f.TargetGroup], members: members[f.TargetGroup], weight: f.Weight}
				p.metrics.resolve(&fw, l.Name)
				rt.forward = append(rt.forward, fw)
			}
			lr.routes = append(lr.routes, rt)
		}
		sortRoutes(lr.routes)
		if l.RedirectTo != "" {
			for _, to := range s.Listeners {
				if to.Name == l.RedirectTo {
					_, port, _ := net.SplitHostPort(to.Addr) // validated
					lr.redirectPort, _ = strconv.Atoi(port)
					if t := tlsOf[to.Addr]; t != nil && t.acme != nil {
						lr.challenge = challengeHandler(t.acme)
					}
				}
			}
		}
		snap.byAddr[l.Addr] = lr
	}
	return snap
}

// waitFirstChecks waits until every target has been checked once, or ctx ends.
func (p *Proxy) waitFirstChecks(ctx context.Context) {
	p.mu.Lock()
	var chans []chan struct{}
	for _, g := range p.groups {
		for _, t := range g.targets {
			chans = append(chans, t.checked)
		}
	}
	p.mu.Unlock()
	for _, c := range chans {
		select {
		case <-c:
		case <-ctx.Done():
			return
		}
	}
}

// State returns the state last applied.
func (p *Proxy) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Targets reports every live target, draining ones included, sorted by
// group and ID.
func (p *Proxy) Targets() []TargetStatus {
	p.mu.Lock()
	var out []TargetStatus
	for _, g := range p.groups {
		for _, t := range g.targets {
			out = append(out, t.status())
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b TargetStatus) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Addr, b.Addr))
	})
	return out
}

// Stats returns the counters of every live target group.
func (p *Proxy) Stats() stats.Stats {
	p.mu.Lock()
	out := stats.Stats{At: time.Now().UTC()}
	for _, g := range p.groups {
		s := g.stats()
		for _, t := range g.targets {
			switch TargetState(t.state.Load()) {
			case StateHealthy:
				s.Healthy++
			case StateUnhealthy:
				s.Unhealthy++
			}
		}
		out.Groups = append(out.Groups, s)
	}
	p.mu.Unlock()
	slices.SortFunc(out.Groups, func(a, b stats.GroupStats) int { return cmp.Compare(a.Group, b.Group) })
	out.Listeners = p.listenerStats()
	return out
}

// listenerStats returns what each open listener refused its clients,
// sorted by listener name.
func (p *Proxy) listenerStats() []stats.ListenerStats {
	p.mu.Lock()
	out := make([]stats.ListenerStats, 0, len(p.listeners))
	for _, l := range p.listeners {
		reqs, conns := l.clients.refusals()
		out = append(out, stats.ListenerStats{Listener: l.name, RequestsRefused: reqs, ConnectionsRefused: conns})
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b stats.ListenerStats) int { return cmp.Compare(a.Listener, b.Listener) })
	return out
}

// Close stops accepting connections, waits for in-flight requests until
// ctx ends (then closes what is left), and stops all health checks.
func (p *Proxy) Close(ctx context.Context) error {
	return p.close(ctx, 0)
}

// handOverDrain is how long a proxy handing over to the next one keeps its
// idle kept-alive connections, for their next request to be answered (with
// Connection: close) rather than met by the close.
const handOverDrain = time.Second

// responsive reports whether the proxy's lock (Apply, the admin API, the
// drains) and each of its event loops respond within wait: what a ping from
// the supervisor asks, which kills a proxy that stops answering.
func (p *Proxy) responsive(wait time.Duration) bool {
	locked := make(chan struct{})
	var loops []*evloop
	go func() {
		p.mu.Lock()
		loops = p.loops.ls // started by Apply, under p.mu
		p.mu.Unlock()
		close(locked)
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-locked:
	case <-timer.C:
		p.log.Error("the proxy's lock has been held for " + wait.String() + ": not answering the supervisor's ping")
		return false
	}
	return p.loopsRespond(loops, timer.C)
}

// waitTunnels waits, after close, until the connections taken over
// (p.tunnels) end, ctx ends, or the longest deregistration delay of the
// target groups passes (a tunnel is the target's in-flight request, which
// a drain waits for that long too); it reports how many it left open.
func (p *Proxy) waitTunnels(ctx context.Context) int64 {
	if p.tunnels.Load() == 0 {
		return 0
	}
	var longest time.Duration
	p.mu.Lock()
	for _, g := range p.groups {
		longest = max(longest, time.Duration(g.delay.Load()))
	}
	p.mu.Unlock()
	p.log.Info("handed over: waiting for the connections taken over (WebSockets, HTTP/1.0 answers ended by the close) to end", "open", p.tunnels.Load(), "max", longest.String())
	ctx, cancel := context.WithTimeout(ctx, longest)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for p.tunnels.Load() > 0 {
		select {
		case <-ctx.Done():
			return p.tunnels.Load()
		case <-tick.C:
		}
	}
	return 0
}

// close is Close; with drain, idle kept-alive connections are closed after
// their next answer or drain, not at once (a hand-over).
func (p *Proxy) close(ctx context.Context, drain time.Duration) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ls := p.listeners
	p.listeners = map[string]*listener{}
	p.sendListeners() // none: the ports refuse connections from now on
	p.mu.Unlock()

	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			if err := l.shutdown(ctx, drain); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %q: in-flight requests cut off: %w", l.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(p.closing)
	p.bg.Wait()
	p.stopLoops()

	p.mu.Lock()
	for _, g := range p.groups {
		for _, t := range g.targets {
			t.stopChecks()
		}
	}
	p.mu.Unlock()
	p.upstream.close()
	return errors.Join(errs...)
}
