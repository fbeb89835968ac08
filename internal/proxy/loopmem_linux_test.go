package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLoopAttackLargeExchangesDoNotFattenIdleConnections: a client that
// sends one large request (a 24 KiB head, under max_header_bytes) and gets
// a 40 KiB answer on each of many keep-alive connections made each idle
// connection hold ~176 KiB of buffers, and each closed one ~110 KiB on the
// loops' free lists, for good. Once an exchange ends a connection keeps at
// most loopKeepBuf of each buffer, idle or recycled.
func TestLoopAttackLargeExchangesDoNotFattenIdleConnections(t *testing.T) {
	const conns, answerSize = 64, 40 << 10
	answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", answerSize, strings.Repeat("a", answerSize))
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) { return answer, false })
	p, addr := loopProxy(t, target.addr(), nil)
	served0, _ := p.loopCounts()
	var head strings.Builder
	for i := 0; head.Len() < 24<<10; i++ {
		fmt.Fprintf(&head, "X-Pad-%d: %s\r\n", i, strings.Repeat("p", 990))
	}
	req := "GET /x HTTP/1.1\r\nHost: app.example\r\n" + head.String() + "\r\n"
	var cs []net.Conn
	for range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, resp.Body); resp.StatusCode != 200 || n != answerSize {
			t.Fatalf("%d with %d bytes, want 200 with %d", resp.StatusCode, n, answerSize)
		}
		cs = append(cs, c)
	}
	if served, _ := p.loopCounts(); served-served0 < conns {
		t.Fatalf("the loops served %d of the %d requests: the test must load them", served-served0, conns)
	}
	held := func(free bool) (n, bytes int) {
		for _, l := range p.loops.ls {
			l.call(func() {
				var list []*cconn
				if free {
					list = l.free
				} else {
					for _, o := range l.ents {
						if c, ok := o.(*cconn); ok && c.fd >= 0 {
							list = append(list, c)
						}
					}
				}
				for _, c := range list {
					n++
					bytes += cap(c.in) + cap(c.out) + cap(c.req)
				}
			})
		}
		return n, bytes
	}
	if n, b := held(false); n < conns || b > n*3*loopKeepBuf {
		t.Fatalf("%d idle connections hold %d KiB of buffers (%d KiB each), want at most %d KiB each", n, b>>10, b/max(n, 1)>>10, 3*loopKeepBuf>>10)
	}
	for _, c := range cs {
		c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := held(false); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loops still hold the closed connections")
		}
	}
	if n, b := held(true); n < conns || b > n*3*loopKeepBuf {
		t.Fatalf("%d recycled connections hold %d KiB of buffers, want at most %d KiB each", n, b>>10, 3*loopKeepBuf>>10)
	}
}
