package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn is a TCP connection whose reads and writes are raw system calls
// on its non-blocking socket, still parked on Go's netpoller when the socket
// is not ready (through syscall.RawConn, so deadlines and Close work as
// usual). Go's own Read and Write tell the scheduler a system call may
// block: when one takes longer than the monitor thread's tick (20 µs; a
// write on loopback wakes its reader and often does), the monitor hands the
// thread's P to another thread and the caller then waits for a P back, two
// thread wake-ups per slow call. A non-blocking socket call never blocks, so
// the proxy's calls keep their P. Measured: about 1.7 µs of CPU per proxied
// request went to that hand-off (the monitor's sleeps alone), of ~28.
//
// It can also defer a write to the next read (deferWrites): see there.
type rawConn struct {
	net.Conn // a *net.TCPConn
	rc       syscall.RawConn

	mu      sync.Mutex
	armed   bool      // small writes are kept for the next Read
	pending []byte    // written by the caller, not yet sent
	spare   []byte    // pending's buffer, for reuse
	wd      time.Time // the write deadline last set
	closed  bool
	// For a client's answer (deferAnswer):
	guarded   bool      // the armed writes' Read waits at most guardWait before it reads
	rd        time.Time // the read deadline the caller set
	shortened bool      // the socket's read deadline is the guard's, not rd
	pipelines bool      // the client sent before it had its answer: arm no more
	// stalled: a write waited heldFor or longer on a full socket (the
	// peer did not take what it was sent) since writeStalled last asked.
	stalled atomic.Bool
	floor   atomic.Int64 // a time.Duration: see floorWrites
	// linger: the proxy refused the client's request (lingerOnClose);
	// Close lingers.
	linger atomic.Bool
	// release (nil: none) gives back its client's count
	// (max_client_conns) when Close has closed the socket (after a
	// lingering close's wait); it acts once however often it is called.
	release func()
}

// deferLimit bounds the bytes an armed connection keeps unsent.
const deferLimit = 64 << 10

// guardWait bounds how long the Read of a client's deferred answer waits
// for the next request before it reads anyway (deferAnswer).
const guardWait = 50 * time.Millisecond

// closeFlushWait bounds how long Close waits to send deferred bytes a
// peer does not take (it has stopped reading).
const closeFlushWait = 5 * time.Second

// newRawConn wraps a TCP connection; any other is returned as it is.
func newRawConn(c net.Conn, release func()) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return releasing(c, release)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return releasing(c, release)
	}
	return &rawConn{Conn: c, rc: rc, release: release}
}

// deferWrites arms c, a connection the caller writes a message to and then
// reads the answer from, on the same goroutine: its writes (up to
// deferLimit bytes in all) are kept and sent by its next Read, from inside
// the netpoller's read call, which then parks without reading. Go reads a
// socket until it would block, so a read right after a write costs a system
// call that almost always finds nothing (the answer has not come yet): a
// proxied request made two of those, one per side. Done this way, the
// readiness the answer brings cannot be missed: the netpoller clears a
// socket's stale readiness when the read call starts, before the write, so
// whatever the peer sends after the write wakes the parked read.
//
// What arrived BEFORE the write would not (its readiness was cleared, and
// nothing reads it, and the read would wait for more): so only a
// connection whose peer sends nothing until it gets the message may be
// armed, a target between requests; a client, which may pipeline, only with
// deferAnswer's guard. Any other call flushes what is kept first: Write beyond
// the limit, Close, CloseWrite, ReadFrom, SetDeadline and SetWriteDeadline
// (which try once without blocking). A Read clears the arming. c of any
// other type is left alone.
func deferWrites(c net.Conn) {
	if rc := rawOf(c); rc != nil {
		rc.mu.Lock()
		rc.armed, rc.guarded = true, false
		rc.mu.Unlock()
	}
}

// writeStalled reports whether a write to the client's connection c waited
// heldFor or longer on its full socket since the last call (known: c is,
// or is under, a rawConn; a connection handed off by a loop too).
func writeStalled(c net.Conn) (stalled, known bool) {
	if rc := rawUnder(c); rc != nil {
		return rc.stalled.Swap(false), true
	}
	return false, false
}

