//go:build linux

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoopAttackLateAnswerIsNotTheNextGETs: a target writes a second,
// unasked answer on a kept-alive connection after its answer (a bug: a
// handler that writes after it returned, a wrong Content-Length; or a
// release turned hostile), and the bytes are in the proxy's socket before
// the loop has handled their event. A GET the loop started meanwhile
// (another client's, whose bytes came first) took that connection from the
// pool without looking (the look was only for requests that cannot be sent
// again), sent its request on it and read the stale answer as its own:
// client B got bytes meant for client A. The loop is held for 100 ms here,
// as a busy loop is between two waits. Each pass now handles the idle
// target connections' events before any other. Found by a helper's review.
func TestLoopAttackLateAnswerIsNotTheNextGETs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // one loop: one pool
	var mu sync.Mutex
	var firstConn net.Conn
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		switch r.URL.Path {
		case "/first":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nfor-A-1")
			mu.Lock()
			firstConn = c
			mu.Unlock()
		case "/healthz":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		default:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
		}
		return true
	})
	p, addr := loopProxy(t, target, nil)
	if n := len(p.loops.ls); n != 1 {
		t.Fatalf("%d loops, want 1", n)
	}
	served0, handed0 := p.loopCounts()
	defer onLoop(t, p, served0, handed0)

	a := dialAtk(t, addr)
	a.send("GET /first HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if got := a.final(5*time.Second, "GET"); got.err != nil || got.body != "for-A-1" {
		t.Fatalf("/first: %d %q %v", got.status, got.body, got.err)
	}
	mu.Lock()
	tc := firstConn
	mu.Unlock()

	// The loop is busy for a moment (here: held by a command).
	l := p.loops.ls[0]
	entered, release := make(chan struct{}), make(chan struct{})
	l.do(func() { close(entered); <-release })
	<-entered
	// Client B's request comes first, then the target's late bytes on the
	// idle pooled connection.
	b := dialAtk(t, addr)
	b.send("GET /next HTTP/1.1\r\nHost: app.example\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nfor-A-secret")
	time.Sleep(50 * time.Millisecond)
	close(release)

	got := b.final(5*time.Second, "GET")
	if got.err != nil || got.status != 200 || got.body != "good" {
		t.Fatalf("client B's GET /next: got %d %q %v, want 200 \"good\" (its own answer)", got.status, got.body, got.err)
	}
}

// TestAttackEarlyHintsCarryOnlyLinks: the loop appended a 103 Early Hints
// head to the client's answer exactly as the target sent it, where the
// final head goes through appendResponseHead and the server path writes
// only the Link fields (fasthttp's EarlyHints). So the hop-by-hop fields
// and the fields the target's Connection lists (an internal address here),
// which the proxy strips from every final answer
// (TestAttackHopByHopFieldsInAnswers), reached the client in the 103; and
// so did a space before the colon and bare LF line ends, which the proxy
// normalises in final heads (RFC 9112 §5.1 asks a proxy to remove
// whitespace before a colon). Both paths now send the Link fields only.
// Found by a helper's review.
func TestAttackEarlyHintsCarryOnlyLinks(t *testing.T) {
	for _, tc := range []struct{ name, hints string }{
		{"fields listed in Connection", "HTTP/1.1 103 Early Hints\r\nConnection: X-Secret\r\nX-Secret: internal-10.0.0.5\r\nKeep-Alive: timeout=5\r\nLink: </a.css>; rel=preload\r\n\r\n"},
		{"space before colon", "HTTP/1.1 103 Early Hints\r\nLink : </a.css>; rel=preload\r\n\r\n"},
		{"bare LF", "HTTP/1.1 103 Early Hints\nLink: </a.css>; rel=preload\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, handOff bool) {
				target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
					return tc.hints + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
				})
				p, addr := loopProxy(t, target.addr(), nil)
				served0, handed0 := p.loopCounts()
				defer onPath(t, p, handOff, served0, handed0)
				rc := dialAtk(t, addr)
				rc.send(request("GET", "/h", handOff))
				raw, err := rc.rawUntil("\r\n\r\nok", 5*time.Second)
				if err != nil {
					t.Fatalf("read %q: %v", raw, err)
				}
				hints, _, _ := strings.Cut(string(raw), "HTTP/1.1 200")
				for _, bad := range []string{"X-Secret", "internal-10.0.0.5", "Keep-Alive", "Connection", "Link :"} {
					if strings.Contains(hints, bad) {
						t.Errorf("the client got the target's interim head as sent (%q in it): %q", bad, hints)
					}
				}
				if strings.Count(hints, "\n") != strings.Count(hints, "\r\n") {
					t.Errorf("the client got the interim head's bare LF line ends: %q", hints)
				}
				// And Go's reader takes the exchange.
				br := bufio.NewReader(strings.NewReader(string(raw)))
				for {
					resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
					if err != nil {
						t.Fatalf("Go's reader refuses what the proxy sent (%q): %v", raw, err)
					}
					if resp.StatusCode >= 200 {
						break
					}
				}
			})
		})
	}
}

