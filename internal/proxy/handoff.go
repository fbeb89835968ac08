package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// handoffListener gives the connections the loops hand off to a fasthttp
// server, as if it had accepted them.
type handoffListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
	// pending: connections on their way to the server (the listener's
	// drain closes the hand-off only once none is)
	pending atomic.Int64
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), closed: make(chan struct{}), addr: addr}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }

// deliver makes a net.Conn of fd (with pre, the bytes already read from it)
// and gives it to the server; release (nil: none) goes with it, called when
// it closes.
func (h *handoffListener) deliver(fd int, pre []byte, release func()) {
	defer h.pending.Add(-1) // added by the loop before it starts deliver
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f)
	if err != nil && len(pre) > 0 && outOfResources(err) {
		// No descriptor for the server's copy. A request was read (plain
		// HTTP: TLS is handed off before any byte), so it gets a 503 on
		// the bare socket rather than a cut connection.
		syscall.Write(fd, unavailableAnswer)
	}
	f.Close()
	if err != nil {
		if release != nil {
			release()
		}
		return
	}
	// Raw socket calls, as for a connection the server accepts itself: a
	// write that finds the socket full is then seen (writeStalled).
	c := newRawConn(nc, release)
	if len(pre) > 0 {
		c = &prefixConn{Conn: c, pre: pre}
	}
	select {
	case h.ch <- c:
	case <-h.closed:
		if len(pre) > 0 {
			// A request the loop read whole (its body came late) as its
			// listener closed: answered, not cut (a helper's review).
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(closingAnswer)
		}
		c.Close()
	}
}

const closingMessage = "cutover: this listener is closing\n"

var closingAnswer = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
	strconv.Itoa(len(closingMessage)) + "\r\nConnection: close\r\n\r\n" + closingMessage)

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom writes what it reads from r as it comes, through the
// connection's own ReadFrom (rawConn's: an answer's body streaming through
// the server, see streamBody; a tunnel's splice).
func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return copyThrough(c.Conn, r)
}

// copyThrough copies r to w, each read written as it comes, through a
// pooled buffer (io.Copy would allocate 32 KiB a call): the ReadFrom of
// the connections a streamed answer is written to.
func copyThrough(w io.Writer, r io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *buf)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// CloseWrite half-closes the connection (a tunnel passes a target's
// half-close on to its client).
func (c *prefixConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}