// floorWrites makes "no write deadline" on c, a client's connection (or
// the TLS connection over it), mean d from now: the server clears the
// deadline a handler set once it has sent the answer, which would leave
// what it writes before the next handler's end (100 Continue, its own
// error answers, Early Hints) without one, to a client that has stopped
// reading. SetDeadline (a tunnel's, the server's before a hijack) still
// clears it. It reports whether c is such a connection.
func floorWrites(c net.Conn, d time.Duration) bool {
	rc := rawUnder(c)
	if rc == nil {
		return false
	}
	if time.Duration(rc.floor.Load()) != d {
		rc.floor.Store(int64(d))
	}
	return true
}

// rawUnder returns the rawConn c is, or is under (TLS, or a connection a
// loop handed off with its first bytes), or nil.
func rawUnder(c net.Conn) *rawConn {
	if pc, ok := c.(*prefixConn); ok {
		c = pc.Conn
	}
	return rawOf(c)
}

// rawOf returns the rawConn c is, or is under c (TLS), or nil.
func rawOf(c net.Conn) *rawConn {
	rc, _ := underTLS(c).(*rawConn)
	return rc
}

// deferAnswer arms c, a client's connection (or the TLS connection over
// it) whose answer the server is about to write and whose next request it
// will then read, as deferWrites does, with a guard: a client may send
// before it has its answer (pipelining), and the readiness of what it sent
// then may be cleared with nothing to read it, so the Read waits at most
// guardWait (less if the caller's read deadline is sooner) before it reads
// anyway. If that read finds a request waiting, the client pipelines: its
// connection is not armed again. Call it only once the request, body
// included, has been read whole.
func deferAnswer(c net.Conn) {
	if rc := rawOf(c); rc != nil {
		rc.mu.Lock()
		if !rc.pipelines {
			rc.armed, rc.guarded = true, true
		}
		rc.mu.Unlock()
	}
}

// undefer disarms c (or the connection under it), sending what it kept.
func undefer(c net.Conn) {
	if rc := rawOf(c); rc != nil {
		rc.mu.Lock()
		rc.armed = false
		rest := len(rc.pending) > 0
		rc.mu.Unlock()
		if rest {
			rc.flush()
		}
	}
}

// takePending disarms c and returns the bytes kept unsent (c's spare
// buffer until giveBack), whether they are a guarded answer, and the read
// deadline to restore first if the guard's is set (else zero, restore false).
func (c *rawConn) takePending() (p []byte, guarded bool, rd time.Time, restore bool) {
	c.mu.Lock()
	p, guarded = c.pending, c.guarded && len(c.pending) > 0
	c.pending = nil
	c.armed = false
	if c.shortened && !guarded {
		rd, restore = c.rd, true
		c.shortened = false
	}
	c.mu.Unlock()
	return p, guarded, rd, restore
}

// giveBack keeps p's buffer for the next deferred write.
func (c *rawConn) giveBack(p []byte) {
	if cap(p) == 0 || cap(p) > deferLimit {
		return
	}
	c.mu.Lock()
	if c.spare == nil {
		c.spare = p[:0]
	}
	c.mu.Unlock()
}

