//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// The event loop is the proxy's fast path for plain-HTTP listeners, built
// the way nginx's workers are: a few loops (one per thread Go code may run
// on), each waiting on its own epoll set for every socket it holds, clients
// and targets alike, edge-triggered, and moving bytes with one read or write
// system call per readiness. A proxied keep-alive request costs one read and
// one write per side and no goroutine switch: no scheduler, netpoller hand-off
// or deadline timer, which is where the per-connection server spent its time.
//
// It serves the common request whole: HTTP/1.1, a head, no body or a small
// one that came with it, routed by the same snapshot, picked by the same
// weights, sent with the same head (appendRequestHead), counted in the same
// metrics, retried on another target only when the first could not be
// reached. Anything else — an upgrade, a large or chunked upload, Expect,
// pipelining, HTTP/1.0, a request the parser refuses, no route or no
// healthy target, a TLS connection — is handed to the listener's fasthttp
// server with the bytes already read, and that server answers it exactly
// as it did before the loop existed (handoff). A target's answer streams
// back as it comes, with backpressure: what the client has not taken stops
// the reads from the target.

// loopOutLimit bounds the bytes of an answer held for a client that does
// not read: the loop stops reading its target until they are written.
const loopOutLimit = 64 << 10

// loopKeepBuf: a client connection's buffer (bytes read, the answer, the
// request as sent) larger than this is let go once its exchange ends, not
// kept while the connection idles nor with it on the free list. One large
// request (a 31 KiB head, a 40 KiB answer) made every idle connection hold
// ~176 KiB and every recycled one ~110 KiB, for good; nginx too frees its
// large header buffers on keep-alive. The usual request and answer fit, so
// the fast path allocates nothing.
const loopKeepBuf = 8 << 10

// keepBuf returns b emptied, or nil if it is larger than loopKeepBuf.
func keepBuf(b []byte) []byte {
	if cap(b) > loopKeepBuf {
		return nil
	}
	return b[:0]
}

// loopReadSize is the size of a read from a client or a target.
const loopReadSize = 16 << 10

// loopTurn is how many bytes of an answer one connection relays before
// the loop turns to the others' events.
const loopTurn = 256 << 10

// loopBusyWait (ms) bounds a raw wait under load; loopYieldEvery is how
// often a busy loop yields its P (see wait): just under the 10 ms after
// which the runtime would preempt it.
const (
	loopBusyWait   = 2
	loopYieldEvery = 9 * time.Millisecond
)

// loopAcceptBatch bounds the connections a loop accepts from a listener per
// readiness. Against a backend that answers in microseconds (bench
// -backend static), at a new connection per request from 32 clients,
// accepting one at a time put cutover's p99 at 1.4-3.5 ms against nginx's
// 1.1-1.4; eight at a time, 1.2-1.5 ms (bench/RESULTS.md).
const loopAcceptBatch = 8

// loopDialTimeout bounds a connection attempt to a target, as the dialer's.
const loopDialTimeout = 5 * time.Second

// loopUpIdle is how long a keep-alive connection to a target stays open
// unused, as the pool's.
const loopUpIdle = 90 * time.Second

// loopMaxIdle bounds the idle connections a loop keeps per target address.
const loopMaxIdle = 512

// loops is the proxy's set of event loops, started with the first plain
// listener.
type loops struct {
	once sync.Once
	ls   []*evloop
	err  error
	// served counts the answers the loops sent, handed the connections
	// they gave to the server (for tests and the benchmark's report).
	served, handed atomic.Uint64
}

// evloop is one event loop: one epoll set, run by one goroutine.
type evloop struct {
	p    *Proxy
	epfd int
	wake int // eventfd: commands are waiting
	ents []fdOwner
	gens []uint32 // registration generation by fd, to drop stale events
	gen  uint32
	// rawBlock: under load, block in epoll_wait as a raw system call
	// (see wait); busy: the last wait found events
	rawBlock, busy bool
	yielded        time.Time

	mu   sync.Mutex
	cmds []func()
	stop bool
	done chan struct{}

	idle  map[string][]*upc
	addrs map[string]unix.Sockaddr
	free  []*cconn // closed connections' state, for new ones
	// paused: listeners taken out of the set after running out of
	// descriptors, back at the next sweep
	paused []*lreg
	// resume: connections that used up their turn (loopTurn), to go on
	// after the others' events; spare is the other list's memory.
	resume, spare []*cconn

	// scratch, used by one request at a time
	reqH  fasthttp.RequestHeader
	respH fasthttp.ResponseHeader
	// lfHead: an answer's head whose lines end in bare LFs, with CRLFs
	lfHead []byte
	uri    fasthttp.URI
	src    sliceReader
	br     *bufio.Reader

	now       time.Time
	lastSweep time.Time

	// conns counts the client connections the loop serves (loopFor);
	// stopped: the loop has ended, or is ending, and takes none.
	conns   atomic.Int32
	stopped atomic.Bool
}

type fdOwner interface{ event(ev uint32) }

// sliceReader reads a byte slice once (fasthttp's parsers read from a
// bufio.Reader).
type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errNeedMore
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

var errNeedMore = errors.New("incomplete head")

// startLoops starts n loops once; a failure (no epoll) leaves the
// listeners to the fasthttp server.
func (p *Proxy) startLoops() error {
	p.loops.once.Do(func() {
		n, rawBlock := loopCount()
		for range n {
			l, err := newLoop(p, rawBlock)
			if err != nil {
				p.loops.err = err
				for _, l := range p.loops.ls {
					l.shutdown()
				}
				p.loops.ls = nil
				return
			}
			p.loops.ls = append(p.loops.ls, l)
		}
	})
	return p.loops.err
}

// loopCounts reads the loops' counters.
func (p *Proxy) loopCounts() (served, handed uint64) {
	return p.loops.served.Load(), p.loops.handed.Load()
}

// stopLoops ends the loops (after the listeners): they close what they hold.
func (p *Proxy) stopLoops() {
	for _, l := range p.loops.ls {
		l.shutdown()
	}
}

func newLoop(p *Proxy, rawBlock bool) (*evloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	l := &evloop{p: p, epfd: epfd, wake: wake, rawBlock: rawBlock, done: make(chan struct{}),
		idle: map[string][]*upc{}, addrs: map[string]unix.Sockaddr{},
		br: bufio.NewReaderSize(nil, maxHeaderBytes+4<<10)}
	if err := l.add(wake, unix.EPOLLIN, wakeOwner{l}); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, err
	}
	go l.run()
	return l, nil
}

type wakeOwner struct{ l *evloop }

func (w wakeOwner) event(uint32) {
	var b [8]byte
	unix.Read(w.l.wake, b[:])
	w.l.mu.Lock()
	cmds := w.l.cmds
	w.l.cmds = nil
	w.l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
}

// add registers fd with owner o.
func (l *evloop) add(fd int, events uint32, o fdOwner) error {
	for fd >= len(l.ents) {
		l.ents = append(l.ents, nil)
		l.gens = append(l.gens, 0)
	}
	l.gen++
	l.ents[fd], l.gens[fd] = o, l.gen
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(l.gen)}
	if _, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(l.epfd), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0); e != 0 {
		l.ents[fd] = nil
		return os.NewSyscallError("epoll_ctl", e)
	}
	return nil
}

// forget drops fd's owner; closing fd (never duplicated) leaves the set.
func (l *evloop) forget(fd int) {
	if fd >= 0 && fd < len(l.ents) {
		l.ents[fd] = nil
	}
}

