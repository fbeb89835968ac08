package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestLoopServesASmallBodyLargerThanItsFirstRead: a POST whose body (up to
// smallBody) came in the same segment as its head, past the loop's first
// 4 KiB read, was handed to the server path, and its connection with it for
// good. The loop now reads up to the body's end, and no further: a request
// pipelined after it is still answered, in order. A body that is still to
// come goes to the server path as before.
func TestLoopServesASmallBodyLargerThanItsFirstRead(t *testing.T) {
	target := newAtkTarget(t, func(r *http.Request, body []byte) (string, bool) {
		b := fmt.Sprintf("%s %s %d %x", r.Method, r.URL.Path, len(body), sha256.Sum256(body))
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(b), b), false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	body := strings.Repeat("0123456789abcdef", 6<<10/16) // 6 KiB
	post := fmt.Sprintf("POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	want := fmt.Sprintf("POST /up %d %x", len(body), sha256.Sum256([]byte(body)))

	served0, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	rc.send(post + request("GET", "/next", false))
	if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 200 || a.body != want {
		t.Fatalf("the 6 KiB POST: %d %q %v, want 200 %q", a.status, a.body, a.err, want)
	}
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 || !strings.HasPrefix(a.body, "GET /next 0 ") {
		t.Fatalf("the GET pipelined after it: %d %q %v", a.status, a.body, a.err)
	}
	if s, h := p.loopCounts(); s-served0 != 2 || h != handed0 {
		t.Fatalf("the loop served %d and handed off %d, want both served by the loop", s-served0, h-handed0)
	}

	// Its body still to come (a client that writes its head and its body
	// apart, as Go's client does past its 4 KiB buffer): the loop waits
	// for it, and the connection stays on the loop. It was handed to the
	// server path, for good.
	served0, handed0 = p.loopCounts()
	rc = dialAtk(t, addr)
	rc.send(post[:len(post)-len(body)])
	time.Sleep(100 * time.Millisecond)
	rc.send(body[:1000])
	time.Sleep(100 * time.Millisecond)
	// The rest, and a request pipelined behind it in the same write.
	rc.send(body[1000:] + request("GET", "/after", false))
	if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 200 || a.body != want {
		t.Fatalf("the 6 KiB POST in three parts: %d %q %v, want 200 %q", a.status, a.body, a.err, want)
	}
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 || !strings.HasPrefix(a.body, "GET /after 0 ") {
		t.Fatalf("the GET pipelined after its body: %d %q %v", a.status, a.body, a.err)
	}
	if s, h := p.loopCounts(); s-served0 != 2 || h != handed0 {
		t.Fatalf("the loop served %d and handed off %d, want both served by the loop", s-served0, h-handed0)
	}

	// A byte a write (Go's connections have Nagle off: most are a segment
	// each), the head too.
	served0, handed0 = p.loopCounts()
	rc = dialAtk(t, addr)
	for i := range len(post) {
		rc.send(post[i : i+1])
	}
	if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 200 || a.body != want {
		t.Fatalf("the 6 KiB POST a byte a write: %d %q %v, want 200 %q", a.status, a.body, a.err, want)
	}
	if s, h := p.loopCounts(); s-served0 != 1 || h != handed0 {
		t.Fatalf("the loop served %d and handed off %d, want it served by the loop", s-served0, h-handed0)
	}
}

// TestLoopAttackSmallBodyStillToCome: the loop holds a request whose small
// body is still to come, so a client can hold it there: each way of doing
// so ends as on the server path (body_idle_timeout and body_min_rate, then
// 408 and the connection closed), and none reaches the target or counts
// against its group.
func TestLoopAttackSmallBodyStillToCome(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.Limits.BodyIdleTimeout = Duration(500 * time.Millisecond) })
	head := "POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\n"
	for _, tc := range []struct {
		name   string
		parts  []string
		every  time.Duration
		want   int
		within time.Duration
	}{
		{"the body stalls after 10 of 100 bytes", []string{head, "0123456789"}, 0, 408, 3 * time.Second},
		{"the head alone, no body", []string{head}, 0, 408, 3 * time.Second},
		// Each byte within body_idle_timeout of the last, but 20 bytes a
		// second against body_min_rate's 100.
		{"the body trickled a byte every 50 ms", append([]string{head}, slices.Repeat([]string{"x"}, 80)...), 50 * time.Millisecond, 408, 3 * time.Second},
		// The server path's answer to a body cut short (handed off there,
		// as before).
		{"half of the body, then the client half-closes", []string{head, strings.Repeat("h", 50), "\x00close"}, 0, 400, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target.take()
			before := counts(t, p)
			_, handed0 := p.loopCounts()
			rc := dialAtk(t, addr)
			start := time.Now()
			go func() {
				for _, part := range tc.parts {
					if part == "\x00close" {
						rc.c.(*net.TCPConn).CloseWrite()
						return
					}
					if _, err := io.WriteString(rc.c, part); err != nil {
						return
					}
					time.Sleep(tc.every)
				}
			}()
			a := rc.final(10*time.Second, "POST")
			took := time.Since(start)
			switch {
			case a.err != nil || a.status != tc.want:
				t.Fatalf("answered %d %v, want %d", a.status, a.err, tc.want)
			case took > tc.within:
				t.Fatalf("answered after %s, want within %s", took, tc.within)
			}
			if extra, closed := rc.quiet(2 * time.Second); !closed {
				t.Fatalf("the connection was kept open after the answer (%q)", extra)
			}
			if seen := target.take(); len(seen) != 0 {
				t.Fatalf("the target saw %d requests: %+v", len(seen), seen)
			}
			if after := counts(t, p); !maps.Equal(before, after) {
				t.Fatalf("the group's counts moved from %v to %v", before, after)
			}
			// The loop held the request until its end (only a body cut
			// short goes to the server path).
			if _, h := p.loopCounts(); h-handed0 != uint64(strings.Count(strings.Join(tc.parts, ""), "\x00close")) {
				t.Fatalf("the loop handed off %d connections", h-handed0)
			}
		})
	}
}

