//go:build !linux

package proxy

import "net"

// newRawConn returns c: raw socket calls are made on Linux only.
func newRawConn(c net.Conn) net.Conn { return c }

// deferWrites does nothing: writes are deferred on Linux only, where the
// netpoller's behaviour it relies on was checked.
func deferWrites(net.Conn) {}