// do runs f on the loop; call waits for it to have run.
func (l *evloop) do(f func()) bool {
	l.mu.Lock()
	if l.stop {
		l.mu.Unlock()
		return false
	}
	l.cmds = append(l.cmds, f)
	first := len(l.cmds) == 1
	l.mu.Unlock()
	if first {
		// Later ones are taken with it (wakeOwner takes them all).
		var one = [8]byte{1}
		for {
			if _, err := unix.Write(l.wake, one[:]); err != unix.EINTR {
				break
			}
		}
	}
	return true
}

// loopsRespond reports whether each of ls runs a command posted to it
// before timeout fires (a loop stopped, or stopping, counts as one that
// responds: the proxy is closing).
func (p *Proxy) loopsRespond(ls []*evloop, timeout <-chan time.Time) bool {
	for i, l := range ls {
		ran := make(chan struct{})
		if !l.do(func() { close(ran) }) {
			continue
		}
		select {
		case <-ran:
		case <-l.done:
		case <-timeout:
			p.log.Error("an event loop does not run: not answering the supervisor's ping", "loop", i)
			return false
		}
	}
	return true
}

func (l *evloop) call(f func()) {
	ran := make(chan struct{})
	if l.do(func() { f(); close(ran) }) {
		select {
		case <-ran:
		case <-l.done:
		}
	}
}

func (l *evloop) shutdown() {
	l.do(func() {
		l.mu.Lock()
		l.stop = true
		l.mu.Unlock()
	})
	<-l.done
}

func (l *evloop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 256)
	l.now = time.Now()
	l.lastSweep = l.now
	for {
		n, err := l.wait(events)
		l.now = time.Now()
		if err != nil && err != unix.EINTR {
			l.p.log.Error("event loop stopped", "err", err)
			l.mu.Lock()
			l.stop = true
			l.mu.Unlock()
		}
		// Idle target connections first: one its target wrote to (or
		// closed) after its last answer is dropped before a request of
		// this batch can take it. Taken first, a GET read a late second
		// answer as its own: another client's answer to the next client
		// (TestLoopAttackLateAnswerIsNotTheNextGETs).
		for i := range max(n, 0) {
			ev := &events[i]
			fd := int(ev.Fd)
			if fd < len(l.ents) && l.gens[fd] == uint32(ev.Pad) && ev.Events&upGone != 0 {
				if u, ok := l.ents[fd].(*upc); ok && u.owner == nil {
					u.event(ev.Events)
					ev.Events = 0
				}
			}
		}
		for i := range max(n, 0) {
			ev := &events[i]
			fd := int(ev.Fd)
			if ev.Events != 0 && fd < len(l.ents) && l.ents[fd] != nil && l.gens[fd] == uint32(ev.Pad) {
				l.ents[fd].event(ev.Events)
			}
		}
		resume := l.resume
		l.resume = l.spare[:0]
		for _, c := range resume {
			if c.fd >= 0 {
				c.advance()
			}
		}
		l.spare = resume[:0]
		l.mu.Lock()
		stop := l.stop
		l.mu.Unlock()
		if stop {
			// No command is queued after this take (do refuses once stop
			// is set); those queued may own a socket (adopt), which they
			// close seeing stopped.
			l.stopped.Store(true)
			l.mu.Lock()
			cmds := l.cmds
			l.cmds = nil
			l.mu.Unlock()
			for _, f := range cmds {
				f()
			}
			l.closeAll()
			return
		}
		if l.now.Sub(l.lastSweep) >= time.Second {
			l.lastSweep = l.now
			l.sweep()
		}
		l.yield()
	}
}

// wait returns the ready events, waiting up to a second for one.
//
// Under load it waits as a raw system call, keeping its P, for at most
// loopBusyWait: a blocking Syscall would have the runtime hand the P to
// another thread and take it back on return (thread wake-ups, futexes,
// context switches: a third of the loop's CPU on a keep-alive load). That
// needs a spare P (loopCount leaves one for the proxy's other goroutines),
// and a loop that keeps its P yields it now and then (yield), or the
// runtime's monitor preempts it by a signal every 10 ms. Once a wait
// finds nothing, the loop is idle: it blocks the usual way, its P
// released, so an idle proxy costs nothing (raw waits, preempted 100 times
// a second, cost an idle proxy 1.3% of a CPU).
func (l *evloop) wait(events []unix.EpollEvent) (int, error) {
	if len(l.resume) > 0 || (l.busy && l.rawBlock) {
		timeout := 0
		if len(l.resume) == 0 {
			timeout = loopBusyWait
		}
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(timeout), 0, 0)
		switch {
		case e == unix.EINTR:
			return 0, nil
		case e != 0:
			return 0, e
		case r > 0 || len(l.resume) > 0:
			return int(r), nil
		}
		l.busy = false
	}
	if !l.rawBlock {
		// No spare P: look without blocking first (raw), block only when
		// nothing is ready.
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e == 0 && r > 0 {
			return int(r), nil
		}
	}
	n, err := unix.EpollWait(l.epfd, events, 1000)
	l.busy = n > 0
	return n, err
}

// yield lets the runtime run another goroutine on the loop's P every few
// milliseconds under load, so it need not preempt the loop by a signal
// (which interrupts a raw wait and costs more).
func (l *evloop) yield() {
	if l.now.Sub(l.yielded) >= loopYieldEvery {
		l.yielded = l.now
		runtime.Gosched()
	}
}

// loopCount is how many loops run: one per P but one, left to the proxy's
// other goroutines (health checks, the admin API, handed-off connections),
// which the loops' raw waits would otherwise hold off for up to 10 ms at a
// time. With one P, one loop, blocking the usual way.
func loopCount() (n int, rawBlock bool) {
	procs := runtime.GOMAXPROCS(0)
	if procs <= 1 {
		return 1, false
	}
	return procs - 1, true
}