// A request whose body came late, as its listener was removed, gets an
// answer: the loop hands it to a server that has closed, which cut it
// with no answer (a helper's review; before the loop waited for bodies,
// the server held it and answered 404).
func TestLoopLateBodyAsItsListenerCloses(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	rc := dialAtk(t, addr)
	rc.send("POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 20\r\n\r\n0123456789")
	time.Sleep(100 * time.Millisecond)
	g := TargetGroup{Name: "a/web", Health: HealthCheck{Path: "/healthz", Interval: Duration(time.Hour), Timeout: Duration(time.Second),
		HealthyThreshold: 1, UnhealthyThreshold: 2}, DeregistrationDelay: Duration(5 * time.Second),
		Targets: []Target{{ID: "a/web-0", Addr: target.addr()}}}
	if err := p.Apply(context.Background(), State{TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	rc.send("abcdefghij")
	if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 503 || !a.close {
		t.Errorf("%d %q close %v %v, want 503 with Connection: close", a.status, a.body, a.close, a.err)
	}
	if seen := target.take(); len(seen) != 0 {
		t.Errorf("the target saw %d requests", len(seen))
	}
}

// The same when the answer's tail is sent late: a client that reads slowly
// (the proxy's socket to it kept small here, 4 KiB, for the tail to be left
// over when the exchange ends) took it after the exchange ended, and the
// connection then idled with every buffer at full size (from the third
// attack review).
func TestLoopAttackLargeExchangeTakenLateDoesNotFattenTheConnection(t *testing.T) {
	const answerSize = 268 << 10
	answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", answerSize, strings.Repeat("a", answerSize))
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) { return answer, false })
	p, addr := loopProxy(t, target.addr(), nil)
	var head strings.Builder
	for i := 0; head.Len() < 24<<10; i++ {
		fmt.Fprintf(&head, "X-Pad-%d: %s\r\n", i, strings.Repeat("p", 990))
	}
	req := "GET /x HTTP/1.1\r\nHost: app.example\r\n" + head.String() + "\r\n"
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	conns := func(f func(*cconn)) (n int) {
		for _, l := range p.loops.ls {
			l.call(func() {
				for _, o := range l.ents {
					if cc, ok := o.(*cconn); ok && cc.fd >= 0 {
						n++
						f(cc)
					}
				}
			})
		}
		return n
	}
	for try := range 3 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if !eventually(3*time.Second, func() bool {
			return conns(func(cc *cconn) { unix.SetsockoptInt(cc.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) }) == 1
		}) {
			t.Fatal("the loop did not take the connection")
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // a slow client: its socket fills
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, resp.Body); resp.StatusCode != 200 || n != answerSize {
			t.Fatalf("%d with %d bytes", resp.StatusCode, n)
		}
		var in, out, rq int
		if !eventually(2*time.Second, func() bool {
			conns(func(cc *cconn) { in, out, rq = cap(cc.in), cap(cc.out), cap(cc.req) })
			return in <= loopKeepBuf && out <= loopKeepBuf && rq <= loopKeepBuf
		}) {
			t.Fatalf("try %d: the idle connection holds in %d KiB, out %d KiB, req %d KiB after its exchange ended; want at most %d KiB each",
				try, in>>10, out>>10, rq>>10, loopKeepBuf>>10)
		}
		c.Close()
		if !eventually(3*time.Second, func() bool { return conns(func(*cconn) {}) == 0 }) {
			t.Fatal("the loop still holds the closed connection")
		}
	}
}