func (c *rawConn) Read(p []byte) (int, error) {
	pend, guarded, rd, restore := c.takePending()
	if restore {
		// The guard's deadline of an earlier Read is still set: the caller's
		// applies again.
		if err := c.Conn.SetReadDeadline(rd); err != nil {
			return 0, err
		}
	}
	now := false
	if guarded && !c.guard() {
		// The caller's read deadline is sooner than the guard's: the
		// answer goes out now, and the read waits as usual.
		guarded, now = false, true
	}
	if len(pend) == 0 || len(p) == 0 || now {
		if len(pend) > 0 {
			_, err := c.write(pend)
			c.giveBack(pend)
			if err != nil {
				return 0, err
			}
		}
		return c.read(p)
	}
	defer c.giveBack(pend)
	var n, sent int
	var errno, werrno syscall.Errno
	partial := false
	err := c.rc.Read(func(fd uintptr) bool {
		if sent < len(pend) {
			// The first call, after the netpoller cleared the socket's
			// readiness: send the kept bytes, then wait for the answer.
			var e syscall.Errno
			sent, e = sysWrite(fd, pend)
			switch e {
			case 0:
				return false // park until the answer comes
			case syscall.EAGAIN:
				partial = true // the rest is sent below, then read as usual
			default:
				werrno = e
			}
			return true
		}
		n, errno = sysRead(fd, p)
		return errno != syscall.EAGAIN // woken early: wait again
	})
	switch {
	case werrno != 0:
		return 0, c.opError("write", werrno)
	case err != nil && sent < len(pend):
		// The read call failed before the write (a deadline, Close): send
		// the bytes anyway, as a Write would have.
		if _, werr := c.write(pend[sent:]); werr != nil {
			return 0, werr
		}
		return 0, err
	case err != nil && guarded && isTimeout(err):
		// The guard's wait ended, or the caller's deadline passed (the
		// read then fails at once).
		c.unguard()
		return c.readAfterGuard(p)
	case partial:
		if _, err := c.write(pend[sent:]); err != nil {
			return 0, err
		}
		if guarded {
			c.unguard()
		}
		return c.read(p)
	}
	return c.readResult(n, errno, err)
}

// guard makes sure the socket's read deadline is the guard's, guardWait
// from now (SetReadDeadline may have set it); false if the caller's is
// sooner.
func (c *rawConn) guard() bool {
	c.mu.Lock()
	if c.shortened {
		c.mu.Unlock()
		return true
	}
	limit := time.Now().Add(guardWait)
	if !c.rd.IsZero() && c.rd.Before(limit) {
		c.mu.Unlock()
		return false
	}
	c.shortened = true
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(limit) == nil
}

// unguard sets the caller's read deadline again if the guard's is set.
func (c *rawConn) unguard() {
	c.mu.Lock()
	rd, short := c.rd, c.shortened
	c.shortened = false
	c.mu.Unlock()
	if short {
		c.Conn.SetReadDeadline(rd)
	}
}

// readAfterGuard reads after the guard's wait ended with nothing seen: if
// a request is there at once, its readiness had been cleared before the
// answer was sent (the client pipelines), and the connection is not armed
// again; else the client was only slow, and the read waits as usual.
func (c *rawConn) readAfterGuard(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	first := true
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno = sysRead(fd, p)
		if first && errno == 0 && n > 0 {
			c.mu.Lock()
			c.pipelines = true
			c.mu.Unlock()
		}
		first = false
		return errno != syscall.EAGAIN
	})
	return c.readResult(n, errno, err)
}

// read is one read, parked on the netpoller until data (or EOF) comes.
func (c *rawConn) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno = sysRead(fd, p)
		return errno != syscall.EAGAIN // else wait until readable
	})
	return c.readResult(n, errno, err)
}

