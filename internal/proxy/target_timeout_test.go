package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTargetThatStopsAnsweringIs504: a target that takes a request and
// never answers (a handler that hangs in a release) gets the client a 504
// after the listener's target_timeout, counted against its group so the
// release's error rate shows it, and its connection is closed; one that
// stops in the middle of an answer has the answer cut, counted too. A slow
// answer within the timeout, and a body that comes in parts each within it,
// are not cut.
func TestTargetThatStopsAnsweringIs504(t *testing.T) { bothPaths(t, targetStops) }

func targetStops(t *testing.T, handOff bool) {
	left := make(chan string, 4) // paths whose connection the proxy closed
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		switch r.URL.Path {
		case "/hang":
			io.Copy(io.Discard, c) // until the proxy lets go
			left <- r.URL.Path
			return false
		case "/stall":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")
			io.Copy(io.Discard, c)
			left <- r.URL.Path
			return false
		case "/drip":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for i := range 5 {
				time.Sleep(400 * time.Millisecond)
				fmt.Fprintf(c, "1\r\n%d\r\n", i)
			}
			io.WriteString(c, "0\r\n\r\n")
			return true
		case "/ws":
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			b := make([]byte, 4)
			if _, err := io.ReadFull(c, b); err == nil {
				c.Write(b)
			}
			return false
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	p, addr := loopProxy(t, target, func(l *Listener) { l.Limits.TargetTimeout = Duration(time.Second) })
	served0, handed0 := p.loopCounts()
	defer onPath(t, p, handOff, served0, handed0)

	before := counts(t, p)
	rc := dialAtk(t, addr)
	start := time.Now()
	rc.send(request("GET", "/hang", handOff))
	a := rc.final(10*time.Second, "GET")
	if a.err != nil || a.status != http.StatusGatewayTimeout || a.body != "cutover: a/web did not answer within 1s\n" {
		t.Fatalf("a target that never answers: %d %q %v, want 504 naming the group", a.status, a.body, a.err)
	}
	if took := time.Since(start); took < time.Second || took > 4*time.Second {
		t.Errorf("the 504 came after %s, want about the 1s target_timeout", took)
	}
	waitLeft(t, left, "/hang")
	if after := counts(t, p); after["5xx"] != before["5xx"]+1 {
		t.Fatalf("5xx %d -> %d: the hung request is not counted against the group", before["5xx"], after["5xx"])
	}
	if handOff {
		// A request without a body on the server path (HTTP/1.0 is
		// handed off): no body copy starts the wait.
		rc10 := dialAtk(t, addr)
		rc10.send("GET /hang HTTP/1.0\r\nHost: app.example\r\n\r\n")
		if a := rc10.final(10*time.Second, "GET"); a.err != nil || a.status != http.StatusGatewayTimeout {
			t.Fatalf("HTTP/1.0 to a target that never answers: %d %q %v, want 504", a.status, a.body, a.err)
		}
		waitLeft(t, left, "/hang")
		// An upgrade waits for its 101 as long; the tunnel then has no
		// such limit.
		const upgrade = "HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
		rcU := dialAtk(t, addr)
		rcU.send("GET /hang " + upgrade)
		if a := rcU.final(10*time.Second, "GET"); a.err != nil || a.status != http.StatusGatewayTimeout {
			t.Fatalf("an upgrade to a target that never answers: %d %q %v, want 504", a.status, a.body, a.err)
		}
		waitLeft(t, left, "/hang")
		rcU = dialAtk(t, addr)
		rcU.send("GET /ws " + upgrade)
		if a := rcU.read(5*time.Second, "GET"); a.err != nil || a.status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %d %v", a.status, a.err)
		}
		time.Sleep(1500 * time.Millisecond)
		rcU.send("ping")
		rcU.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(io.LimitReader(rcU.br, 4)); string(b) != "ping" {
			t.Fatalf("a tunnel quiet for longer than target_timeout: got %q %v", b, err)
		}
	}

	// The connection goes on after a 504 (the answer said nothing else).
	rc.send(request("GET", "/slow", handOff))
	if a := rc.final(10*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "ok" {
		t.Fatalf("an answer within the timeout after a 504: %d %q %v", a.status, a.body, a.err)
	}
	rc.send(request("GET", "/drip", handOff))
	if a := rc.final(10*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "01234" {
		t.Fatalf("a body in parts 0.4s apart (2s in all) with a 1s target_timeout: %d %q %v", a.status, a.body, a.err)
	}

	before = counts(t, p)
	start = time.Now()
	rc.send(request("GET", "/stall", handOff))
	a = rc.final(10*time.Second, "GET")
	if a.err == nil {
		t.Fatalf("an answer whose target stalled came whole: %d, %d bytes", a.status, len(a.body))
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the stalled answer was cut after %s, want about the 1s target_timeout", took)
	}
	waitLeft(t, left, "/stall")
	var after map[string]uint64
	if !eventually(5*time.Second, func() bool { after = counts(t, p); return after["5xx"] == before["5xx"]+1 }) {
		t.Fatalf("5xx %d -> %d: the stalled answer is not counted against the group", before["5xx"], after["5xx"])
	}
}

// TestTargetTimeoutStartsOnceTheBodyIsSent: an upload the client sends
// slowly (each part within body_idle_timeout, longer than target_timeout
// in all) is not cut as the target's: the wait for the answer starts once
// the request is sent whole, even on a pooled connection whose last
// request left a deadline behind.
func TestTargetTimeoutStartsOnceTheBodyIsSent(t *testing.T) {
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		n, _ := io.Copy(io.Discard, r.Body)
		body := fmt.Sprint(n)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return true
	})
	p, addr := loopProxy(t, target, func(l *Listener) { l.Limits.TargetTimeout = Duration(time.Second) })
	rc := dialAtk(t, addr)
	// On the server path, this leaves the connection to the target pooled
	// with a read deadline a second from now.
	rc.send(request("GET", "/first", true))
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
		t.Fatalf("first request: %d %v", a.status, a.err)
	}
	time.Sleep(1200 * time.Millisecond)
	part := strings.Repeat("u", 5000)
	rc.send("POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 20000\r\n\r\n")
	for range 4 {
		time.Sleep(600 * time.Millisecond)
		rc.send(part)
	}
	if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 200 || a.body != "20000" {
		t.Fatalf("a slow upload (2.4s, target_timeout 1s): %d %q %v, want 200 20000", a.status, a.body, a.err)
	}
	if g, _ := p.Stats().Group("a/web"); g.Codes["5xx"] != 0 {
		t.Fatalf("5xx %d", g.Codes["5xx"])
	}
}