// rawRead and rawWrite make one read or write on a non-blocking socket as a
// raw system call: it cannot block, so the runtime need not hand the
// thread's P to another thread around it (Syscall's entersyscall and
// exitsyscall, on every call otherwise).
func rawRead(fd int, p []byte) (int, error) {
	n, e := sysRead(uintptr(fd), p)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

func rawWrite(fd int, p []byte) (int, error) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// closeAll closes every socket the loop holds.
func (l *evloop) closeAll() {
	for _, o := range l.ents {
		switch o := o.(type) {
		case *cconn:
			o.close()
		case *upc:
			o.close()
		}
	}
	for _, lr := range l.ents {
		if r, ok := lr.(*lreg); ok {
			r.drop()
		}
	}
	unix.Close(l.wake)
	unix.Close(l.epfd)
}

// sweep enforces the timeouts, once a second.
func (l *evloop) sweep() {
	paused := l.paused
	l.paused = nil
	for _, r := range paused {
		if !r.ll.closing.Load() {
			if err := l.add(r.ll.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, r); err != nil {
				l.p.log.Warn("event loop: registering a listener again", "addr", r.ll.nl.addr, "err", err)
			}
		}
	}
	for _, o := range l.ents {
		switch o := o.(type) {
		case *cconn:
			if !o.deadline.IsZero() && l.now.After(o.deadline) {
				o.timedOut()
			}
		case *upc:
			switch {
			case o.owner == nil && l.now.Sub(o.idleAt) > loopUpIdle:
				o.close()
			case o.connecting && l.now.After(o.dialBy):
				o.owner.dialFailed(o, os.ErrDeadlineExceeded)
			}
		}
	}
}

// loopListener is a listener served by the loops: the listening socket
// (a duplicate, owned here) registered in every loop's set.
type loopListener struct {
	nl      *listener
	p       *Proxy
	fd      int
	open    atomic.Int64 // client connections held by the loops
	closing atomic.Bool
	// drainUntil: a listener handing over keeps its idle connections until
	// then (set before closing)
	drainUntil time.Time
	hand       *handoffListener
	regs       []*lreg
	// loops: those the listening socket is registered in (regs' loops,
	// readable from any loop while registration goes on), among which
	// loopFor picks.
	loops atomic.Pointer[[]*evloop]
}

// lreg is the registration of a listening socket in one loop.
type lreg struct {
	l  *evloop
	ll *loopListener
}

// serveWithLoops serves nl from the event loops, handing what they do not
// serve to nl.srv over a handoff listener. It reports false (nothing done)
// when the loops cannot run.
func (p *Proxy) serveWithLoops(nl *listener) bool {
	tl, ok := nl.ln.(*net.TCPListener)
	if !ok || p.startLoops() != nil {
		return false
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	if err != nil || fd < 0 {
		return false
	}
	unix.CloseOnExec(fd)
	// As nginx's `listen … deferred`: the kernel hands over a connection
	// once its first bytes have come (or after about a second without),
	// so the loop reads the request at once instead of waiting for it.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	// The socket stays open on the duplicate: closing Go's descriptor takes
	// it out of the runtime's netpoller, which a new connection would
	// otherwise wake (a thread woken for nothing per connection).
	tl.Close()
	ll := &loopListener{nl: nl, p: p, fd: fd, hand: newHandoffListener(nl.ln.Addr())}
	ll.loops.Store(&[]*evloop{})
	for _, l := range p.loops.ls {
		r := &lreg{l: l, ll: ll}
		l.call(func() {
			if err := l.add(fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, r); err != nil {
				p.log.Warn("event loop: registering a listener", "addr", nl.addr, "err", err)
				return
			}
			ll.regs = append(ll.regs, r)
			loops := append(slices.Clip(*ll.loops.Load()), l)
			ll.loops.Store(&loops)
		})
	}
	nl.loop = ll
	return true
}

// stopAccepting takes the listening socket out of every loop and closes
// it; idle connections close, busy ones after their answer.
func (ll *loopListener) stopAccepting(drain time.Duration) {
	if ll.closing.Load() {
		return
	}
	if drain > 0 {
		// Read by the loops once they see closing.
		ll.drainUntil = time.Now().Add(drain)
	}
	if ll.closing.Swap(true) {
		return
	}
	for _, r := range ll.regs {
		r.l.call(func() {
			r.drop()
			for _, o := range r.l.ents {
				c, ok := o.(*cconn)
				if !ok || c.ll != ll {
					continue
				}
				if drain > 0 {
					// A hand-over: the next request's answer closes the
					// connection (readRequest); an idle one closes when
					// the drain ends (next for a busy one).
					if c.state == csHead && len(c.in) == 0 && c.outLen() == 0 && (c.deadline.IsZero() || c.deadline.After(ll.drainUntil)) {
						c.deadline = ll.drainUntil
					}
					continue
				}
				c.closeAfter = true
				if c.state == csHead && len(c.in) == 0 && c.outLen() == 0 {
					c.close()
				}
			}
		})
	}
	unix.Close(ll.fd)
	if drain == 0 {
		// With a drain the loops may still hand requests to the server
		// (a large body, an upgrade): the listener's shutdown closes it
		// once the loops hold no connection.
		ll.hand.Close()
	}
}

// closeHand ends the hand-offs to the server (after a drain).
func (ll *loopListener) closeHand() { ll.hand.Close() }

// socket is the listening socket's descriptor.
func (ll *loopListener) socket() int { return ll.fd }

// wait waits for the loops' connections of ll to end, until ctx ends.
func (ll *loopListener) wait(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for ll.open.Load() > 0 || ll.hand.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// forceClose closes the loops' connections of ll.
func (ll *loopListener) forceClose() {
	for _, r := range ll.regs {
		r.l.call(func() {
			for _, o := range r.l.ents {
				if c, ok := o.(*cconn); ok && c.ll == ll {
					c.close()
				}
			}
		})
	}
}

func (r *lreg) drop() {
	if r.l.ents[r.ll.fd] == fdOwner(r) {
		unix.EpollCtl(r.l.epfd, unix.EPOLL_CTL_DEL, r.ll.fd, nil)
		r.l.ents[r.ll.fd] = nil
	}
}

// event accepts what is waiting (level-triggered; EPOLLEXCLUSIVE wakes one
// loop of those waiting).
func (r *lreg) event(uint32) {
	l, ll := r.l, r.ll
	// Up to loopAcceptBatch at a time (nginx's multi_accept, bounded so the
	// other events get their turn): the level-triggered set reports the
	// listener again while more wait, but one accept per wait left a burst
	// of new connections queued behind whole passes over the loop's other
	// events.
	for range loopAcceptBatch {
		if ll.closing.Load() {
			// Leave what waits to whoever serves the socket next (the
			// next proxy, after a restart), or to the close.
			return
		}
		fd, ip, err := rawAccept(ll.fd)
		switch err {
		case nil:
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
			return
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Out of descriptors or memory: the level-triggered listener
			// would report the waiting connections again at once. It
			// leaves this loop's set until the next sweep (a second), with
			// one warning, while connections end.
			l.p.log.Warn("accepting a connection: paused for a second", "listener", ll.nl.name, "err", err)
			r.drop()
			l.paused = append(l.paused, r)
			return
		default:
			return
		}
		if fd >= descriptorCaps().accept {
			// The descriptors left are the proxy's own (fdbudget.go).
			unix.Close(fd)
			warnOutOfResources(l.p.log, "accepting a connection: paused for a second", errTooManyConns)
			r.drop()
			l.paused = append(l.paused, r)
			return
		}
		release, ok := ll.nl.clients.admit(ip)
		if !ok {
			// The client holds max_client_conns (clientconns.go).
			rawClose(fd)
			continue
		}
		ll.open.Add(1)
		if ll.nl.tls.Load() == nil { // TLS goes to the server at once
			if to := ll.loopFor(l); to != l {
				to.conns.Add(1)
				if to.do(func() { to.adopt(fd, ip, ll, release) }) {
					continue
				}
				to.conns.Add(-1) // it has stopped
			}
		}
		l.conns.Add(1)
		l.adopt(fd, ip, ll, release)
	}
}

// loopFor picks the loop that serves a connection accepted by l: l, unless
// it holds more connections than the least busy loop by more than an
// eighth (and one); then that loop, through its command queue. The
// listener wakes whichever loop is waiting, which gives one loop most of a
// burst of connections (26 of wrk's 32 in the benchmark): kept alive, they
// would keep that loop busy and leave the other idle for as long as they
// last.
func (ll *loopListener) loopFor(l *evloop) *evloop {
	least, n := l, l.conns.Load()
	for _, o := range *ll.loops.Load() {
		if m := o.conns.Load(); m < n && !o.stopped.Load() {
			least, n = o, m
		}
	}
	if l.conns.Load() <= n+1+n/8 {
		return l
	}
	return least
}

// adopt serves a connection accepted for this loop (counted in l.conns
// and ll.open, and by its client unless release is nil: called when it
// closes).
func (l *evloop) adopt(fd int, ip netip.Addr, ll *loopListener, release func()) {
	if l.stopped.Load() {
		// Handed over by another loop that has stopped.
		unix.Close(fd)
		ll.open.Add(-1)
		l.conns.Add(-1)
		if release != nil {
			release()
		}
		return
	}
	c := l.newConn()
	// Accepted (or handed over by another loop) as the listener began to
	// close, after stopAccepting marked the connections the loops held:
	// its request is answered (with Connection: close) and then it closes.
	c.l, c.ll, c.fd, c.ip, c.deadline = l, ll, fd, ip, l.now.Add(ll.nl.limits.readHeader())
	c.release = release
	if ll.nl.tls.Load() != nil {
		c.handoff() // TLS: the server's
		return
	}
	if err := l.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, c); err != nil {
		c.close()
		return
	}
	// Accepted deferred, its request is most likely here: read it now
	// rather than after another wait (a read that finds nothing only
	// costs an EAGAIN; the set reports the bytes when they come).
	c.readable, c.writable = true, true
	c.advance()
}

// rawAccept accepts a connection (non-blocking, close-on-exec) as a raw
// system call, and returns the client's IP.
func rawAccept(lfd int) (int, netip.Addr, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.Addr{}, e
	}
	var ip netip.Addr
	switch rsa.Addr.Family {
	case unix.AF_INET:
		ip = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa)).Addr)
	case unix.AF_INET6:
		ip = netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa)).Addr).Unmap()
	}
	return int(r), ip, nil
}

