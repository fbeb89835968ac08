//go:build !linux

package proxy

import "net"

// newRawConn returns c: raw socket calls are made on Linux only.
func newRawConn(c net.Conn) net.Conn { return c }