// TestAttackStatusCodeOutOfRange: a target's status line with a code that
// is no status (RFC 9110 §15: three digits, 100-599): "000", which
// fasthttp reads as 200 (its StatusCode of an unset code), "099", which it
// reads as an interim answer, and 1000; or no status line at all (an empty
// line first). The client must get a 502 counted against the target's
// group, not a 200 counted as a success, on both paths alike.
func TestAttackStatusCodeOutOfRange(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 1000 Big\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 20 Short\r\nContent-Length: 2\r\n\r\nok",
		// The parser skips spaces before the code (a helper's review).
		"HTTP/1.1  000 Zero\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1  099 Low\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		// A head that starts with an empty line: no status line.
		"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"\nHTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	} {
		name := strings.TrimSpace(strings.SplitN(answer, "\n", 2)[0])
		if name == "" {
			name = "an empty line first"
		}
		t.Run(name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, handOff bool) {
				target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
					return answer, false
				})
				p, addr := loopProxy(t, target.addr(), nil)
				before := counts(t, p)
				rc := dialAtk(t, addr)
				rc.send(request("GET", "/s", handOff))
				a := rc.final(5*time.Second, "GET")
				if a.err != nil || a.status != http.StatusBadGateway {
					t.Fatalf("%d %q %v, want 502", a.status, a.body, a.err)
				}
				after := counts(t, p)
				if after["5xx"] != before["5xx"]+1 || after["2xx"] != before["2xx"] {
					t.Fatalf("counted %v -> %v, want one 5xx", before, after)
				}
			})
		})
	}
}

// TestStatusCodeOver599GoesOnAsA5xx: 600-999 are no status either, but
// RFC 9110 §15 asks a recipient to treat them as 5xx: the answer goes on
// as it is, counted as the group's 5xx.
func TestStatusCodeOver599GoesOnAsA5xx(t *testing.T) {
	bothPaths(t, func(t *testing.T, handOff bool) {
		target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
			return "HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", false
		})
		p, addr := loopProxy(t, target.addr(), nil)
		before := counts(t, p)
		rc := dialAtk(t, addr)
		rc.send(request("GET", "/s", handOff))
		a := rc.final(5*time.Second, "GET")
		if a.err != nil || a.status != 600 || a.body != "ok" {
			t.Fatalf("%d %q %v, want the 600 as it came", a.status, a.body, a.err)
		}
		if after := counts(t, p); after["5xx"] != before["5xx"]+1 {
			t.Fatalf("counted %v -> %v, want one 5xx", before, after)
		}
	})
}

// TestBareLFAnswersArePassedOnWithCRLFs: a target whose answer heads end
// their lines in bare LFs (RFC 9112 §2.2 lets a recipient accept them;
// nginx and Go's client do). fasthttp's parser waited for a CRLF CRLF that
// never came: each request hung for target_timeout, then 504 (over HTTP/2
// the client gave up first). The head is now found by its bare-LF end,
// parsed and passed on with CRLFs, its body framed by it, and the target's
// connection kept for the next request.
func TestBareLFAnswersArePassedOnWithCRLFs(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"bare LFs", "HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok"},
		{"CRLF lines, a bare LF end", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\nok"},
		{"LF lines, a CRLF end", "HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\r\nok"},
		{"early hints too", "HTTP/1.1 103 Early Hints\nLink: </a.css>; rel=preload\n\nHTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok"},
		// Over the 4 KiB of a default bufio.Reader (a helper's review).
		{"a 5000-byte field", "HTTP/1.1 200 OK\nContent-Length: 2\nX-Policy: " + strings.Repeat("p", 5000) + "\nX-A: b\n\nok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, handOff bool) {
				target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) { return tc.answer, false })
				p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.Limits.TargetTimeout = Duration(3 * time.Second) })
				served0, handed0 := p.loopCounts()
				defer onPath(t, p, handOff, served0, handed0)
				before := counts(t, p)
				rc := dialAtk(t, addr)
				for i := range 2 { // the second on the target connection the first kept
					rc.send(request("GET", "/lf", handOff))
					raw, err := rc.rawUntil("\r\n\r\nok", 2*time.Second)
					if err != nil {
						t.Fatalf("request %d: read %q: %v (want the answer before target_timeout)", i, raw, err)
					}
					if strings.Count(string(raw), "\n") != strings.Count(string(raw), "\r\n") || !strings.Contains(string(raw), "X-A: b\r\n") {
						t.Fatalf("request %d: the client got %q: want the head with CRLFs", i, raw)
					}
				}
				if after := counts(t, p); after["2xx"] != before["2xx"]+2 || after["5xx"] != before["5xx"] {
					t.Fatalf("counted %v -> %v, want two 2xx", before, after)
				}
			})
		})
	}
}