// rawClose closes a socket as a raw system call (no linger: it does not
// block).
func rawClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

type cstate uint8

const (
	csHead    cstate = iota // reading a request
	csWait                  // sending it to the target, waiting for the answer's head
	csBody                  // relaying the answer's body
	csClosing               // writing what is left, then closing
	csLinger                // refused: half-closed, reading and dropping what the client still sends
)

// cconn is a client connection held by a loop.
type cconn struct {
	l     *evloop
	ll    *loopListener
	fd    int
	ip    netip.Addr
	state cstate
	// release gives back the client's count (max_client_conns) when
	// the socket closes, or goes with it to the server (handoff).
	release func()

	readable, writable, hup bool
	in                      []byte // bytes read, not yet used
	out                     []byte // bytes to write from outOff
	outOff                  int
	deadline                time.Time // zero: none
	closeAfter              bool
	nodelay                 bool
	// refused: the answer refuses the client's request (refuseHead), so
	// the close lingers (linger); lingered counts the bytes dropped since.
	refused  bool
	lingered int

	// the exchange in progress
	up      *upc
	rt      *route
	fw      *forward
	t       *target
	start   time.Time
	req     []byte // head and small body as sent, kept to send again
	reqOff  int
	replay  bool // no body and a safe method: may be sent again
	resent  int  // times sent again after a reused connection failed
	retried bool // sent to another target after a dial failure
	isHead  bool
	interim int
	status  int
	// held: the client did not take the answer as it came (a write to it
	// would have blocked, for heldFor or longer: not a moment's
	// backpressure), so the loop held off reading the target; holding: it
	// does now (since holdFrom), and the deadline is the client's
	// (idle_timeout), not the target's (target_timeout).
	held, holding bool
	holdFrom      time.Time
	// A request whose small body is still to come (readBody): its head
	// is c.in[:headLen], its body ends at bodyEnd (0: none is waited
	// for), and the head was whole at bodyFrom.
	headLen, bodyEnd int
	bodyFrom         time.Time
	scanned          int // the part of c.in known to hold no head's end
	frame            framing
	remain           int64
	chunks           chunkScanner
	upReuse          bool
}

func (c *cconn) outLen() int { return len(c.out) - c.outOff }

// noDelay turns Nagle's algorithm off on c, once: when its connection is
// kept alive or a body streams (a connection used for one whole answer,
// the most common kind, is spared the system call).
func (c *cconn) noDelay() {
	if !c.nodelay {
		c.nodelay = true
		unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
}

func (c *cconn) event(ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.readable = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.writable = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hup = true
	}
	c.advance()
}

// advance moves c on as far as its sockets allow.
func (c *cconn) advance() {
	for c.fd >= 0 {
		before := c.state
		switch c.state {
		case csHead:
			if !c.flush() {
				return
			}
			c.slim() // the tail of an answer the client took late
			if c.closeAfter && len(c.in) == 0 {
				c.close() // its listener is closing
				return
			}
			c.readRequest()
		case csWait, csBody:
			if c.state == csWait && c.hup {
				// The client hung up while the target worked: as nginx
				// counts it, not the target's fault.
				c.status = 499
				if c.up != nil {
					c.up.abort()
				}
				c.fail()
				return
			}
			c.pump()
		case csClosing:
			if c.flush() {
				if c.refused {
					c.linger()
					return
				}
				c.close()
			}
			return
		case csLinger:
			c.drop()
			return
		}
		if c.state == before || c.state != csHead {
			return
		}
	}
}

// flush writes what is waiting for the client; it reports whether all of
// it went (false: wait, or c was closed).
func (c *cconn) flush() bool {
	for c.outLen() > 0 {
		if !c.writable {
			return false
		}
		n, err := rawWrite(c.fd, c.out[c.outOff:])
		if err != nil && err != unix.EAGAIN {
			c.fail()
			return false
		}
		c.outOff += n
		if c.outLen() > 0 {
			// The client is not taking its answer: it has idle_timeout to
			// start again, as a keep-alive connection has to send its next
			// request (nginx's send_timeout).
			c.writable = false
			if !c.holding {
				c.holdFrom = c.l.now
			}
			if c.state != csHead && (!c.holding || n > 0) {
				c.deadline = c.l.now.Add(c.ll.nl.limits.idle())
			}
			c.holding = c.state != csHead
			return false
		}
	}
	c.out, c.outOff = c.out[:0], 0
	if c.holding {
		c.held = c.heldUp()
		c.holding = false
		if c.state == csBody {
			// The client took what it held up: the target's clock again.
			c.deadline = c.l.now.Add(c.ll.nl.limits.target())
		}
	}
	return true
}

// heldUp reports whether the client has held this answer up: for heldFor
// or longer, once or now.
func (c *cconn) heldUp() bool {
	return c.held || c.holding && c.state == csBody && c.l.now.Sub(c.holdFrom) >= heldFor
}

// fail counts c's exchange (if any) and closes c.
func (c *cconn) fail() {
	c.end()
	c.close()
}

// readRequest reads until a request head is whole, then starts it.
func (c *cconn) readRequest() {
	if c.bodyEnd > 0 {
		c.readBody()
		return
	}
	maxHead := c.ll.nl.limits.maxHeader()
	// Where the last read's scan stopped: a head sent a byte a segment is
	// scanned once, not from its start at every read (32 KiB, the default
	// bound, would be 512 MiB scanned).
	scanned := min(c.scanned, len(c.in))
	c.scanned = 0
	for {
		if i := bytes.Index(c.in[scanned:], crlf2); i >= 0 {
			if scanned+i+4 > maxHead {
				c.tooBig(maxHead)
				return
			}
			c.startRequest(scanned + i + 4)
			return
		}
		if bareLFEnd(c.in[scanned:]) {
			c.refuseHead(fasthttp.StatusBadRequest, bareLFMessage)
			return
		}
		scanned = max(0, len(c.in)-3)
		if len(c.in) >= maxHead {
			c.tooBig(maxHead)
			return
		}
		if !c.readable {
			c.scanned = scanned
			if c.hup && len(c.in) == 0 {
				c.close()
			}
			return
		}
		if cap(c.in)-len(c.in) < 1024 {
			c.in = slices.Grow(c.in, max(4<<10, cap(c.in)))
		}
		free := c.in[len(c.in):cap(c.in)]
		n, err := rawRead(c.fd, free)
		if err == unix.EAGAIN {
			c.readable = false
			continue
		}
		if err != nil || n == 0 {
			c.close()
			return
		}
		if len(c.in) == 0 {
			c.deadline = c.l.now.Add(c.ll.nl.limits.readHeader())
		}
		c.in = c.in[:len(c.in)+n]
		if n < len(free) && !c.hup {
			c.readable = false // as the target's (pump)
		}
	}
}

