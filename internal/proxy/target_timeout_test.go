package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
			for i := range 3 {
				time.Sleep(700 * time.Millisecond)
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
			time.Sleep(600 * time.Millisecond)
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
	if a := rc.final(10*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "012" {
		t.Fatalf("a body in parts 0.7s apart (2.1s in all) with a 1s target_timeout: %d %q %v", a.status, a.body, a.err)
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
