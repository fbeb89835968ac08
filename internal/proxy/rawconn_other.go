//go:build !linux

package proxy

import "net"

// newRawConn returns c: raw socket calls are made on Linux only.
func newRawConn(c net.Conn) net.Conn { return c }

// deferWrites does nothing: writes are deferred on Linux only, where the
// netpoller's behaviour it relies on was checked.
func deferWrites(net.Conn) {}

// deferAnswer does nothing off Linux (see deferWrites).
func deferAnswer(net.Conn) {}

// undefer does nothing off Linux (see deferWrites).
func undefer(net.Conn) {}