// tooBig answers a head over max_header_bytes: 414 when its request line
// alone is (as nginx answers), else 431 (the server's answer).
func (c *cconn) tooBig(maxHead int) {
	if bytes.IndexByte(c.in[:min(len(c.in), maxHead)], '\n') < 0 {
		c.refuseHead(fasthttp.StatusRequestURITooLong, requestLineTooLong)
		return
	}
	c.handoff()
}

// startRequest takes the request whose head is c.in[:hl] on the fast path,
// or hands the connection to the server.
func (c *cconn) startRequest(hl int) {
	l := c.l
	h := &l.reqH
	h.Reset()
	l.src.b = c.in[:hl]
	l.br.Reset(&l.src)
	// The parser must end the head where the loop did (CRLF CRLF): a head of
	// bare LF lines ends earlier, and what follows it is the parser's body.
	if err := h.Read(l.br); err != nil || l.br.Buffered() > 0 || len(l.src.b) > 0 ||
		!h.IsHTTP11() || h.IsConnect() || h.ConnectionUpgrade() ||
		len(h.RequestURI()) == 0 || h.RequestURI()[0] != '/' || // absolute form and "*" go to the server
		len(h.Peek("Upgrade")) > 0 || len(h.Peek("Expect")) > 0 || refused(h) {
		c.handoff()
		return
	}
	cl := h.ContentLength()
	if cl == -1 || cl > smallBody || c.ll.nl.limits.body().over(int64(cl)) {
		c.handoff() // the server path streams it, or refuses it (413)
		return
	}
	cl = max(cl, 0)
	if len(c.in) < hl+cl {
		// The body is still to come: in the socket already (the read that
		// brought the head filled the buffer: a 6 KiB POST in one
		// segment, read 4 KiB at a time), or on its way (a client that
		// writes its head and its body apart: Go's client writes a 6 KiB
		// POST as 4 KiB, then the rest). It is read
		// here, and the request started again once it is whole.
		c.headLen, c.bodyEnd = hl, hl+cl
		c.bodyFrom = l.now
		c.deadline = c.ll.nl.limits.body().deadline(c.bodyFrom, int64(len(c.in)-hl))
		c.readBody()
		return
	}
	if len(c.in) != hl+cl {
		c.handoff() // a request follows
		return
	}
	lr := l.p.snap.Load().byAddr[c.ll.nl.addr]
	if lr == nil || lr.redirectPort != 0 {
		c.handoff()
		return
	}
	l.uri.Reset()
	if err := l.uri.Parse(h.Host(), h.RequestURI()); err != nil {
		c.handoff()
		return
	}
	rt := lr.match(h.Host(), l.uri.Path())
	if rt == nil {
		c.handoff()
		return
	}
	fw, t := rt.pick(nil)
	if t == nil {
		c.handoff() // 503, counted there
		return
	}
	if !l.addressable(t) {
		c.handoff()
		return
	}
	t.inFlight.Add(1)
	// No deadline while the target connects (the dial has its own), nor
	// while it takes the request at once; target_timeout from its last
	// progress if it takes it slowly (takingSlowly), and for its answer
	// once it has it whole (pump).
	c.state, c.deadline = csWait, time.Time{}
	c.rt, c.fw, c.t = rt, fw, t
	c.start = time.Now()
	c.status, c.interim, c.resent, c.retried, c.held, c.holding = 0, 0, 0, false, false, false
	c.isHead = h.IsHead()
	c.closeAfter = c.closeAfter || h.ConnectionClose() || c.ll.closing.Load()
	c.replay = cl == 0 && isIdempotent(h.Method())
	c.req = appendRequestHead(c.req[:0], h, nil, false, c.ip, trusts(lr.trusted, c.ip), false)
	c.req = append(c.req, c.in[hl:hl+cl]...)
	c.in = c.in[:0]
	c.send()
}

// readBody reads a small body that did not come whole with its head, up
// to its end exactly (bytes after it, a pipelined request, stay in the
// socket for the next request), at the body's pace: body_idle_timeout
// since its last bytes, body_min_rate since the head, then 408 (timedOut).
// The head is parsed again, once, when the body is whole (not at every
// read: a body sent a byte a segment would have it parsed thousands of
// times); the target is picked then, so a slow sender holds none.
func (c *cconn) readBody() {
	got := len(c.in)
	c.in = slices.Grow(c.in, c.bodyEnd-len(c.in))
	for len(c.in) < c.bodyEnd && c.readable {
		n, err := rawRead(c.fd, c.in[len(c.in):c.bodyEnd])
		if err == unix.EAGAIN {
			c.readable = false
			break
		}
		if err != nil || n == 0 {
			c.handoff() // cut short: the server path answers it, as before
			return
		}
		c.in = c.in[:len(c.in)+n]
	}
	if len(c.in) == c.bodyEnd {
		hl := c.headLen
		c.headLen, c.bodyEnd, c.bodyFrom = 0, 0, time.Time{}
		c.startRequest(hl)
		return
	}
	if c.hup {
		c.handoff()
		return
	}
	if len(c.in) > got {
		c.deadline = c.ll.nl.limits.body().deadline(c.bodyFrom, int64(len(c.in)-c.headLen))
	}
}

// addressable says whether the loop can dial t: its address is an IP
// address and port (the server path dials any other).
func (l *evloop) addressable(t *target) bool {
	_, ok := l.sockaddr(t.addr)
	return ok
}

// sockaddr parses a target's address once; only IP:port is served here
// (a name would need a resolver: the server's path dials those).
func (l *evloop) sockaddr(addr string) (unix.Sockaddr, bool) {
	if sa, ok := l.addrs[addr]; ok {
		return sa, sa != nil
	}
	var sa unix.Sockaddr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		if a := ap.Addr().Unmap(); a.Is4() {
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
		} else {
			sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
		}
	}
	if len(l.addrs) > 4096 {
		clear(l.addrs)
	}
	l.addrs[addr] = sa
	return sa, sa != nil
}

// send gives the request to a connection to c.t: an idle one, or a new one.
func (c *cconn) send() {
	l := c.l
	c.reqOff = 0
	var u *upc
	if c.resent == 0 {
		u = l.takeIdle(c.t.addr, !c.replay)
	}
	if u == nil {
		var err error
		if u, err = l.dial(c.t.addr); err != nil {
			if outOfResources(err) {
				c.unavailable(err)
				return
			}
			c.dialFailed(nil, err)
			return
		}
	}
	u.owner, c.up = c, u
	c.pump()
}

// dialFailed tries another target once, then answers 502.
func (c *cconn) dialFailed(u *upc, err error) {
	if u != nil {
		u.close()
		c.up = nil
	}
	c.l.p.log.Debug("forwarding failed", "group", c.t.group.name, "target", c.t.id, "addr", c.t.addr, "err", err)
	if !c.retried {
		c.retried = true
		if fw, t := c.rt.reroute(c.fw, c.t, c.l.addressable); t != nil {
			c.fw, c.t = fw, t
			c.send()
			return
		}
	}
	c.badGateway()
}