func waitLeft(t *testing.T, left chan string, path string) {
	t.Helper()
	select {
	case got := <-left:
		if got != path {
			t.Fatalf("the proxy let go of %s, want %s", got, path)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the proxy kept the target's connection of %s open", path)
	}
}

// timedTarget is a target that answers health checks and otherwise serves
// as serve does, behind a proxy whose target_timeout is 1s (and the edit,
// if any).
func timedTarget(t *testing.T, serve func(c net.Conn, r *http.Request) bool, edit func(*Listener)) (*Proxy, string) {
	t.Helper()
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		if r.URL.Path == "/healthz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		return serve(c, r)
	})
	return loopProxy(t, target, func(l *Listener) {
		l.Limits.TargetTimeout = Duration(time.Second)
		if edit != nil {
			edit(l)
		}
	})
}

// hangingTarget is a timedTarget that writes what first returns for a
// request, then neither reads nor answers until the test ends.
func hangingTarget(t *testing.T, first func(r *http.Request) string, edit func(*Listener)) (*Proxy, string) {
	t.Helper()
	stop := make(chan struct{})
	p, addr := timedTarget(t, func(c net.Conn, r *http.Request) bool {
		io.WriteString(c, first(r))
		<-stop
		return false
	}, edit)
	t.Cleanup(func() { close(stop) }) // before serveRaw's cleanup waits for the handlers
	return p, addr
}