// rawUntil reads the proxy's bytes as they come until they hold end, within
// d.
func (rc *atkConn) rawUntil(end string, d time.Duration) (string, error) {
	rc.c.SetReadDeadline(time.Now().Add(d))
	var raw []byte
	for !strings.Contains(string(raw), end) {
		b := make([]byte, 4096)
		n, err := rc.br.Read(b)
		raw = append(raw, b[:n]...)
		if err != nil {
			return string(raw), err
		}
	}
	return string(raw), nil
}

// stallingTarget is a target whose connections announce a small segment
// size and receive window, as a target behind a real network (MTU 1500)
// with a full backlog does, so that the proxy's send buffer for it stays
// small; it answers health checks and takes nothing of any other request
// past its first bytes, holding the connection open.
func stallingTarget(t *testing.T) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, 536); serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
			}
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveHolding(t, ln, func(c net.Conn) bool {
		first := make([]byte, len("GET /healthz"))
		if _, err := io.ReadFull(c, first); err == nil && string(first) == "GET /healthz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return false
		}
		return true // never read again
	})
}

// TestATargetThatTakesNoneOfALargeHeadTimesOut: a target that stops taking
// a request before all of it was sent (hung, or its backlog full) has
// target_timeout to take the rest, counted from its last progress, then
// the client gets a 504 counted against its group, as on the server path.
// The loop set no deadline until the request was sent whole: the client
// waited for as long as it would (here its 5 s), and the connection was
// held for good. On 127.0.0.1 the kernel takes any allowed head at once,
// so the target here announces a 536-byte segment size and a 4 KiB
// window, as a target across a real network with a full backlog would.
func TestATargetThatTakesNoneOfALargeHeadTimesOut(t *testing.T) {
	var fill strings.Builder // 400 KiB of fields
	for i := range 400 {
		fmt.Fprintf(&fill, "X-Fill-%d: %s\r\n", i, strings.Repeat("a", 1000))
	}
	t.Run("upgrade", func(t *testing.T) {
		p, addr := loopProxy(t, stallingTarget(t), func(l *Listener) {
			l.Limits.MaxHeaderBytes = 1 << 20
			l.Limits.TargetTimeout = Duration(time.Second)
		})
		five0 := counts(t, p)["5xx"]
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetDeadline(start.Add(5 * time.Second))
		go io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+fill.String()+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusGatewayTimeout || time.Since(start) > 4*time.Second {
			t.Fatalf("got %v %v after %s, want a 504 once target_timeout (1 s) passed", resp, err, time.Since(start).Round(time.Millisecond))
		}
		if n := counts(t, p)["5xx"] - five0; n != 1 {
			t.Errorf("%d 5xx counted against the group, want 1", n)
		}
	})
	bothPaths(t, func(t *testing.T, handOff bool) {
		p, addr := loopProxy(t, stallingTarget(t), func(l *Listener) {
			l.Limits.MaxHeaderBytes = 1 << 20
			l.Limits.TargetTimeout = Duration(time.Second)
		})
		// Connection: close, so the proxy's close after its answer tells
		// when the answer came.
		req := strings.Replace(request("GET", "/", handOff), "Host: app.example\r\n", "Host: app.example\r\nConnection: close\r\n"+fill.String(), 1)
		served0, handed0 := p.loopCounts()
		five0 := counts(t, p)["5xx"]
		res := rawExchange(t, addr, req)
		if len(res.statuses) != 1 || res.statuses[0] != http.StatusGatewayTimeout {
			t.Fatalf("got %v after %s, want a 504 once target_timeout (1 s) passed without progress", res.statuses, res.after.Round(time.Millisecond))
		}
		if res.after > 4*time.Second {
			t.Errorf("the 504 came %s after the request, want about target_timeout", res.after.Round(time.Millisecond))
		}
		if n := counts(t, p)["5xx"] - five0; n != 1 {
			t.Errorf("%d 5xx counted against the group, want 1", n)
		}
		onPath(t, p, handOff, served0, handed0)
	})
}
