//go:build !linux

package proxy

import (
	"net"
	"syscall"
	"time"
)

// newRawConn returns c (raw socket calls are made on Linux only), with
// release (nil: none) called at its first Close.
func newRawConn(c net.Conn, release func()) net.Conn { return releasing(c, release) }

// deferWrites does nothing: writes are deferred on Linux only, where the
// netpoller's behaviour it relies on was checked.
func deferWrites(net.Conn) {}

// deferAnswer does nothing off Linux (see deferWrites).
func deferAnswer(net.Conn) {}

// writeStalled is not known off Linux: the caller goes by time.
func writeStalled(net.Conn) (stalled, known bool) { return false, false }

// floorWrites: off Linux a client's connection is not a rawConn, whose
// SetWriteDeadline it needs.
func floorWrites(net.Conn, time.Duration) bool { return false }

// undefer does nothing off Linux (see deferWrites).
func undefer(net.Conn) {}

// lingerOnClose does nothing off Linux: a connection closes at once.
func lingerOnClose(net.Conn) {}

// peekFD looks at a socket without blocking or consuming: eof when the
// peer closed it (or it failed), data when bytes wait to be read.
func peekFD(fd uintptr) (eof, data bool) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case n > 0:
		return false, true
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		return false, false
	}
	return true, false
}

// socketClosed is not known off Linux: a half-closed tunnel ends when its
// other end does.
func socketClosed(net.Conn) bool { return false }

// socketIdle is not known off Linux: tunnels have no idle bound there.
func socketIdle(net.Conn) (time.Duration, bool) { return 0, false }