// slowClient sends req to the proxy at addr from a connection with a small
// receive buffer, then reads nothing for pause.
func slowClient(t *testing.T, addr, req string, pause time.Duration) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(c, req)
	time.Sleep(pause)
	return c
}

// TestTargetTimeoutAfterEarlyHints: a target that sends 103 Early Hints and
// then hangs gets a 504 (after the hints), counted, not a reset.
func TestTargetTimeoutAfterEarlyHints(t *testing.T) { bothPaths(t, hintsThenHang) }

func hintsThenHang(t *testing.T, handOff bool) {
	p, addr := hangingTarget(t, func(*http.Request) string {
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
	}, nil)
	before := counts(t, p)
	rc := dialAtk(t, addr)
	rc.send(request("GET", "/x", handOff))
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != http.StatusGatewayTimeout {
		t.Fatalf("early hints, then nothing: %d %q %v, want 504", a.status, a.body, a.err)
	}
	if after := counts(t, p); after["5xx"] != before["5xx"]+1 {
		t.Fatalf("5xx %d -> %d, want +1", before["5xx"], after["5xx"])
	}
}

// TestTargetTimeoutRestartsAtEachInterimAnswer: target_timeout is the wait
// between the target's reads, the interim answers' too (as nginx's
// proxy_read_timeout): a target that sends 103 Early Hints every 0.8 s
// against a 1 s timeout, then its answer, is served. Before, the clock
// ran from the request's send to the final head: 504.
func TestTargetTimeoutRestartsAtEachInterimAnswer(t *testing.T) { bothPaths(t, hintsThenLate) }