// unavailable answers 503 when no socket could be had for the target: the
// proxy's shortage, counted against no group (see outOfResources). The
// answer is the hand-off's (unavailableAnswer: Retry-After, and the
// connection closed, which gives a descriptor back).
func (c *cconn) unavailable(err error) {
	warnOutOfResources(c.l.p.log, "forwarding a request", err)
	c.status = 0
	c.closeAfter = true
	c.out = append(c.out, unavailableAnswer...)
	c.end()
	c.l.p.loops.served.Add(1)
	c.next()
}

// badGateway answers 502 for a target that failed before any byte of an
// answer went to the client.
func (c *cconn) badGateway() {
	if c.up != nil {
		c.up.close()
		c.up = nil
	}
	c.status = fasthttp.StatusBadGateway
	c.closeAfter = c.closeAfter || c.ll.closing.Load()
	c.out = appendPlainAnswer(c.out, fasthttp.StatusBadGateway, badGatewayMessage(c.t.group.name), c.closeAfter)
	c.end()
	c.l.p.loops.served.Add(1)
	c.next()
}

// appendPlainAnswer appends a text/plain answer made here.
func appendPlainAnswer(dst []byte, status int, msg string, closing bool) []byte {
	dst = strconv.AppendInt(append(dst, "HTTP/1.1 "...), int64(status), 10)
	dst = append(append(append(dst, ' '), fasthttp.StatusMessage(status)...), "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	dst = append(strconv.AppendInt(dst, int64(len(msg)), 10), "\r\n"...)
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(append(dst, "\r\n"...), msg...)
}

// takingSlowly notes that the target did not take all of the request at
// once (n bytes this time): it has target_timeout to take the rest,
// counted from its last progress, then the client gets a 504 counted
// against its group (timedOut), as the server path's write deadline
// does. Without it, a target that stopped reading held the client and
// the connection for good.
func (c *cconn) takingSlowly(n int) {
	if n > 0 || c.deadline.IsZero() {
		c.deadline = c.l.now.Add(c.ll.nl.limits.target())
	}
}

// pump sends the request and relays the answer as far as the sockets allow.
func (c *cconn) pump() {
	u := c.up
	if u.connecting {
		if !u.writable {
			return
		}
		if errno, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || errno != 0 {
			if err == nil {
				err = unix.Errno(errno)
			}
			c.dialFailed(u, &dialError{err})
			return
		}
		u.connecting = false
	}
	for c.reqOff < len(c.req) {
		if !u.writable {
			return
		}
		n, err := rawWrite(u.fd, c.req[c.reqOff:])
		if err == unix.EAGAIN {
			u.writable = false
			c.takingSlowly(0)
			return
		}
		if err != nil {
			c.upFailed(err)
			return
		}
		c.reqOff += n
		if c.reqOff < len(c.req) {
			u.writable = false
			c.takingSlowly(n)
		} else {
			// Sent whole: the target has target_timeout for its answer's
			// head (interim answers included), as on the server path.
			c.deadline = c.l.now.Add(c.ll.nl.limits.target())
		}
	}
	budget := loopTurn
	for c.up == u {
		if c.state == csWait {
			if data := u.in[u.rpos:]; len(data) > 0 {
				if end := answerHeadEnd(data); end > 0 {
					if end > upReadBuffer {
						c.upFailed(errors.New("the answer's head is too large"))
						return
					}
					if !c.answerHead(end) {
						return
					}
					continue
				}
				if len(data) >= upReadBuffer {
					c.upFailed(errors.New("the answer's head is too large"))
					return
				}
			}
		} else {
			if budget -= len(u.in) - u.rpos; budget < 0 {
				// A fast target and a fast client could keep the loop on
				// this body for ever: the others' turn first (their events
				// are waiting), then on from here (edge-triggered, no new
				// event would say so).
				c.l.resume = append(c.l.resume, c)
				return
			}
			// What the target sent goes out with the head in one write.
			moved := c.moveBody()
			if c.state != csBody {
				return
			}
			// The body takes more than one write: Nagle's algorithm would
			// hold a short last one until the client acknowledges the one
			// before (up to its delayed-ACK time).
			c.noDelay()
			if !c.flush() {
				return
			}
			if moved || u.rpos < len(u.in) {
				continue // the target is read only once what it sent is out
			}
		}
		// More from the target.
		if !u.readable {
			return
		}
		if u.rpos == len(u.in) {
			u.in, u.rpos = u.in[:0], 0
		} else if cap(u.in)-len(u.in) < 1024 {
			u.in = append(u.in[:0], u.in[u.rpos:]...)
			u.rpos = 0
		}
		if cap(u.in)-len(u.in) < 1024 {
			u.in = append(u.in, make([]byte, loopReadSize)...)[:len(u.in)]
		}
		free := u.in[len(u.in):cap(u.in)]
		n, err := rawRead(u.fd, free)
		if err == unix.EAGAIN {
			u.readable = false
			return
		}
		if err != nil || n == 0 {
			c.upEnded(err)
			return
		}
		u.in = u.in[:len(u.in)+n]
		u.got = true
		if c.state == csBody {
			// The body goes on: target_timeout until its next bytes (the
			// target is read only when the client holds nothing up).
			c.deadline = c.l.now.Add(c.ll.nl.limits.target())
		}
		if n < len(free) && !u.hup {
			// A short read emptied the socket: edge-triggered, the next
			// bytes are reported anew. (Not its end, if that was reported
			// with these bytes: it would not be again.)
			u.readable = false
		}
	}
}

// upFailed handles a target connection that failed before the answer's
// head was whole: sent again on another connection when it was a reused
// one and the request may be repeated, else a 502.
func (c *cconn) upFailed(err error) {
	u := c.up
	if c.state == csWait && u.reused && !u.got && c.replay && c.resent == 0 {
		// The target closed the connection while it was idle (or took the
		// request and closed without an answer: a request that kills its
		// target must not go to it once per idle connection): sent again
		// once, on a new connection.
		c.resent++
		u.close()
		c.up = nil
		c.send()
		return
	}
	if c.state == csBody {
		c.l.p.log.Debug("answer cut", "group", c.t.group.name, "target", c.t.id, "err", err)
		if c.status < 500 && !c.heldUp() {
			// The client got a cut answer: the target's 502, as on the
			// server path; unless the client held the answer up (a
			// target's own send timeout then cuts it: not its failure).
			c.status = fasthttp.StatusBadGateway
		}
		c.end()
		c.closeAfter = true
		c.state = csClosing
		c.advance()
		return
	}
	c.l.p.log.Debug("forwarding failed", "group", c.t.group.name, "target", c.t.id, "addr", c.t.addr, "err", err)
	c.badGateway()
}

// upEnded handles the target's end of the connection (or its failure).
func (c *cconn) upEnded(err error) {
	if err == nil && c.state == csBody && c.frame == frameClose {
		c.out = append(c.out, "0\r\n\r\n"...)
		c.upReuse = false
		c.finish()
		return
	}
	if err == nil {
		err = errors.New("the target closed the connection")
	}
	c.upFailed(err)
}

// answerHead takes the answer head u.in[rpos:rpos+hl]; it reports whether
// the exchange goes on on this connection.
func (c *cconn) answerHead(hl int) bool {
	l, u := c.l, c.up
	rh := &l.respH
	rh.Reset()
	rh.SetNoDefaultContentType(true)
	raw := u.in[u.rpos : u.rpos+hl]
	if err := noStatus(raw); err != nil {
		c.upFailed(err)
		return false
	}
	src := raw
	if !bytes.HasSuffix(raw, crlf2) {
		// Its lines end in bare LFs: parsed, and passed on, with CRLFs.
		l.lfHead = crlfLines(l.lfHead[:0], raw)
		src = l.lfHead
	}
	l.src.b = src
	l.br.Reset(&l.src)
	if err := rh.Read(l.br); err != nil {
		c.upFailed(err)
		return false
	}
	if len(src) == len(raw) {
		// A head with bare LF lines may end before the CRLF CRLF found:
		// the body starts where the parser stopped.
		hl -= l.br.Buffered() + len(l.src.b)
		raw = raw[:hl]
	} else {
		raw = src
	}
	u.rpos += hl
	sc := rh.StatusCode()
	if sc < 200 && sc != fasthttp.StatusSwitchingProtocols {
		if c.interim >= 5 {
			c.upFailed(errors.New("the target sent too many interim answers"))
			return false
		}
		c.interim++
		if sc == fasthttp.StatusEarlyHints {
			c.out = appendEarlyHints(c.out, rh)
		}
		if !c.deadline.IsZero() && !c.holding {
			// The target spoke: target_timeout is the wait between its
			// reads (nginx's proxy_read_timeout), for the final head too.
			c.deadline = c.l.now.Add(c.ll.nl.limits.target())
		}
		return true
	}
	if sc == fasthttp.StatusSwitchingProtocols {
		c.upFailed(errors.New("the target switched protocols unasked"))
		return false
	}
	c.status = sc
	// The connection to the target is not the client's: its close and
	// keep-alive settings stay here.
	c.upReuse = !rh.ConnectionClose()
	c.frame, c.remain = answerFraming(rh, c.isHead)
	switch c.frame {
	case frameChunked:
		c.chunks.reset()
	case frameClose:
		c.upReuse = false
	}
	if c.ll.closing.Load() {
		c.closeAfter = true // handing over: the client's next request goes to the next proxy
	}
	c.out = appendResponseHead(c.out, raw, rh, c.frame.chunked(), c.closeAfter)
	c.state = csBody
	return true
}

// moveBody moves body bytes from the target's buffer to the client's; it
// reports whether it moved any. At the body's end it finishes the exchange.
func (c *cconn) moveBody() bool {
	u := c.up
	data := u.in[u.rpos:]
	// Early hints held with the head may pass the limit by themselves
	// (up to 5 heads of max_header_bytes): then no room, until written.
	room := max(0, loopOutLimit-c.outLen())
	if len(data) > room {
		data = data[:room]
	}
	moved := 0
	switch c.frame {
	case frameNone:
	case frameFixed:
		moved = int(min(int64(len(data)), c.remain))
		c.out = append(c.out, data[:moved]...)
		c.remain -= int64(moved)
	case frameChunked:
		n, done, err := c.chunks.scan(data)
		if err != nil {
			c.upFailed(err)
			return false
		}
		moved = n
		c.out = append(c.out, data[:n]...)
		if done {
			c.remain = 0
		} else {
			c.remain = 1
		}
	case frameClose:
		if len(data) > 0 {
			c.out = strconv.AppendInt(c.out, int64(len(data)), 16)
			c.out = append(append(append(c.out, '\r', '\n'), data...), '\r', '\n')
			moved = len(data)
		}
		u.rpos += moved
		return moved > 0
	}
	u.rpos += moved
	if c.frame == frameNone || c.remain == 0 {
		c.finish()
		return false
	}
	return moved > 0
}

// finish ends the exchange after the whole answer: the target connection
// goes back to the pool, the client's waits for its next request.
func (c *cconn) finish() {
	u := c.up
	c.up = nil
	reuse := c.upReuse && u.rpos == len(u.in) // anything more is a target's mistake
	c.l.release(u, reuse)
	c.end()
	c.l.p.loops.served.Add(1)
	c.next()
}

// end counts the exchange and releases its target.
func (c *cconn) end() {
	if c.t == nil {
		return
	}
	if c.up != nil {
		c.up.close()
		c.up = nil
	}
	if c.status != 0 {
		c.fw.record(c.status, time.Since(c.start))
	}
	c.t.inFlight.Add(-1)
	c.t, c.fw, c.rt = nil, nil, nil
}

// next readies c for its next request, or its end.
func (c *cconn) next() {
	closing := c.ll.closing.Load()
	if c.closeAfter || closing && c.ll.drainUntil.IsZero() {
		c.state = csClosing
		c.advance()
		return
	}
	c.state, c.holding = csHead, false
	c.deadline = c.l.now.Add(c.ll.nl.limits.idle())
	if closing && c.outLen() == 0 && c.deadline.After(c.ll.drainUntil) {
		// Handing over: kept for the drain only (one still sending its
		// answer to a slow reader keeps the idle time, within the grace).
		c.deadline = c.ll.drainUntil
	}
	c.noDelay() // kept alive: as nginx's tcp_nodelay
	c.hup = false
	if c.flush() {
		c.slim()
	}
}

// slim lets go of c's buffers over loopKeepBuf once its exchange is over
// and its answer sent (what it read of a next request is kept).
func (c *cconn) slim() {
	if c.fd < 0 {
		return // recycled
	}
	c.out, c.req = keepBuf(c.out), keepBuf(c.req)
	if len(c.in) == 0 {
		c.in = keepBuf(c.in)
	}
}

// timedOut ends a connection whose deadline passed: a request head that
// did not come whole in time is answered 408; an idle one just closes; one
// whose client does not take its answer is reset; one whose target does
// not answer (or go on with its answer) gets 504, or its answer is cut.
func (c *cconn) timedOut() {
	// In csWait, c.out holds only Early Hints kept for the final head.
	if c.state == csWait || c.state == csBody && c.outLen() == 0 {
		c.targetTimedOut()
		return
	}
	if c.outLen() > 0 {
		// A client that stopped reading: reset rather than close, so the
		// kernel drops what it still holds for it (up to megabytes) at once.
		unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		c.close()
		return
	}
	if c.state == csHead && len(c.in) > 0 {
		c.refuseHead(fasthttp.StatusRequestTimeout, "cutover: request timed out\n")
		return
	}
	c.close()
}

// refuseHead answers a request head the client botched and closes c,
// lingering.
func (c *cconn) refuseHead(status int, msg string) {
	c.ll.nl.clients.refusedRequest(status, msg, c.ip)
	c.in = c.in[:0]
	c.out = appendPlainAnswer(c.out, status, msg, true)
	c.state, c.deadline, c.refused = csClosing, c.l.now.Add(closeFlushWait), true
	c.advance()
}

// linger closes a refused connection as the server path does
// (lingerOnClose) and nginx's lingering close: its answer written, c is
// half-closed and what the client still sends (the rest of a body it was
// writing when refused) is read and dropped, for lingerTime or lingerLimit
// at most, before the socket closes. Closed with those bytes unread, the
// connection was reset, and a client still writing got "connection reset
// by peer" instead of the answer.
func (c *cconn) linger() {
	if unix.Shutdown(c.fd, unix.SHUT_WR) != nil {
		c.close()
		return
	}
	c.state, c.deadline = csLinger, c.l.now.Add(lingerTime)
	c.readable = true // edge-triggered: what came before is read now
	c.drop()
}

// drop reads and drops what a lingering client sends; its end, an error
// or lingerLimit closes c. A client that floods gets loopTurn bytes a turn,
// as an answer does (pump), then the others' events come first.
func (c *cconn) drop() {
	budget := loopTurn
	for c.readable {
		if budget <= 0 {
			c.l.resume = append(c.l.resume, c)
			return
		}
		buf := c.in[:cap(c.in)]
		if len(buf) < 4<<10 {
			c.in = make([]byte, 0, 4<<10)
			buf = c.in[:cap(c.in)]
		}
		n, err := rawRead(c.fd, buf)
		switch {
		case err == unix.EAGAIN:
			c.readable = false
		case err != nil || n == 0:
			c.close()
			return
		default:
			budget -= n
			if c.lingered += n; c.lingered >= lingerLimit {
				c.close()
				return
			}
		}
	}
}

// targetTimedOut ends an exchange whose target sent nothing for the
// listener's target_timeout: 504 if no answer has begun, else the answer
// is cut; counted against the target's group either way (a release whose
// handler hangs shows in its error rate). The target's connection is reset.
func (c *cconn) targetTimedOut() {
	wait := c.ll.nl.limits.target()
	c.l.p.log.Debug("target timed out", "group", c.t.group.name, "target", c.t.id, "addr", c.t.addr, "after", wait)
	if c.up != nil {
		c.up.abort()
	}
	c.status = fasthttp.StatusGatewayTimeout
	if c.state == csBody {
		c.end()
		c.closeAfter = true
		c.state = csClosing
		c.advance()
		return
	}
	c.closeAfter = c.closeAfter || c.ll.closing.Load()
	c.out = appendPlainAnswer(c.out, fasthttp.StatusGatewayTimeout, gatewayTimeoutMessage(c.t.group.name, wait), c.closeAfter)
	c.end()
	c.l.p.loops.served.Add(1)
	c.next()
}

// close closes c's socket, ending any exchange uncounted.
func (c *cconn) close() {
	if c.fd < 0 {
		return
	}
	c.status = 0
	c.end()
	c.l.forget(c.fd)
	rawClose(c.fd)
	c.fd = -1
	c.ll.open.Add(-1)
	c.l.conns.Add(-1)
	if c.release != nil {
		c.release()
	}
	c.l.recycle(c)
}

// newConn returns a client connection's state, reused when one is free:
// a connection per request would otherwise make the collector run all the
// time.
func (l *evloop) newConn() *cconn {
	if n := len(l.free); n > 0 {
		c := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return c
	}
	return &cconn{}
}

// recycle keeps c (closed, its socket gone) and its buffers for another
// connection. Its callers may still look at it: fd -1 stops them.
func (l *evloop) recycle(c *cconn) {
	*c = cconn{fd: -1, in: keepBuf(c.in), out: keepBuf(c.out), req: keepBuf(c.req)}
	if len(l.free) < 1024 {
		l.free = append(l.free, c)
	}
}

// handoff gives the connection, with the bytes read from it, to the
// listener's fasthttp server.
func (c *cconn) handoff() {
	fd := c.fd
	if c.outLen() > 0 {
		// Not reached: requests are read only once answers are written.
		c.close()
		return
	}
	c.l.forget(fd)
	unix.EpollCtl(c.l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	c.fd = -1
	c.ll.open.Add(-1)
	c.l.conns.Add(-1)
	c.l.p.loops.handed.Add(1)
	c.ll.hand.pending.Add(1)
	go c.ll.hand.deliver(fd, bytes.Clone(c.in), c.release)
	c.l.recycle(c)
}

// upc is a connection to a target held by a loop.
type upc struct {
	l    *evloop
	fd   int
	addr string

	readable, writable bool
	hup                bool // the target's end was reported
	connecting         bool
	dialBy             time.Time
	reused             bool
	got                bool // bytes came for the current request
	in                 []byte
	rpos               int
	owner              *cconn
	idleAt             time.Time
}

// upGone: the events that end an idle target connection (bytes past its
// answer, or its end).
const upGone = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR

func (u *upc) event(ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		u.readable = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		u.hup = true // its end comes after what is left to read: read to it
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		u.writable = true
	}
	if u.owner != nil {
		u.owner.advance()
		return
	}
	if ev&upGone != 0 {
		// An idle connection the target closed (or wrote to): done with it.
		u.l.dropIdle(u)
		u.close()
	}
}

func (u *upc) close() {
	if u.fd < 0 {
		return
	}
	u.l.forget(u.fd)
	rawClose(u.fd)
	u.fd = -1
	if u.owner == nil {
		u.l.dropIdle(u)
	}
}

// abort makes the coming close of an abandoned exchange a reset: no
// TIME_WAIT on the proxy's side, or a client hanging up on every request
// would use up the local ports towards the target (and every later
// connect would fail) within a minute.
func (u *upc) abort() {
	if u.fd >= 0 {
		unix.SetsockoptLinger(u.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
}

// dial starts a connection to a target.
func (l *evloop) dial(addr string) (*upc, error) {
	sa, _ := l.sockaddr(addr)
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &dialError{os.NewSyscallError("socket", err)}
	}
	if err := overDialCap(fd); err != nil {
		unix.Close(fd)
		return nil, &dialError{err}
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	// TCP keep-alive probes, as the server path's dialer sets (30s): a
	// target host gone without a word (terminated mid-answer) is noticed.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 30)
	err = unix.Connect(fd, sa)
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, &dialError{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}}
	}
	u := &upc{l: l, fd: fd, addr: addr, connecting: err != nil, writable: err == nil, dialBy: l.now.Add(loopDialTimeout)}
	if err := l.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, u); err != nil {
		unix.Close(fd)
		return nil, &dialError{err}
	}
	return u, nil
}