// readResult is what Read returns for a read call's outcome.
func (c *rawConn) readResult(n int, errno syscall.Errno, err error) (int, error) {
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// sysRead reads once from the non-blocking socket fd.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// sysWrite writes what the non-blocking socket fd takes of p: all of it,
// or n bytes and EAGAIN (or the failure).
func sysWrite(fd uintptr, p []byte) (n int, errno syscall.Errno) {
	for n < len(p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
		switch e {
		case 0:
			n += int(r)
		case syscall.EINTR:
		default:
			return n, e
		}
	}
	return n, 0
}

func (c *rawConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.armed && !c.closed && len(c.pending)+len(p) <= deferLimit {
		if c.pending == nil {
			c.pending, c.spare = c.spare, nil
		}
		c.pending = append(c.pending, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	pend := c.pending
	c.pending = nil
	c.mu.Unlock()
	if len(pend) > 0 {
		// Kept bytes go first; the connection stays armed.
		_, err := c.write(pend)
		c.giveBack(pend)
		if err != nil {
			return 0, err
		}
	}
	return c.write(p)
}

// write sends all of p, parked on the netpoller while the socket is full
// (under the write deadline).
func (c *rawConn) write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	var full time.Time // when the socket was first found full
	err := c.rc.Write(func(fd uintptr) bool {
		w, e := sysWrite(fd, p[n:])
		n += w
		if e == syscall.EAGAIN {
			if full.IsZero() {
				full = time.Now()
			}
			return false // wait until writable
		}
		errno = e
		return true
	})
	if !full.IsZero() && time.Since(full) >= heldFor {
		// The peer held the write up (not a moment's backpressure).
		c.stalled.Store(true)
	}
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return n, err
}

// flush sends the kept bytes, if any, waiting for the socket as a Write does.
func (c *rawConn) flush() error {
	c.mu.Lock()
	pend := c.pending
	c.pending = nil
	c.mu.Unlock()
	if len(pend) == 0 {
		return nil
	}
	_, err := c.write(pend)
	c.giveBack(pend)
	return err
}

// trySend sends what it can of the kept bytes without waiting; the rest
// stays kept, in order.
func (c *rawConn) trySend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return
	}
	sent := 0
	c.rc.Write(func(fd uintptr) bool {
		// Whatever stops it (EAGAIN, a failure) shows in the next Read or
		// Write.
		sent, _ = sysWrite(fd, c.pending)
		return true
	})
	c.pending = c.pending[:copy(c.pending, c.pending[sent:])]
}

// Close sends the kept bytes first (waiting at most until the write
// deadline, and closeFlushWait for a peer that stopped reading), then closes.
func (c *rawConn) Close() error {
	c.mu.Lock()
	c.closed = true // later writes fail, as on a closed net.TCPConn
	c.mu.Unlock()
	c.trySend()
	c.mu.Lock()
	rest, wd := len(c.pending) > 0, c.wd
	c.mu.Unlock()
	if rest {
		if limit := time.Now().Add(closeFlushWait); wd.IsZero() || wd.After(limit) {
			c.Conn.SetWriteDeadline(limit)
		}
		c.flush()
	}
	if tc, ok := c.Conn.(*net.TCPConn); ok && c.linger.Load() {
		// nginx's lingering close: the answer is sent, then the end of the
		// stream, and what the client still sends (the body of the request
		// refused) is read and dropped, for lingerTime at most, before the
		// socket closes. Closed with those bytes unread, it would be reset,
		// and the client may lose the answer: Go's client did, for a 413
		// refusing an upload announced with Expect: 100-continue and sent
		// without waiting for the 100.
		tc.CloseWrite()
		go func() {
			tc.SetReadDeadline(time.Now().Add(lingerTime))
			io.Copy(io.Discard, io.LimitReader(tc, lingerLimit))
			tc.Close()
			if c.release != nil {
				c.release() // the socket is closed only now
			}
		}()
		return nil
	}
	err := c.Conn.Close()
	if c.release != nil {
		c.release()
	}
	return err
}

// A lingering close reads and drops what the client sends for this long,
// and this much, at most.
const (
	lingerTime  = 2 * time.Second
	lingerLimit = 64 << 20
)

// lingerOnClose makes the close of c (or of the connection under it) a
// lingering one: the proxy refuses the request it read, and the client may
// still be sending.
func lingerOnClose(c net.Conn) {
	if rc := rawUnder(c); rc != nil {
		rc.linger.Store(true)
	}
}

