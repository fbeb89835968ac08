package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
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
}

// deferLimit bounds the bytes an armed connection keeps unsent.
const deferLimit = 64 << 10

// closeFlushWait bounds how long Close waits to send deferred bytes a
// peer does not take (it has stopped reading).
const closeFlushWait = 5 * time.Second

// newRawConn wraps a TCP connection; any other is returned as it is.
func newRawConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawConn{Conn: c, rc: rc}
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
// nothing reads it): so only a connection whose peer sends nothing until it
// gets the message may be armed, a target between requests, not a client
// that may pipeline. Any other call flushes what is kept first: Write beyond
// the limit, Close, CloseWrite, ReadFrom, SetDeadline and SetWriteDeadline
// (which try once without blocking). A Read clears the arming. c of any
// other type is left alone.
func deferWrites(c net.Conn) {
	if rc, ok := c.(*rawConn); ok {
		rc.mu.Lock()
		rc.armed = true
		rc.mu.Unlock()
	}
}

// takePending disarms c and returns the bytes kept unsent (c's spare
// buffer until giveBack).
func (c *rawConn) takePending() []byte {
	c.mu.Lock()
	p := c.pending
	c.pending = nil
	c.armed = false
	c.mu.Unlock()
	return p
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
	pend := c.takePending()
	if len(pend) == 0 || len(p) == 0 {
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
	case partial:
		if _, err := c.write(pend[sent:]); err != nil {
			return 0, err
		}
		return c.read(p)
	}
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
	err := c.rc.Write(func(fd uintptr) bool {
		w, e := sysWrite(fd, p[n:])
		n += w
		if e == syscall.EAGAIN {
			return false // wait until writable
		}
		errno = e
		return true
	})
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
	return c.Conn.Close()
}

// SetDeadline and SetWriteDeadline try to send kept bytes first, under the
// deadline they were written with; what the socket cannot take yet is sent
// later, under the new one. SetReadDeadline leaves them kept (the next Read
// sends them).
func (c *rawConn) SetDeadline(t time.Time) error {
	c.trySend()
	c.setWD(t)
	return c.Conn.SetDeadline(t)
}

func (c *rawConn) SetWriteDeadline(t time.Time) error {
	c.trySend()
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
	return c.Conn.(*net.TCPConn).ReadFrom(r)
}

// CloseWrite sends the kept bytes, then half-closes the connection, as
// net.TCPConn's does.
func (c *rawConn) CloseWrite() error {
	if err := c.flush(); err != nil {
		return err
	}
	return c.Conn.(*net.TCPConn).CloseWrite()
}