// takeIdle returns an idle connection to addr, most recently used first.
// With check (a request that may not be sent again) it first looks at the
// socket: a close or bytes the target sent since its answer may already
// be there while the loop has not yet had the event, and a POST sent on
// that connection would get a 502 instead of a fresh connection.
func (l *evloop) takeIdle(addr string, check bool) *upc {
	list := l.idle[addr]
	for len(list) > 0 {
		u := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		l.idle[addr] = list
		if l.now.Sub(u.idleAt) < loopUpIdle && u.fd >= 0 && !(check && rawPeekGone(u.fd)) {
			u.reused, u.got = true, false
			return u
		}
		u.close()
	}
	return nil
}

// release keeps u for another request, or closes it.
func (l *evloop) release(u *upc, reuse bool) {
	u.owner = nil
	if !reuse || u.fd < 0 || u.hup || len(l.idle[u.addr]) >= loopMaxIdle {
		u.close()
		return
	}
	u.in, u.rpos, u.idleAt = u.in[:0], 0, l.now
	l.idle[u.addr] = append(l.idle[u.addr], u)
	if u.readable {
		// The target wrote (or closed) past its answer.
		u.close()
	}
}

// rawPeekGone is whether the idle connection fd is closed or holds bytes
// past its last answer, unusable either way: a non-blocking peek, as a raw
// system call.
func rawPeekGone(fd int) bool {
	var b [1]byte
	_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0:
		return true // bytes (r > 0), or the target's close (r == 0)
	case unix.EAGAIN, unix.EINTR:
		return false
	}
	return true
}

func (l *evloop) dropIdle(u *upc) {
	list := l.idle[u.addr]
	for i, x := range list {
		if x == u {
			l.idle[u.addr] = append(list[:i], list[i+1:]...)
			return
		}
	}
}