func hintsThenLate(t *testing.T, handOff bool) {
	p, addr := timedTarget(t, func(c net.Conn, r *http.Request) bool {
		for range 2 {
			time.Sleep(800 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
		}
		time.Sleep(800 * time.Millisecond)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	}, nil)
	before := counts(t, p)
	rc := dialAtk(t, addr)
	rc.send(request("GET", "/x", handOff))
	var hints int
	for {
		a := rc.read(5*time.Second, "GET")
		if a.err != nil || a.status >= 200 {
			if a.err != nil || a.status != 200 || a.body != "ok" {
				t.Fatalf("hints every 0.8 s, then the answer: %d %q %v, want 200 ok", a.status, a.body, a.err)
			}
			break
		}
		hints++
	}
	if hints != 2 {
		t.Errorf("%d Early Hints relayed, want 2", hints)
	}
	if after := counts(t, p); after["5xx"] != before["5xx"] {
		t.Fatalf("5xx %d -> %d", before["5xx"], after["5xx"])
	}
}

// TestTargetTimeoutIsBetweenReads: the timeout is for each wait on the
// target, not for the answer as a whole, nor for the client's pauses: a
// small body coming 0.6s after its head (itself 0.6s late) is whole, and
// so is a large chunked answer the target sends steadily while the client
// pauses 2.5s mid-way (the proxy stops reading the target meanwhile, then
// reads on under a fresh clock).
func TestTargetTimeoutIsBetweenReads(t *testing.T) { bothPaths(t, timeoutBetweenReads) }

func timeoutBetweenReads(t *testing.T, handOff bool) {
	const size = 8 << 20
	p, addr := timedTarget(t, func(c net.Conn, r *http.Request) bool {
		if r.URL.Path == "/late" {
			time.Sleep(600 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
			time.Sleep(600 * time.Millisecond)
			io.WriteString(c, "ok")
			return true
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", size)
		part := bytes.Repeat([]byte("x"), 5000)
		for n := 0; n < size; n += len(part) {
			if _, err := c.Write(part[:min(len(part), size-n)]); err != nil {
				return false
			}
			time.Sleep(100 * time.Microsecond)
		}
		io.WriteString(c, "\r\n0\r\n\r\n")
		return true
	}, nil)
	before := counts(t, p)
	rc := dialAtk(t, addr)
	rc.send(request("GET", "/late", handOff))
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "ok" {
		t.Fatalf("head after 0.6s, body 0.6s later: %d %q %v, want 200 ok", a.status, a.body, a.err)
	}
	c := slowClient(t, addr, request("GET", "/big", handOff), 2500*time.Millisecond)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.Copy(io.Discard, resp.Body); got != size || err != nil {
		t.Fatalf("a steady chunked answer to a client that paused 2.5s: %d of %d bytes, %v", got, size, err)
	}
	if after := counts(t, p); after["5xx"] != before["5xx"] {
		t.Fatalf("5xx %d -> %d", before["5xx"], after["5xx"])
	}
}

// TestTargetStallAfterAPausedClientIsCounted: a client that paused once
// (holding the answer up) and then read on does not hide the target's own
// stall after that: the cut answer is the target's 5xx.
func TestTargetStallAfterAPausedClientIsCounted(t *testing.T) { bothPaths(t, stallAfterPause) }

func stallAfterPause(t *testing.T, handOff bool) {
	p, addr := hangingTarget(t, func(*http.Request) string {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 64<<20) + strings.Repeat("x", 4<<20)
	}, nil)
	before := counts(t, p)
	c := slowClient(t, addr, request("GET", "/big", handOff), 1500*time.Millisecond) // holds the answer up once
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.Copy(io.Discard, c); got >= 64<<20 {
		t.Fatalf("the client got %d bytes: the answer was not cut", got)
	}
	var after map[string]uint64
	if !eventually(5*time.Second, func() bool { after = counts(t, p); return after["5xx"] == before["5xx"]+1 }) {
		t.Fatalf("the target's stall after the client read on is not its 5xx: %v -> %v", before, after)
	}
}

// TestTargetThatTakesNoUploadIs504: a target that neither reads an upload
// nor answers is given target_timeout to take each part (nginx's
// proxy_send_timeout), then the client gets 504; one that answers early
// and then hangs before its body is timed out too.
func TestTargetThatTakesNoUploadIs504(t *testing.T) {
	p, addr := hangingTarget(t, func(r *http.Request) string {
		if r.URL.Path == "/early" {
			return "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 10\r\n\r\n"
		}
		return ""
	}, func(l *Listener) { l.Limits.BodyIdleTimeout = Duration(2 * time.Second) })
	before := counts(t, p)
	rc := dialAtk(t, addr)
	const size = 256 << 20
	go func() {
		io.WriteString(rc.c, fmt.Sprintf("POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: %d\r\n\r\n", size))
		part := []byte(strings.Repeat("u", 64<<10))
		for n := 0; n < size; n += len(part) {
			rc.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := rc.c.Write(part); err != nil {
				return
			}
		}
	}()
	if a := rc.final(10*time.Second, "POST"); a.err != nil || a.status != http.StatusGatewayTimeout {
		t.Fatalf("an upload to a target that takes none of it: %d %q %v, want 504", a.status, a.body, a.err)
	}
	rc = dialAtk(t, addr)
	rc.send("POST /early HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("u", 20000))
	if a := rc.final(10*time.Second, "POST"); a.err == nil && a.status == 413 {
		t.Fatalf("a 413 whose 10-byte body never came was answered whole: %q", a.body)
	} else if a.err != nil && isTimeout(a.err) {
		t.Fatalf("an early answer whose body never came: no answer nor close within 10s")
	}
	var after map[string]uint64
	if !eventually(5*time.Second, func() bool { after = counts(t, p); return after["5xx"] == before["5xx"]+2 }) {
		t.Fatalf("5xx %d -> %d, want +2", before["5xx"], after["5xx"])
	}
}

// TestLoopTargetTimeoutIsTheTargets: on the loop, a client that sends a
// byte now and then does not keep a target silent mid-body from being
// timed out; and the clock starts once the request is sent: a target
// whose connect hangs (its accept queue full) gets the dial's own 5s and
// a 502, not a 504 for an answer it was never asked for.
func TestLoopTargetTimeoutIsTheTargets(t *testing.T) {
	p, addr := hangingTarget(t, func(*http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789"
	}, nil)
	_, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	rc.send(request("GET", "/stall", false))
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(400 * time.Millisecond):
				rc.c.Write([]byte("G"))
			}
		}
	}()
	start := time.Now()
	a := rc.final(8*time.Second, "GET")
	close(done)
	if a.err == nil {
		t.Fatalf("a stalled answer came whole: %d", a.status)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("a client's bytes kept a stalled target from timing out for %s (target_timeout 1s)", took)
	}
	if _, h := p.loopCounts(); h != handed0 {
		t.Fatal("the stalled answer was handed off: the attack did not reach the loop")
	}

	// A target whose accept queue is full: its SYNs go unanswered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	taddr := ln.Addr().(*net.TCPAddr)
	go func() { // the one health check, on a connection of its own
		if c, err := ln.Accept(); err == nil {
			http.ReadRequest(bufio.NewReader(c))
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			c.Close()
		}
	}()
	p2, addr2 := loopProxy(t, taddr.String(), func(l *Listener) { l.Limits.TargetTimeout = Duration(time.Second) })
	ln.Close()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: taddr.Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	filler, err := net.DialTimeout("tcp", taddr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	served0, handed0 := p2.loopCounts()
	defer onLoop(t, p2, served0, handed0)
	rc = dialAtk(t, addr2)
	start = time.Now()
	rc.send(request("GET", "/x", false))
	a = rc.final(10*time.Second, "GET")
	if took := time.Since(start); a.err != nil || a.status != http.StatusBadGateway || took < 4*time.Second {
		t.Fatalf("a connect that hangs: %d %q %v after %s, want 502 after the dial's 5s", a.status, a.body, a.err, took)
	}
}

// TestEarlyAnswerIsNotHeldByAStalledUpload: a target that refuses an
// upload at once (413) while the client stalls in the middle of it: the
// client gets the 413 after the drain's few seconds, not after
// body_idle_timeout (30s by default).
func TestEarlyAnswerIsNotHeldByAStalledUpload(t *testing.T) {
	p, addr := timedTarget(t, func(c net.Conn, r *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
		return false
	}, func(l *Listener) { l.Limits.TargetTimeout = 0 })
	before := counts(t, p)
	rc := dialAtk(t, addr)
	start := time.Now()
	rc.send("POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("u", 20000))
	a := rc.final(15*time.Second, "POST")
	if a.err != nil || a.status != http.StatusRequestEntityTooLarge || a.body != "too large" {
		t.Fatalf("an early 413 to a stalled upload: %d %q %v", a.status, a.body, a.err)
	}
	if took := time.Since(start); took > drainTime+2*time.Second {
		t.Fatalf("the 413 came after %s: the stalled upload held it (the drain takes at most %s)", took, drainTime)
	}
	if after := counts(t, p); after["4xx"] != before["4xx"]+1 || after["5xx"] != before["5xx"] {
		t.Fatalf("counts %v -> %v, want the target's 4xx", before, after)
	}
}

// TestAnUploadAnsweredAsItEndsIsNotEarly: a target that answers as soon as
// it has a streamed body's last part may do so before the copy has seen
// its last write return; that answer is not an early one (which drops the
// target's connection and closes the client's): 300 chunked uploads on one
// keep-alive connection take one connection to the target.
func TestAnUploadAnsweredAsItEndsIsNotEarly(t *testing.T) {
	target := newAtkTarget(t, func(r *http.Request, body []byte) (string, bool) {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	_, addr := loopProxy(t, target.addr(), nil)
	conns0 := target.conns.Load()
	rc := dialAtk(t, addr)
	for i := range 300 {
		body := fmt.Sprintf("up-%d", i)
		rc.send(fmt.Sprintf("POST /up HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body))
		if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 200 || a.body != body || a.close {
			t.Fatalf("upload %d: %d %q %v, close %v", i, a.status, a.body, a.err, a.close)
		}
	}
	if n := target.conns.Load() - conns0; n > 1 {
		t.Errorf("%d connections to the target for 300 uploads on one client connection, want 1", n)
	}
}