// SetDeadline and SetWriteDeadline try to send kept bytes first, under the
// deadline they were written with; what the socket cannot take yet is sent
// later, under the new one. SetReadDeadline leaves them kept (the next Read
// sends them).
func (c *rawConn) SetDeadline(t time.Time) error {
	c.trySend()
	c.mu.Lock()
	c.wd, c.rd, c.shortened = t, t, false
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the caller's read deadline; before a guarded
// answer's Read, the guard's is set instead if it is sooner (deferAnswer).
func (c *rawConn) SetReadDeadline(t time.Time) error {
	set := t
	c.mu.Lock()
	c.rd, c.shortened = t, false
	if c.guarded && len(c.pending) > 0 {
		if limit := time.Now().Add(guardWait); t.IsZero() || t.After(limit) {
			set, c.shortened = limit, true
		}
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(set)
}

func (c *rawConn) SetWriteDeadline(t time.Time) error {
	c.trySend()
	if d := c.floor.Load(); t.IsZero() && d > 0 {
		t = time.Now().Add(time.Duration(d))
	}
	c.setWD(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *rawConn) setWD(t time.Time) {
	c.mu.Lock()
	c.wd = t
	c.mu.Unlock()
}

// opError is what net.TCPConn returns for a failed system call.
func (c *rawConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// SyscallConn gives the socket, for peek.
func (c *rawConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// ReadFrom lets io.Copy into the connection from another TCP connection (an
// upgraded connection's tunnel) splice in the kernel, as net.TCPConn's does.
func (c *rawConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	if rc, ok := r.(*rawConn); ok {
		// Reading it below its Read would leave its kept bytes unsent,
		// and its peer may wait for them before it sends anything.
		if err := rc.flush(); err != nil {
			return 0, err
		}
		r = rc.Conn
	}
	if !spliceable(r) {
		// Through write, as every other write (writeStalled sees it).
		return copyThrough(c, r)
	}
	return c.Conn.(*net.TCPConn).ReadFrom(r)
}

// spliceable: the kernel can move r's bytes to a socket itself (splice,
// sendfile), as net.TCPConn's ReadFrom does for these.
func spliceable(r io.Reader) bool {
	if lr, ok := r.(*io.LimitedReader); ok {
		r = lr.R
	}
	switch r.(type) {
	case *net.TCPConn, *os.File:
		return true
	}
	return false
}

// CloseWrite sends the kept bytes, then half-closes the connection, as
// net.TCPConn's does.
func (c *rawConn) CloseWrite() error {
	if err := c.flush(); err != nil {
		return err
	}
	return c.Conn.(*net.TCPConn).CloseWrite()
}

// peekFD looks at a socket without blocking or consuming: eof when the
// peer shut its side (POLLRDHUP, seen even with bytes still unread: a TLS
// client's close_notify before its FIN) or the socket failed, data when
// bytes wait to be read.
func peekFD(fd uintptr) (eof, data bool) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	switch {
	case err == unix.EINTR || err == nil && n == 0:
		return false, false
	case err != nil:
		return true, false
	}
	r := fds[0].Revents
	if r&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
		return true, false
	}
	return false, r&unix.POLLIN != 0
}

// socketClosed reports whether c's TCP connection is over: reset by its
// peer, or its keep-alive probes unanswered (the kernel's CLOSE state). A
// peer that half-closed (CLOSE_WAIT) is not; false too if it cannot tell.
func socketClosed(c net.Conn) bool {
	info := tcpInfo(c)
	return info != nil && info.State == tcpClose
}

// socketIdle is how long c's socket has neither sent nor received data
// (the kernel's count, in milliseconds); false if it cannot tell.
func socketIdle(c net.Conn) (time.Duration, bool) {
	info := tcpInfo(c)
	if info == nil {
		return 0, false
	}
	return time.Duration(min(info.Last_data_recv, info.Last_data_sent)) * time.Millisecond, true
}

// tcpInfo is the kernel's TCP_INFO of c's socket, or nil.
func tcpInfo(c net.Conn) *unix.TCPInfo {
	sc := syscallConnOf(c)
	if sc == nil {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err != nil {
		return nil
	}
	return info
}

// tcpClose is the kernel's TCP_CLOSE state (include/net/tcp_states.h).
const tcpClose = 7

// syscallConnOf finds the socket under the proxy's wrappers of a
// connection, or nil.
func syscallConnOf(c net.Conn) syscall.Conn {
	for {
		switch x := c.(type) {
		case *alpnConn:
			c = x.Conn.NetConn()
		case *tls.Conn:
			c = x.NetConn()
		case *prefixConn:
			c = x.Conn
		case syscall.Conn: // *rawConn, *net.TCPConn
			return x
		default:
			return nil
		}
	}
}