// TestMaxBodyBytesAttacks: the bound's edges, from a helper's review.
// A chunked upload that passes the bound as its target answers early
// (a 401 before the body) was answered 502 and counted against the group
// 2-13 times in 400; the 413 for Expect: 100-continue had no text; 24 MiB
// over a 64 KiB bound (past the 16 MiB read-and-drop cap there was then)
// lost its 413 to a reset.
func TestMaxBodyBytesAttacks(t *testing.T) {
	t.Run("a chunked body past the bound as the target answers early", func(t *testing.T) {
		target := connTarget(t, func(c net.Conn) {
			buf := make([]byte, 64<<10)
			n, _ := c.Read(buf)
			if strings.Contains(string(buf[:n]), "/healthz") {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return
			}
			io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n")
			time.Sleep(2 * time.Millisecond)
			io.WriteString(c, "nope!")
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			io.Copy(io.Discard, c)
		})
		p, addr := loopProxy(t, target, func(l *Listener) { l.Limits.MaxBodyBytes = 100 })
		before := counts(t, p)
		seen := map[int]int{}
		for i := range 300 {
			rc := dialAtk(t, addr)
			rc.send("POST /up HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + strings.Repeat("y", 50) + "\r\n")
			time.Sleep(time.Duration(i%100) * 5 * time.Microsecond)
			rc.send("c8\r\n" + strings.Repeat("z", 200) + "\r\n0\r\n\r\n")
			a := rc.final(5*time.Second, "POST")
			seen[a.status]++
			rc.c.Close()
		}
		time.Sleep(200 * time.Millisecond)
		after := counts(t, p)
		t.Logf("answers by status %v; the group's counts %v -> %v", seen, before, after)
		if seen[502] > 0 || after["5xx"] != before["5xx"] {
			t.Errorf("502s answered or counted against the group: answers %v, counts %v -> %v", seen, before, after)
		}
	})

	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.Limits.MaxBodyBytes = 64 << 10 })

	t.Run("Expect: 100-continue over the bound gets the proxy's text", func(t *testing.T) {
		before := counts(t, p)
		rc := dialAtk(t, addr)
		rc.send("POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 70000\r\nExpect: 100-continue\r\n\r\n")
		a := rc.final(3*time.Second, "POST")
		if a.status != 413 || !strings.Contains(a.body, "larger than this listener takes (65536 bytes)") {
			t.Errorf("%d %q %v, want 413 with the proxy's text", a.status, a.body, a.err)
		}
		if after := counts(t, p); !maps.Equal(before, after) {
			t.Errorf("counted: %v -> %v", before, after)
		}
	})

	// With Expect: 100-continue, the 413 comes before the body; a client
	// that sends it without waiting for the 100 (Go's with a zero
	// ExpectContinueTimeout) got "connection reset by peer": the server
	// closed with the body unread. The close now lingers.
	t.Run("Expect: 100-continue over the bound, the body sent without waiting", func(t *testing.T) {
		tr := &http.Transport{ExpectContinueTimeout: 0, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for range 3 {
			req, _ := http.NewRequest("POST", "http://"+addr+"/up", strings.NewReader(strings.Repeat("u", 8<<20)))
			req.Header.Set("Expect", "100-continue")
			res, err := c.Do(req)
			if err != nil {
				t.Fatalf("%v, want a 413", err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 413 {
				t.Fatalf("%d, want 413", res.StatusCode)
			}
		}
	})

	t.Run("24 MiB over the bound", func(t *testing.T) {
		for _, streamed := range []bool{false, true} {
			before := counts(t, p)
			var r io.Reader = strings.NewReader(strings.Repeat("u", 24<<20))
			if streamed {
				r = io.MultiReader(r)
			}
			req, _ := http.NewRequest("POST", "http://"+addr+"/up", r)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("streamed %v: %v, want 413", streamed, err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 413 {
				t.Errorf("streamed %v: %d, want 413", streamed, res.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
			if after := counts(t, p); !maps.Equal(before, after) {
				t.Errorf("streamed %v counted: %v -> %v", streamed, before, after)
			}
		}
	})
}

// TestLoopRefusalsLinger: the loop's own refusals (a request line over
// max_header_bytes: 414; a head ending in bare LFs: 400) closed the
// connection at once, with what the client was still sending unread: the
// kernel reset it, and a client still writing its body (Go's) got
// "connection reset by peer" instead of the answer. They now close as the
// server path does (lingerOnClose): the answer, a half-close, and what the
// client still sends read and dropped, for lingerTime at most.
func TestLoopRefusalsLinger(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.Limits.MaxHeaderBytes = 2048 })
	const bodySize = 8 << 20

	t.Run("a request line over the bound, 8 MiB behind it, from Go's client", func(t *testing.T) {
		before := counts(t, p)
		_, handed0 := p.loopCounts()
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for range 3 {
			req, _ := http.NewRequest("POST", "http://"+addr+"/"+strings.Repeat("a", 3000), strings.NewReader(strings.Repeat("u", bodySize)))
			res, err := c.Do(req)
			if err != nil {
				t.Fatalf("%v, want a 414", errors.Unwrap(err)) // not the 3000-byte URL
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestURITooLong {
				t.Fatalf("%d, want 414", res.StatusCode)
			}
		}
		if _, h := p.loopCounts(); h != handed0 {
			t.Errorf("handed %d to the server: the loop did not refuse it itself", h-handed0)
		}
		if after := counts(t, p); !maps.Equal(before, after) {
			t.Errorf("counted: %v -> %v", before, after)
		}
	})

	t.Run("a bare-LF head, 8 MiB behind it", func(t *testing.T) {
		before := counts(t, p)
		rc := dialAtk(t, addr)
		wrote := make(chan error, 1)
		go func() {
			_, err := io.WriteString(rc.c, fmt.Sprintf("POST /a HTTP/1.1\nHost: app.example\nContent-Length: %d\n\n", bodySize)+strings.Repeat("u", bodySize))
			wrote <- err
		}()
		a := rc.read(10*time.Second, "POST")
		if a.err != nil || a.status != http.StatusBadRequest {
			t.Fatalf("%d %v, want 400", a.status, a.err)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("the client's body was cut: %v", err)
		}
		// The proxy closes once the client is done (or after lingerTime).
		rc.c.SetReadDeadline(time.Now().Add(lingerTime + 3*time.Second))
		if _, err := rc.br.ReadByte(); err != io.EOF {
			t.Fatalf("after the 400: %v, want the connection closed", err)
		}
		if n := target.requests.Load(); n != 0 {
			t.Fatalf("the target saw %d requests", n)
		}
		if after := counts(t, p); !maps.Equal(before, after) {
			t.Errorf("counted: %v -> %v", before, after)
		}
	})

	// A client that never stops sending is cut: by lingerTime when it
	// trickles, by lingerLimit when it floods.
	for _, tc := range []struct {
		name  string
		pause time.Duration
	}{{"trickling", 5 * time.Millisecond}, {"flooding", 0}} {
		t.Run("a client that never stops sending, "+tc.name, func(t *testing.T) {
			rc := dialAtk(t, addr)
			type result struct {
				sent int
				err  error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				if _, err := io.WriteString(rc.c, "POST /"+strings.Repeat("a", 3000)+" HTTP/1.1\r\nHost: app.example\r\n\r\n"); err != nil {
					done <- result{0, err}
					return
				}
				chunk := []byte(strings.Repeat("u", 64<<10))
				sent := 0
				for time.Since(start) < 20*time.Second {
					rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					n, err := rc.c.Write(chunk)
					if sent += n; err != nil {
						done <- result{sent, err}
						return
					}
					time.Sleep(tc.pause)
				}
				done <- result{sent, nil}
			}()
			a := rc.read(5*time.Second, "POST")
			if a.err != nil || a.status != http.StatusRequestURITooLong {
				t.Fatalf("%d %v, want 414", a.status, a.err)
			}
			r := <-done
			d := time.Since(start)
			if r.err == nil {
				t.Fatal("the proxy took 20 s of a refused client's bytes")
			}
			t.Logf("cut after %v and %d MiB", d.Round(time.Millisecond), r.sent>>20)
			if tc.pause > 0 && (d < lingerTime || d > lingerTime+3*time.Second) {
				t.Fatalf("cut after %v, want after lingerTime (%v) and within a sweep more", d, lingerTime)
			}
			if tc.pause == 0 && (d >= lingerTime || r.sent > lingerLimit+16<<20) {
				t.Fatalf("cut after %v and %d bytes, want at lingerLimit (%d) and its socket buffers", d, r.sent, lingerLimit)
			}
		})
	}
}
