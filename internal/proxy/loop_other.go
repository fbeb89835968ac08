//go:build !linux

package proxy

import (
	"context"
	"net"
	"time"
)

// The event loops run on Linux only (epoll); elsewhere the fasthttp server
// accepts every connection.
type loops struct{ ls []*evloop }

type loopListener struct{ hand net.Listener }

func (p *Proxy) serveWithLoops(*listener) bool       { return false }
func (p *Proxy) stopLoops()                          {}
func (*loopListener) stopAccepting(time.Duration)    {}
func (*loopListener) wait(context.Context) error     { return nil }
func (*loopListener) forceClose()                    {}
func (*loopListener) socket() int                    { return -1 }
func (*loopListener) closeHand()                     {}
func (p *Proxy) loopCounts() (served, handed uint64) { return 0, 0 }

type evloop struct{}

func (p *Proxy) loopsRespond([]*evloop, <-chan time.Time) bool { return true }
