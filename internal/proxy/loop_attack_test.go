package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests attack the event loop's fast path (loop_linux.go) with real
// sockets on 127.0.0.1: raw clients where framing matters, and raw targets
// (a TCP listener that reads each request with net/http's parser and writes
// a scripted answer byte for byte) where the answer's framing matters.

// atkTarget is a real TCP server that reads requests with net/http's parser
// and answers each with the bytes answer returns (close: close the
// connection after writing them). Health checks (/healthz) get a plain 200.
type atkTarget struct {
	ln       net.Listener
	answer   func(r *http.Request, body []byte) (raw string, close bool)
	requests atomic.Int64 // requests seen, health checks aside
	conns    atomic.Int64 // connections accepted
	closed   atomic.Int64 // connections closed after an answer that said close
	mu       sync.Mutex
	seen     []atkSeen
	wg       sync.WaitGroup
}

type atkSeen struct {
	method, path, host string
	header             http.Header
	body               string
}

func newAtkTarget(t *testing.T, answer func(r *http.Request, body []byte) (string, bool)) *atkTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &atkTarget{ln: ln, answer: answer}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rt.conns.Add(1)
			rt.wg.Add(1)
			go func() {
				defer rt.wg.Done()
				rt.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		rt.wg.Wait()
	})
	return rt
}

func (rt *atkTarget) addr() string { return rt.ln.Addr().String() }

func (rt *atkTarget) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if r.URL.Path == "/healthz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			continue
		}
		rt.requests.Add(1)
		rt.mu.Lock()
		rt.seen = append(rt.seen, atkSeen{r.Method, r.URL.Path, r.Host, r.Header.Clone(), string(body)})
		rt.mu.Unlock()
		raw, closing := rt.answer(r, body)
		if _, err := io.WriteString(c, raw); err != nil {
			return
		}
		if closing {
			c.Close()
			rt.closed.Add(1)
			return
		}
	}
}

func (rt *atkTarget) take() []atkSeen {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	s := rt.seen
	rt.seen = nil
	return s
}

// loopProxy starts a proxy with one plain listener routing everything to
// the target at addr (group "a/web"), lets edit change the listener, and
// waits until the target is healthy.
func loopProxy(t *testing.T, addr string, edit func(*Listener)) (*Proxy, string) {
	t.Helper()
	laddr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := TargetGroup{Name: "a/web", Health: HealthCheck{Path: "/healthz", Interval: Duration(time.Hour), Timeout: Duration(time.Second),
		HealthyThreshold: 1, UnhealthyThreshold: 2}, DeregistrationDelay: Duration(5 * time.Second),
		Targets: []Target{{ID: "a/web-0", Addr: addr}}}
	l := oneRouteNamed("a/production", laddr, "a/web")
	if edit != nil {
		edit(&l)
	}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "a/web", "healthy", 1)
	return p, laddr
}

// onLoop fails t unless the loop served every request since served0,
// handed0 (p.loopCounts) itself: none was handed to the server.
func onLoop(t *testing.T, p *Proxy, served0, handed0 uint64) {
	t.Helper()
	if t.Failed() {
		return
	}
	if s, h := p.loopCounts(); s == served0 || h != handed0 {
		t.Fatalf("the loop served %d and handed off %d: the attack did not reach the fast path", s-served0, h-handed0)
	}
}

// counts is the group's answers by class.
func counts(t *testing.T, p *Proxy) map[string]uint64 {
	t.Helper()
	g, ok := p.Stats().Group("a/web")
	if !ok {
		t.Fatal("no stats for a/web")
	}
	out := map[string]uint64{}
	for k, v := range g.Codes {
		out[k] = v
	}
	return out
}

// rawAnswer is one answer read from the proxy.
type rawAnswer struct {
	status int
	header http.Header
	body   string
	close  bool // the answer says the connection closes after it
	err    error
}

// atkConn is a raw client connection to the proxy.
type atkConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialAtk(t *testing.T, addr string) *atkConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &atkConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *atkConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("writing to the proxy: %v", err)
	}
}

// read reads one answer (interim ones included) within d.
func (rc *atkConn) read(d time.Duration, method string) rawAnswer {
	rc.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		return rawAnswer{err: err}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: string(b), close: resp.Close, err: err}
}

// final reads answers until a final one (status >= 200), within d.
func (rc *atkConn) final(d time.Duration, method string) rawAnswer {
	end := time.Now().Add(d)
	for {
		a := rc.read(time.Until(end), method)
		if a.err != nil || a.status >= 200 {
			return a
		}
	}
}

// quiet reports what the proxy sends within d: nothing (""), or the bytes
// and whether it closed the connection.
func (rc *atkConn) quiet(d time.Duration) (extra string, closed bool) {
	rc.c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(rc.br)
	var ne net.Error
	return string(b), err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestLoopAttackHeadLargerThanTheLimit: a head over max_header_bytes that
// arrives in one read must be refused (431) like the server refuses it, not
// served because the read buffer happened to be larger than the limit.
func TestLoopAttackHeadLargerThanTheLimit(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.Limits.MaxHeaderBytes = 2048 })
	before := counts(t, p)
	rc := dialAtk(t, addr)
	rc.send("GET /big HTTP/1.1\r\nHost: app.example\r\nX-Pad: " + strings.Repeat("a", 3000) + "\r\n\r\n")
	a := rc.final(5*time.Second, "GET")
	if a.err != nil || a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 3 KB head on a 2 KB limit: got %d %v, want 431", a.status, a.err)
	}
	if n := target.requests.Load(); n != 0 {
		t.Fatalf("the target saw %d requests over the header limit", n)
	}
	if after := counts(t, p); after["5xx"] != before["5xx"] {
		t.Fatalf("5xx moved for a client's fault: %v -> %v", before, after)
	}
}

// TestLoopAttackBareLineFeeds: a head whose lines end in bare LF, followed
// by bytes that contain a CRLF CRLF and a body-sized tail. The loop finds
// the head's end by CRLF CRLF; the parser by its own rules: the two must
// agree, or the body the target gets is not the body the client framed.
func TestLoopAttackBareLineFeeds(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.TrustedProxies = []string{TrustNone} })
	before := counts(t, p)
	rc := dialAtk(t, addr)
	rc.send("POST /a HTTP/1.1\nHost: app.example\nContent-Length: 5\n\n" +
		"GET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n" + "hello")
	a := rc.final(5*time.Second, "POST")
	for _, s := range target.take() {
		if s.path == "/smuggled" || s.body == "hello" {
			t.Fatalf("the target got %s %s with body %q: bytes past the request's framing went as its body or as a request", s.method, s.path, s.body)
		}
		if s.path == "/a" && s.body != "GET /" {
			t.Fatalf("the target got body %q for /a, want the 5 bytes after the head (%q)", s.body, "GET /")
		}
	}
	t.Logf("answer %d %v", a.status, a.err)
	if after := counts(t, p); after["5xx"] != before["5xx"] {
		t.Fatalf("5xx moved for a client's fault: %v -> %v", before, after)
	}
}

// TestLoopAttackHostileHeads sends heads a client may craft to confuse the
// proxy and a target about framing or host; each must be refused (400 and
// the connection closed) without the target seeing anything or the group's
// 5xx moving.
func TestLoopAttackHostileHeads(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.TrustedProxies = []string{TrustNone} })
	const h = "POST /x HTTP/1.1\r\nHost: app.example\r\n"
	for _, tc := range []struct{ name, req string }{
		{"CL and TE", h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE and CL", h + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"two different CLs", h + "Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello"},
		{"TE with a space before the colon", h + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"CL with a space before the colon", "GET /x HTTP/1.1\r\nHost: app.example\r\nContent-Length : 5\r\n\r\nhello"},
		{"two Hosts", "GET /x HTTP/1.1\r\nHost: app.example\r\nHost: admin.internal\r\n\r\n"},
		{"no Host", "GET /x HTTP/1.1\r\nX-A: b\r\n\r\n"},
		{"NUL in a value", "GET /x HTTP/1.1\r\nHost: app.example\r\nX-A: a\x00b\r\n\r\n"},
		{"NUL in a name", "GET /x HTTP/1.1\r\nHost: app.example\r\nX\x00A: b\r\n\r\n"},
		{"CR alone in a value", "GET /x HTTP/1.1\r\nHost: app.example\r\nX-A: a\rX-B: c\r\n\r\n"},
		{"negative CL", h + "Content-Length: -1\r\n\r\n"},
		{"CL with a sign", h + "Content-Length: +5\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, p)
			rc := dialAtk(t, addr)
			rc.send(tc.req)
			a := rc.final(5*time.Second, "POST")
			seen := target.take()
			if len(seen) != 0 {
				t.Fatalf("the target saw %+v (answer %d %v)", seen, a.status, a.err)
			}
			if a.err == nil && a.status != http.StatusBadRequest {
				t.Fatalf("got %d %q, want 400 or no answer", a.status, a.body)
			}
			if _, closed := rc.quiet(2 * time.Second); !closed {
				t.Fatal("the connection stayed open after a refused head")
			}
			if after := counts(t, p); after["5xx"] != before["5xx"] {
				t.Fatalf("5xx moved for a client's fault: %v -> %v", before, after)
			}
		})
	}
}

// TestLoopAttackBodyPastContentLength: bytes past the declared body in the
// same packet are a pipelined request: it must be parsed as one (here: the
// server path answers it), never reach the target as part of the first.
func TestLoopAttackBodyPastContentLength(t *testing.T) {
	target := newAtkTarget(t, func(r *http.Request, body []byte) (string, bool) {
		s := r.URL.Path + ":" + string(body)
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(s), s), false
	})
	_, addr := loopProxy(t, target.addr(), nil)
	rc := dialAtk(t, addr)
	rc.send("POST /one HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\nHost: app.example\r\n\r\n")
	a1 := rc.final(5*time.Second, "POST")
	a2 := rc.final(5*time.Second, "GET")
	if a1.body != "/one:hello" || a2.body != "/two:" {
		t.Fatalf("answers %q %v, %q %v; want /one:hello then /two:", a1.body, a1.err, a2.body, a2.err)
	}
	for _, s := range target.take() {
		if strings.Contains(s.body, "GET") {
			t.Fatalf("the target got a body with the next request in it: %+v", s)
		}
	}
}

// TestLoopAttackForwardingHeadersSpoofed: an untrusted client's forwarding
// headers, repeated, in odd case or folded, never reach the target.
func TestLoopAttackForwardingHeadersSpoofed(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.TrustedProxies = []string{"10.0.0.0/8"} })
	for _, tc := range []struct{ name, head string }{
		{"plain", "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Real-IP: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\n"},
		{"odd case", "x-FORWARDED-for: 203.0.113.9\r\nX-FORWARDED-PROTO: https\r\nx-forwarded-HOST: evil.example\r\nx-real-ip: 203.0.113.9\r\nFORWARDED: for=203.0.113.9\r\n"},
		{"repeated", "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 203.0.113.10\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n"},
		{"listed in Connection", "Connection: X-Trace\r\nX-Trace: 1\r\nX-Forwarded-For: 203.0.113.9\r\n"},
		{"folded", "X-Forwarded-For: 203.0.113.9,\r\n 203.0.113.10\r\nX-Forwarded-Proto: https\r\n\tx\r\n"},
		{"underscores", "X_Forwarded_For: 203.0.113.9\r\nX_Forwarded_Proto: https\r\nX_Forwarded_Host: evil.example\r\nX_Real_IP: 203.0.113.9\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s0, h0 := p.loopCounts()
			defer onLoop(t, p, s0, h0)
			rc := dialAtk(t, addr)
			rc.send("GET /h HTTP/1.1\r\nHost: app.example\r\n" + tc.head + "\r\n")
			a := rc.final(5*time.Second, "GET")
			seen := target.take()
			if a.status != 200 || len(seen) != 1 {
				t.Fatalf("answer %d %v, target saw %d", a.status, a.err, len(seen))
			}
			hd := seen[0].header
			if got := hd.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
				t.Fatalf("X-Forwarded-For %q, want only 127.0.0.1", got)
			}
			if got := hd.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "http" {
				t.Fatalf("X-Forwarded-Proto %q, want http", got)
			}
			if got := hd.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != "app.example" {
				t.Fatalf("X-Forwarded-Host %q, want app.example", got)
			}
			if hd.Get("X-Real-IP") != "" || hd.Get("Forwarded") != "" || hd.Get("X-Trace") != "" {
				t.Fatalf("spoofable headers passed: %v", hd)
			}
			for k := range hd {
				if strings.Contains(k, "_") {
					t.Fatalf("%s passed: a CGI-style target reads it as its dashed twin", k)
				}
			}
		})
	}
}

// TestLoopAttackResponseDesync: targets that frame their answers wrong.
// The client must get exactly the answer of its request, never bytes of
// another one, and the target connection that misbehaved is not reused.
// Each case runs on the loop and on the server path (a request with a
// chunked body, which the loop hands off).
func TestLoopAttackResponseDesync(t *testing.T) { bothPaths(t, responseDesync) }

// bothPaths runs an attack on the loop and on the server path: with
// handOff, its requests carry an empty chunked body (request(), which the
// loop hands off), and onPath checks which path served them.
func bothPaths(t *testing.T, attack func(t *testing.T, handOff bool)) {
	for _, path := range []string{"loop", "server path"} {
		t.Run(path, func(t *testing.T) { attack(t, path == "server path") })
	}
}

// request is a bodiless request for path, or with handOff one with an
// empty chunked body: the same to the target, but the server path's.
func request(method, path string, handOff bool) string {
	if handOff {
		return method + " " + path + " HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	}
	return method + " " + path + " HTTP/1.1\r\nHost: app.example\r\n\r\n"
}

// onPath fails t unless the requests since the counts served0 and handed0
// took the path handOff says.
func onPath(t *testing.T, p *Proxy, handOff bool, served0, handed0 uint64) {
	t.Helper()
	if !handOff {
		onLoop(t, p, served0, handed0)
		return
	}
	if _, h := p.loopCounts(); !t.Failed() && h == handed0 {
		t.Fatal("the loop handed nothing off: the attack did not reach the server path")
	}
}

func responseDesync(t *testing.T, handOff bool) {
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
	for _, tc := range []struct {
		name string
		bad  string // the answer to /bad
		// wantBad: the status of /bad's answer (0: the connection closes
		// without a whole answer).
		wantBad int
		method  string
		// wantBody, when set, is the body /bad's answer must have.
		wantBody string
	}{
		{"body past Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + evil, 200, "GET", "ok"},
		{"bytes after the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + evil, 200, "GET", "ok"},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + evil, 200, "GET", "ok"},
		{"a body to HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + evil, 200, "HEAD", ""},
		{"a body to 204", "HTTP/1.1 204 No Content\r\n\r\n" + evil, 204, "GET", ""},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n" + evil, 0, "GET", ""},
		{"chunk size over 64 bits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\nok\r\n0\r\n\r\n" + evil, 0, "GET", ""},
		{"chunk size with 0x", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n" + evil, 0, "GET", ""},
		{"chunk without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n" + evil, 0, "GET", ""},
		{"two different CLs", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 6\r\n\r\nok" + evil, 502, "GET", ""},
		{"interim storm", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 8) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + evil, 502, "GET", ""},
		{"Connection lists Content-Length", "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok" + evil, 200, "GET", "ok"},
		{"Connection lists Transfer-Encoding", "HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + evil, 200, "GET", "ok"},
		{"101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + evil, 502, "GET", ""},
		{"bare LF head with CRLF CRLF in the body", "HTTP/1.1 200 OK\nContent-Length: 8\n\nok\r\n\r\nXXXX" + evil, 200, "GET", "ok\r\n\r\nXX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
				if r.URL.Path == "/bad" {
					return tc.bad, false
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood", false
			})
			p, addr := loopProxy(t, target.addr(), nil)
			s0, h0 := p.loopCounts()
			defer onPath(t, p, handOff, s0, h0)
			conns0 := target.conns.Load()
			rc := dialAtk(t, addr)
			rc.send(request(tc.method, "/bad", handOff))
			a := rc.final(5*time.Second, tc.method)
			switch {
			case tc.wantBad == 0:
				if a.err == nil {
					t.Fatalf("/bad: got a whole answer %d %q, want the connection cut", a.status, a.body)
				}
			case a.err != nil || a.status != tc.wantBad:
				t.Fatalf("/bad: got %d %q %v, want %d", a.status, a.body, a.err, tc.wantBad)
			case strings.Contains(a.body, "EVIL"):
				t.Fatalf("/bad: the answer has another answer's bytes: %q", a.body)
			case tc.wantBody != "" && a.body != tc.wantBody:
				t.Fatalf("/bad: body %q, want %q", a.body, tc.wantBody)
			}
			if tc.wantBad != 0 {
				if extra, _ := rc.quiet(300 * time.Millisecond); extra != "" {
					t.Fatalf("after /bad's answer the client got %q", extra)
				}
			}
			// The next requests, on a new client connection and on the
			// pooled target connections, get their own answers.
			for i := range 3 {
				rc2 := dialAtk(t, addr)
				rc2.send("GET /good HTTP/1.1\r\nHost: app.example\r\n\r\n")
				a2 := rc2.final(5*time.Second, "GET")
				if a2.err != nil || a2.status != 200 || a2.body != "good" {
					t.Fatalf("request %d after /bad: got %d %q %v, want 200 good", i, a2.status, a2.body, a2.err)
				}
			}
			if tc.wantBad != 200 && tc.wantBad != 204 || tc.name == "a body to HEAD" || strings.Contains(tc.bad, evil) {
				if target.conns.Load() == conns0+1 && tc.name != "two different CLs" {
					t.Fatalf("the target connection that sent a misframed answer was reused (%d connections)", target.conns.Load()-conns0)
				}
			}
		})
	}
}

// TestLoopAttackOversizedAnswerHead: an answer head over 32 KiB is the
// target's fault: 502, counted as 5xx, connection to it not kept.
func TestLoopAttackOversizedAnswerHead(t *testing.T) { bothPaths(t, oversizedAnswerHead) }

func oversizedAnswerHead(t *testing.T, handOff bool) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 40<<10) + "\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	before := counts(t, p)
	served0, handed0 := p.loopCounts()
	defer onPath(t, p, handOff, served0, handed0)
	rc := dialAtk(t, addr)
	rc.send(request("GET", "/big", handOff))
	a := rc.final(5*time.Second, "GET")
	if a.err != nil || a.status != 502 {
		t.Fatalf("got %d %v, want 502", a.status, a.err)
	}
	if after := counts(t, p); after["5xx"] != before["5xx"]+1 {
		t.Fatalf("5xx %d -> %d, want +1", before["5xx"], after["5xx"])
	}
}

// TestLoopAttackCloseDelimitedAnswer: an HTTP/1.0 answer without a length
// reaches the client whole (re-chunked), and a target that closes mid-body
// cuts the client's connection (no whole answer made up).
func TestLoopAttackCloseDelimitedAnswer(t *testing.T) { bothPaths(t, closeDelimitedAnswer) }

func closeDelimitedAnswer(t *testing.T, handOff bool) {
	big := strings.Repeat("0123456789", 10000)
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		if r.URL.Path == "/small" {
			return "HTTP/1.0 200 OK\r\n\r\nsmall", true
		}
		if r.URL.Path == "/cut" {
			return "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + big[:5000], true
		}
		return "HTTP/1.0 200 OK\r\n\r\n" + big, true
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	defer onPath(t, p, handOff, served0, handed0)
	rc := dialAtk(t, addr)
	rc.send(request("GET", "/old", handOff))
	a := rc.final(5*time.Second, "GET")
	if a.err != nil || a.status != 200 || a.body != big {
		t.Fatalf("HTTP/1.0 answer: %d, %d bytes, %v", a.status, len(a.body), a.err)
	}
	// A small answer and the target's FIN arrive together: the end of the
	// body is the FIN, which the loop must not miss.
	for i := range 20 {
		rc2 := dialAtk(t, addr)
		rc2.send(request("GET", "/small", handOff))
		if a := rc2.final(3*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "small" {
			t.Fatalf("small HTTP/1.0 answer %d: %d %q %v", i, a.status, a.body, a.err)
		}
	}
	before := counts(t, p)
	rc.send(request("GET", "/cut", handOff))
	a = rc.final(5*time.Second, "GET")
	if a.err == nil {
		t.Fatalf("an answer cut by the target came whole: %d, %d bytes", a.status, len(a.body))
	}
	// The cut answer is the target's failure: counted as its 5xx (what
	// alarms read), not as the 2xx its head said.
	var after map[string]uint64
	if !eventually(5*time.Second, func() bool {
		after = counts(t, p)
		return after["5xx"] == before["5xx"]+1 && after["2xx"] == before["2xx"]
	}) {
		t.Fatalf("after a cut answer: %v -> %v, want one more 5xx and no more 2xx", before, after)
	}
}

// TestLoopAttackSlowHead: a head dribbled a byte at a time is answered 408
// within the read-header timeout (plus the loop's one-second sweep).
func TestLoopAttackSlowHead(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) { l.Limits.ReadHeaderTimeout = Duration(500 * time.Millisecond) })
	before := counts(t, p)
	rc := dialAtk(t, addr)
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		head := "GET /slow HTTP/1.1\r\nHost: app.example\r\nX-Pad: " + strings.Repeat("a", 200)
		for i := range len(head) {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := rc.c.Write([]byte{head[i]}); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	a := rc.read(5*time.Second, "GET")
	took := time.Since(start)
	if a.err != nil || a.status != http.StatusRequestTimeout {
		t.Fatalf("slow head: got %d %v after %v, want 408", a.status, a.err, took)
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("408 came after %v, want within the 500ms timeout plus the sweep", took)
	}
	if target.requests.Load() != 0 {
		t.Fatal("the target saw the slow request")
	}
	if after := counts(t, p); after["5xx"] != before["5xx"] {
		t.Fatalf("5xx moved: %v -> %v", before, after)
	}
}

// TestLoopAttackClientGoneWhileTargetThinks: a client that hangs up while
// the target works is counted 499, not 5xx, and the target connection is
// closed (not reused for another client).
func TestLoopAttackClientGoneWhileTargetThinks(t *testing.T) {
	release := make(chan struct{})
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		if r.URL.Path == "/slow" {
			<-release
			// Like a server that sees its client gone: no answer, a close.
			return "", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	before := counts(t, p)
	conns0 := target.conns.Load()
	// The health check's connection reaches TIME_WAIT after two closes
	// made in the background: let it, before counting.
	eventually(5*time.Second, func() bool { return len(tcpSocketsTo(t, target.addr())) == timeWaitTo(t, target.addr()) })
	tw0 := timeWaitTo(t, target.addr())
	rc := dialAtk(t, addr)
	rc.send("GET /slow HTTP/1.1\r\nHost: app.example\r\n\r\n")
	deadline := time.Now().Add(5 * time.Second)
	for target.requests.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	rc.c.Close()
	deadline = time.Now().Add(5 * time.Second)
	for counts(t, p)["4xx"] == before["4xx"] && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	after := counts(t, p)
	if after["4xx"] != before["4xx"]+1 || after["5xx"] != before["5xx"] {
		t.Fatalf("counts %v -> %v: want one more 4xx (499), no 5xx", before, after)
	}
	// The slow answer, arriving now, must not be served to the next client.
	time.Sleep(100 * time.Millisecond)
	// The abandoned connection to the target was reset, not closed: a
	// close leaves it in TIME_WAIT on the proxy's side for a minute once
	// the target closes too, a local port each (a client hanging up on
	// every request would use them all up, and then every connect fails).
	if n := timeWaitTo(t, target.addr()) - tw0; n != 0 {
		t.Errorf("%d more connections to the target in TIME_WAIT after the abandoned request, want none (reset)", n)
	}
	rc2 := dialAtk(t, addr)
	rc2.send("GET /next HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if a := rc2.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
		t.Fatalf("next: %d %v", a.status, a.err)
	}
	if target.conns.Load() < conns0+2 {
		t.Fatal("the connection of the abandoned request was reused")
	}
}

// TestLoopAttackClientNeverReads: a client that does not read a large
// answer makes the loop stop reading the target: what the target manages
// to write stays around the loop's 64 KiB plus the socket buffers.
func TestLoopAttackClientNeverReads(t *testing.T) {
	var written atomic.Int64
	target := bigTarget(t, 256<<20, 3*time.Second, &written)
	p, addr := loopProxy(t, target, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(c, "GET /huge HTTP/1.1\r\nHost: app.example\r\n\r\n")
	time.Sleep(2 * time.Second)
	w := written.Load()
	t.Logf("the target wrote %d bytes to a client that reads nothing", w)
	if w > 24<<20 {
		t.Fatalf("the target wrote %d MB for a client that reads nothing: no backpressure", w>>20)
	}
	// Close with that answer stuck: it ends within its context, cutting
	// the connection off, and says so.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err = p.Close(ctx)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Close took %v with a stuck answer", took)
	}
	if err == nil {
		t.Fatal("Close cut an answer off and reported nothing")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("after Close the client's connection is not closed: %v", err)
	}
}

// TestLoopAttackManyIdleConnections: idle and half-open clients do not
// stop the loop serving others.
func TestLoopAttackManyIdleConnections(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	_, addr := loopProxy(t, target.addr(), nil)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		switch i % 3 {
		case 1:
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a")
		case 2:
			c.(*net.TCPConn).CloseWrite()
		}
	}
	for range 20 {
		rc := dialAtk(t, addr)
		rc.send("GET /x HTTP/1.1\r\nHost: app.example\r\n\r\n")
		if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
			t.Fatalf("with 300 idle connections: %d %v", a.status, a.err)
		}
	}
}

// TestLoopAttackFlipsAndCloseInFlight: weight flips while requests are in
// flight on the loop, then Close with requests in flight: every request
// gets an answer or a closed connection, no panic.
func TestLoopAttackFlipsAndCloseInFlight(t *testing.T) {
	slow := func(name string) *atkTarget {
		return newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
			time.Sleep(20 * time.Millisecond)
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(name), name), false
		})
	}
	blue, green := slow("blue"), slow("green")
	addr := freeAddr(t)
	p := New(Options{})
	state := func(wb, wg int) State {
		g := func(name string, rt *atkTarget) TargetGroup {
			return TargetGroup{Name: name, Health: HealthCheck{Path: "/healthz", Interval: Duration(time.Hour), Timeout: Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 2},
				DeregistrationDelay: Duration(time.Second), Targets: []Target{{ID: name + "-0", Addr: rt.addr()}}}
		}
		return State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"a/blue", wb}, WeightedTarget{"a/green", wg})},
			TargetGroups: []TargetGroup{g("a/blue", blue), g("a/green", green)}}
	}
	ctx := context.Background()
	if err := p.Apply(ctx, state(100, 0)); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "a/blue", "healthy", 1)
	waitState(t, p, "a/green", "healthy", 1)
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return // closed
				}
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					if resp.StatusCode == 200 && (string(b) == "blue" || string(b) == "green") {
						ok.Add(1)
					} else {
						bad.Add(1)
					}
				}
				c.Close()
			}
		})
	}
	for _, w := range [][2]int{{0, 100}, {100, 0}, {50, 50}, {0, 100}} {
		time.Sleep(200 * time.Millisecond)
		if err := p.Apply(ctx, state(w[0], w[1])); err != nil {
			t.Fatal(err)
		}
	}
	if bad.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("during flips: %d ok, %d bad", ok.Load(), bad.Load())
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		t.Fatalf("Close with requests in flight: %v", err)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad answers around Close", bad.Load())
	}
	// Nothing of the loops outlives Close.
	deadline := time.Now().Add(3 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		st := string(buf[:runtime.Stack(buf, true)])
		left := 0
		for _, g := range strings.Split(st, "\n\n") {
			if strings.Contains(g, "proxy.(*evloop)") || strings.Contains(g, "proxy.(*handoffListener)") {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the loops left after Close:\n%s", left, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLoopAttackFoldedFieldsAreUnfolded: a folded field (obs-fold) is sent
// on as one line (RFC 9112 §5.2): a target that does not unfold would read
// the continuation as a field of its own, here a forged X-Forwarded-For.
func TestLoopAttackFoldedFieldsAreUnfolded(t *testing.T) { bothPaths(t, foldedFields) }

func foldedFields(t *testing.T, handOff bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	heads := make(chan string, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				var buf []byte
				b := make([]byte, 4096)
				for {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					n, err := c.Read(b)
					if err != nil {
						return
					}
					buf = append(buf, b[:n]...)
					for {
						i := bytes.Index(buf, []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						head := string(buf[:i+4])
						buf = buf[i+4:]
						if head == "0\r\n\r\n" {
							continue // the end of a chunked body (the server path's request)
						}
						if !strings.HasPrefix(head, "GET /healthz ") {
							heads <- head
						}
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
					}
				}
			})
		}
	})
	p, addr := loopProxy(t, ln.Addr().String(), func(l *Listener) { l.TrustedProxies = []string{TrustNone} })
	s0, h0 := p.loopCounts()
	defer onPath(t, p, handOff, s0, h0)
	rc := dialAtk(t, addr)
	req := "GET /f HTTP/1.1\r\nHost: app.example\r\nX-A: b\r\n X-Forwarded-For: 6.6.6.6\r\n\r\n"
	if handOff {
		req = "GET /f HTTP/1.1\r\nHost: app.example\r\nX-A: b\r\n X-Forwarded-For: 6.6.6.6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	}
	rc.send(req)
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
		t.Fatalf("folded request: %d %v", a.status, a.err)
	}
	var head string
	select {
	case head = <-heads:
	case <-time.After(5 * time.Second):
		t.Fatal("the target got no request")
	}
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			t.Fatalf("a folded line went to the target: %q in\n%s", line, head)
		}
	}
	if !strings.Contains(head, "\r\nX-A: b X-Forwarded-For: 6.6.6.6\r\n") {
		t.Fatalf("the folded field was not unfolded into one line:\n%s", head)
	}
}

// TestLoopAttackAbsoluteForm: a request in absolute form names a host in
// its target as well as in Host; the proxy routes by one, and the target
// must not be told the other (Go's server takes the URI's host over Host).
func TestLoopAttackAbsoluteForm(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	_, addr := loopProxy(t, target.addr(), func(l *Listener) { l.TrustedProxies = []string{TrustNone} })
	rc := dialAtk(t, addr)
	rc.send("GET http://admin.internal/x HTTP/1.1\r\nHost: app.example\r\n\r\n")
	a := rc.final(5*time.Second, "GET")
	seen := target.take()
	t.Logf("answer %d %q %v; target saw %+v", a.status, a.body, a.err, seen)
	for _, s := range seen {
		if s.host != "app.example" && s.host != "admin.internal" {
			t.Fatalf("the target saw host %q", s.host)
		}
		if fh := s.header.Get("X-Forwarded-Host"); fh != s.host {
			t.Fatalf("the target saw host %q but X-Forwarded-Host %q: routed by one, served as the other", s.host, fh)
		}
	}
}

// TestLoopAttackNoCrossedAnswersUnderLoad: keep-alive clients in parallel,
// a target that answers some requests with bytes past their length (an
// answer of its own making) and some close-delimited: every client gets
// the answer to its own request, every time.
func TestLoopAttackNoCrossedAnswersUnderLoad(t *testing.T) {
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/bad"):
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(p), p) +
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n/evil", false
		case strings.HasSuffix(p, "/old"):
			return "HTTP/1.0 200 OK\r\n\r\n" + p, true
		case strings.HasSuffix(p, "/chunk"):
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(p), p), false
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(p), p), false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	s0, h0 := p.loopCounts()
	defer onLoop(t, p, s0, h0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := range 150 {
				path := fmt.Sprintf("/w%d/r%d", w, i)
				switch i % 4 {
				case 1:
					path += "/bad"
				case 2:
					path += "/old"
				case 3:
					path += "/chunk"
				}
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app.example\r\n\r\n", path)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", path, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != path {
					errs <- fmt.Errorf("%s: got %d %q %v", path, resp.StatusCode, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := counts(t, p); c["5xx"] != 0 {
		t.Errorf("5xx: %v", c)
	}
}

// TestLoopAttackManyHeaders: thousands of fields within the head limit are
// forwarded (each once), and one over the limit is refused before the
// target, the group's 5xx unmoved.
func TestLoopAttackManyHeaders(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	before := counts(t, p)
	var b strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	rc := dialAtk(t, addr)
	rc.send("GET /many HTTP/1.1\r\nHost: app.example\r\n" + b.String() + "\r\n")
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
		t.Fatalf("2500 fields: %d %v", a.status, a.err)
	}
	seen := target.take()
	if len(seen) != 1 || len(seen[0].header) < 2500 || seen[0].header.Get("X-2499") != "v" {
		t.Fatalf("the target did not get the 2500 fields: %d requests", len(seen))
	}
	for i := range 2500 {
		fmt.Fprintf(&b, "X-More-%d: v\r\n", i)
	}
	rc = dialAtk(t, addr)
	rc.send("GET /toomany HTTP/1.1\r\nHost: app.example\r\n" + b.String() + "\r\n")
	if a := rc.final(5*time.Second, "GET"); a.err == nil && a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a head over 32 KiB: %d, want 431 or a closed connection", a.status)
	}
	if n := target.requests.Load(); n != 1 {
		t.Fatalf("the target saw %d requests, want 1", n)
	}
	if after := counts(t, p); after["5xx"] != before["5xx"] {
		t.Fatalf("5xx moved: %v -> %v", before, after)
	}
}

// TestLoopAttackTargetClosesAfterEachAnswer: a target that closes its
// connection after each answer without saying so (no Connection: close):
// the loop must not pool the closed connection, or the next request that
// may not be sent again (a POST) gets a 502. Each POST goes once the
// target has closed the connection of the one before (sooner, the close
// may still be on its way, and no proxy can know of it): the loop may not
// have had the close's event yet, so it looks before reusing.
func TestLoopAttackTargetClosesAfterEachAnswer(t *testing.T) {
	target := newAtkTarget(t, func(r *http.Request, body []byte) (string, bool) {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body), true
	})
	p, addr := loopProxy(t, target.addr(), nil)
	s0, h0 := p.loopCounts()
	defer onLoop(t, p, s0, h0)
	rc := dialAtk(t, addr)
	for i := range 50 {
		if !eventually(5*time.Second, func() bool { return target.closed.Load() == int64(i) }) {
			t.Fatalf("the target closed %d connections, want %d", target.closed.Load(), i)
		}
		body := fmt.Sprintf("post-%d", i)
		rc.send(fmt.Sprintf("POST /p HTTP/1.1\r\nHost: app.example\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		a := rc.final(5*time.Second, "POST")
		if a.err != nil || a.status != 200 || a.body != body {
			t.Fatalf("POST %d: %d %q %v (counts %v)", i, a.status, a.body, a.err, counts(t, p))
		}
	}
	if c := counts(t, p); c["5xx"] != 0 {
		t.Fatalf("5xx: %v", c)
	}
}

// TestLoopAttackMutatedRequests throws mutated requests (seeded, so a
// failure replays) at the loop: whatever a client sends, a target that
// answers well never makes the proxy answer 5xx, and the proxy keeps
// serving.
func TestLoopAttackMutatedRequests(t *testing.T) {
	target := newAtkTarget(t, func(r *http.Request, body []byte) (string, bool) {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false
	})
	p, addr := loopProxy(t, target.addr(), func(l *Listener) {
		l.Limits.ReadHeaderTimeout = Duration(300 * time.Millisecond)
		l.Limits.BodyIdleTimeout = Duration(300 * time.Millisecond)
	})
	pieces := []string{"GET", "POST", "HEAD", "OPTIONS", " ", "  ", "\t", "/", "/a?b=c", "*", "http://x/", "HTTP/1.1", "HTTP/1.0", "HTTP/2",
		"\r\n", "\n", "\r", "\x00", "\x7f", "Host: app.example", "Host:", "Host: a b", "Content-Length: 3", "Content-Length: 99999",
		"Content-Length: -1", "Content-Length: 3, 3", "Transfer-Encoding: chunked", "Transfer-Encoding: Chunked", "Transfer-Encoding:\tchunked",
		"Expect: 100-continue", "Connection: close", "Connection: Upgrade", "Upgrade: websocket", "X-Forwarded-For: 1.2.3.4",
		" folded", "abc", "3\r\nabc\r\n0\r\n\r\n", "0\r\n\r\n", "ffffffffffffffffff\r\n", ":", "a:b", "\r\n\r\n"}
	base := "POST /m HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nabc"
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			seed := uint64(w*7919 + 1)
			next := func(n int) int {
				seed ^= seed << 13
				seed ^= seed >> 7
				seed ^= seed << 17
				return int(seed % uint64(n))
			}
			for range 60 {
				b := []byte(base)
				for range 1 + next(4) {
					at := next(len(b) + 1)
					switch next(3) {
					case 0: // insert a piece
						b = append(b[:at], append([]byte(pieces[next(len(pieces))]), b[at:]...)...)
					case 1: // delete a few bytes
						end := min(len(b), at+1+next(4))
						b = append(b[:at], b[end:]...)
					case 2: // repeat the request (pipelining)
						b = append(b, base...)
					}
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				c.Write(b)
				c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
	wg.Wait()
	t.Logf("480 mutated requests: the target saw %d requests; group counts %v", target.requests.Load(), counts(t, p))
	for _, s := range target.take() {
		// Every body any mutation can frame is 3 bytes (a longer length
		// never completes): more is another request's bytes.
		if len(s.body) > 3 {
			t.Fatalf("the target got %s %s with body %q", s.method, s.path, s.body)
		}
	}
	if c := counts(t, p); c["5xx"] != 0 {
		t.Fatalf("client garbage made %d 5xx answers: %v", c["5xx"], c)
	}
	rc := dialAtk(t, addr)
	rc.send(base)
	if a := rc.final(5*time.Second, "POST"); a.err != nil || a.status != 200 || a.body != "abc" {
		t.Fatalf("after the garbage: %d %q %v", a.status, a.body, a.err)
	}
}

// TestLoopAttackMutatedAnswers: a target answers some requests with
// mutated answers (seeded); whatever they do to the clients that asked,
// the well-framed answers to other requests, on the same pooled target
// connections, reach their own clients intact.
func TestLoopAttackMutatedAnswers(t *testing.T) { bothPaths(t, mutatedAnswers) }

func mutatedAnswers(t *testing.T, handOff bool) {
	base := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	pieces := []string{"\r\n", "\n", "\r\n\r\n", "Content-Length: 2\r\n", "Content-Length: 9\r\n", "Transfer-Encoding: chunked\r\n",
		"Connection: close\r\n", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 103 Early Hints\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "0\r\n\r\n",
		"x", "\x00", " ", ":", "HTTP/1.1 204 No Content\r\n\r\n"}
	var mu sync.Mutex
	seed := uint64(12345)
	next := func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		if strings.HasPrefix(r.URL.Path, "/good/") {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path), false
		}
		b := []byte(base)
		for range 1 + next(3) {
			at := next(len(b) + 1)
			if next(2) == 0 {
				b = append(b[:at], append([]byte(pieces[next(len(pieces))]), b[at:]...)...)
			} else {
				b = append(b[:at], b[min(len(b), at+1+next(3)):]...)
			}
		}
		return string(b), false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	defer func() {
		onPath(t, p, handOff, served0, handed0)
		// Answers that stalled mid-body (a length longer than sent) hold
		// their connections though their clients left (a client that
		// left is not noticed while the target sends nothing, as on the
		// server's path):
		// close without waiting for them.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		p.Close(ctx)
	}()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 40 {
				if w%2 == 0 {
					// The mutated answer's client: anything may happen to it.
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						t.Errorf("dial: %v", err)
						return
					}
					io.WriteString(c, request("GET", fmt.Sprintf("/mut/%d/%d", w, i), handOff))
					c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
					io.Copy(io.Discard, c)
					c.Close()
					continue
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				path := fmt.Sprintf("/good/%d/%d", w, i)
				io.WriteString(c, request("GET", path, handOff))
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Errorf("%s: %v", path, err)
					c.Close()
					return
				}
				body, err := io.ReadAll(resp.Body)
				c.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != path {
					t.Errorf("%s: got %d %q %v: another answer's bytes", path, resp.StatusCode, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestLoopAttackHalfClosedClient: a client that shuts its sending side
// right after its request. The loop takes the end of its input for its
// leaving (as nginx does): whether it answers or not, that is never the
// target group's 5xx, the connection ends, and the target connection of
// an abandoned answer is not pooled.
func TestLoopAttackHalfClosedClient(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		time.Sleep(30 * time.Millisecond)
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	before := counts(t, p)
	for range 5 {
		rc := dialAtk(t, addr)
		rc.send("GET /half HTTP/1.1\r\nHost: app.example\r\n\r\n")
		rc.c.(*net.TCPConn).CloseWrite()
		a := rc.final(3*time.Second, "GET")
		if a.err == nil && (a.status != 200 || a.body != "ok") {
			t.Fatalf("half-closed client got %d %q", a.status, a.body)
		}
		if _, closed := rc.quiet(3 * time.Second); !closed {
			t.Fatal("the connection of a half-closed client stayed open")
		}
	}
	// Every answer that was abandoned left its target connection closed:
	// a later request gets its own answer.
	rc := dialAtk(t, addr)
	rc.send("GET /after HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "ok" {
		t.Fatalf("after half-closed clients: %d %q %v", a.status, a.body, a.err)
	}
	after := counts(t, p)
	if after["5xx"] != before["5xx"] {
		t.Fatalf("5xx moved for clients that left: %v -> %v", before, after)
	}
	t.Logf("5 half-closed clients: counts %v -> %v", before, after)
}

// TestLoopAttackLargeEarlyHints: 103 answers are held for the client with
// the final head; big ones (a long Link list) must not push the held bytes
// past the limit the body's room is computed from (a negative room sliced
// the body and the panic ended the process).
func TestLoopAttackLargeEarlyHints(t *testing.T) { bothPaths(t, largeEarlyHints) }

func largeEarlyHints(t *testing.T, handOff bool) {
	hint := "HTTP/1.1 103 Early Hints\r\nLink: <" + strings.Repeat("a", 25<<10) + ">; rel=preload\r\n\r\n"
	body := strings.Repeat("b", 100<<10)
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		if r.URL.Path == "/empty" {
			return hint + hint + hint + "HTTP/1.1 204 No Content\r\n\r\n", false
		}
		return hint + hint + hint + "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body, false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	for _, path := range []string{"/big", "/empty", "/big"} {
		rc.send(request("GET", path, handOff))
		hints := 0
		for {
			a := rc.read(5*time.Second, "GET")
			if a.err != nil {
				t.Fatalf("%s: %v after %d hints", path, a.err, hints)
			}
			if a.status == 103 {
				hints++
				continue
			}
			want, wantBody := 200, body
			if path == "/empty" {
				want, wantBody = 204, ""
			}
			if a.status != want || a.body != wantBody || hints != 3 {
				t.Fatalf("%s: %d with a %d-byte body after %d hints, want %d with %d bytes after 3", path, a.status, len(a.body), hints, want, len(wantBody))
			}
			break
		}
	}
	onPath(t, p, handOff, served0, handed0)
}

// TestLoopAttackEarlyHintsBehindAPipelinedAnswer: a client that sends two
// requests in one write (pipelining) must get the first one's answer before
// anything of the second's, its 103 Early Hints included. fasthttp keeps the
// answer to a pipelined request in its write buffer while it serves the
// next one and writes Early Hints past that buffer: the 103 of the second
// request reached the client first (so the client took it as the first
// request's), and the first answer waited on the second target's work. The
// loop hands a client that pipelines to the server path, bodiless requests
// and requests with a body alike.
func TestLoopAttackEarlyHintsBehindAPipelinedAnswer(t *testing.T) {
	for _, handOff := range []bool{false, true} {
		t.Run(fmt.Sprint("with a body ", handOff), func(t *testing.T) { hintsBehindAnswer(t, handOff) })
	}
}

func hintsBehindAnswer(t *testing.T, handOff bool) {
	for _, size := range []int{100, 40 << 10} { // read whole by the proxy, and streamed
		first := strings.Repeat("f", size)
		release := make(chan struct{}, 1)
		target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
			if r.URL.Path == "/hinted" {
				// The second answer comes once the client has the first.
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
				return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
					"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", false
			}
			return "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(first)) + "\r\n\r\n" + first, false
		})
		p, addr := loopProxy(t, target.addr(), nil)
		served0, handed0 := p.loopCounts()
		rc := dialAtk(t, addr)
		for round := range 3 { // the first request of the connection, and later ones
			rc.send(request("GET", "/first", handOff) + request("GET", "/hinted", handOff))
			var got []string
			for len(got) == 0 || got[len(got)-1] != "200 second" {
				a := rc.read(5*time.Second, "GET")
				if a.err != nil {
					t.Fatalf("%d-byte first answer, round %d: %v after %q", size, round, a.err, got)
				}
				if len(got) == 0 {
					release <- struct{}{}
				}
				if a.body == first {
					a.body = "first"
				}
				got = append(got, fmt.Sprint(a.status, " ", a.body))
			}
			if want := []string{"200 first", "103 ", "200 second"}; !slices.Equal(got, want) {
				t.Fatalf("%d-byte first answer, round %d: the client read %q, want %q", size, round, got, want)
			}
		}
		onPath(t, p, true, served0, handed0)
		// The deadline the server clears after each answer has a floor
		// (floorWrites): writes between two answers stay bounded.
		p.mu.Lock()
		nl := p.listeners[addr]
		p.mu.Unlock()
		nl.mu.Lock()
		for c := range nl.conns {
			if d, known := writeFloorOf(c); known && d != nl.limits.idle() {
				t.Errorf("a served connection (%T) has a write floor of %s, want the idle time", c, d)
			}
		}
		nl.mu.Unlock()
	}
}

// absGet is a bodiless GET for path; with handOff in absolute form, which
// the loop hands to the server path.
func absGet(path string, handOff bool) string {
	if handOff {
		return "GET http://app.example" + path + " HTTP/1.1\r\nHost: app.example\r\n\r\n"
	}
	return "GET " + path + " HTTP/1.1\r\nHost: app.example\r\n\r\n"
}

// fillPools has n clients GET /fill at once, through the proxy at addr
// (the target must take a while to answer it), so that the pools of every
// loop and of the server path hold idle connections to the targets.
func fillPools(t *testing.T, addr string, n int, handOff bool) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			rc := dialAtk(t, addr)
			rc.send(absGet("/fill", handOff))
			if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
				t.Errorf("filling the pools: %d %v", a.status, a.err)
			}
		})
	}
	wg.Wait()
}

// TestAttackRequestThatKillsItsTargetIsSentAtMostTwice: a GET on a pooled
// connection that fails before any answer is sent again (the target may
// have closed the connection while it was idle), but once, on a new
// connection: a request that makes its target hang up went to it once per
// idle connection (up to 4 times on the loop, without bound on the server
// path).
func TestAttackRequestThatKillsItsTargetIsSentAtMostTwice(t *testing.T) {
	bothPaths(t, killerSentTwice)
}

func killerSentTwice(t *testing.T, handOff bool) {
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		if r.URL.Path == "/boom" {
			return "", true // reads the request, hangs up without an answer
		}
		time.Sleep(300 * time.Millisecond) // the requests overlap: one connection each
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	fillPools(t, addr, 12, handOff)
	target.take()
	for i := range 4 {
		rc := dialAtk(t, addr)
		rc.send(absGet("/boom", handOff))
		if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 502 {
			t.Fatalf("request %d: %d %v, want a 502", i, a.status, a.err)
		}
		n := 0
		for _, s := range target.take() {
			if s.path == "/boom" {
				n++
			}
		}
		if n > 2 {
			t.Fatalf("request %d: the target got it %d times, want at most 2", i, n)
		}
	}
	onPath(t, p, handOff, served0, handed0)
}

// TestAttackRequestThatKillsTwoTargetsIsSentAtMostTwice: sent again after
// its reused connection failed, a GET whose new connection is refused (the
// first target it reached went down) goes to another target on a new
// connection, not on a reused one that would take a third copy (the server
// path sent it three times, the loop twice).
func TestAttackRequestThatKillsTwoTargetsIsSentAtMostTwice(t *testing.T) {
	bothPaths(t, func(t *testing.T, handOff bool) {
		var targets [2]*atkTarget
		var boom atomic.Int32
		for i := range targets {
			targets[i] = newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
				if r.URL.Path == "/boom" {
					if boom.Add(1) == 1 {
						targets[i].ln.Close() // the first: its next connection is refused
					}
					return "", true
				}
				time.Sleep(300 * time.Millisecond) // the requests overlap: one connection each
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
			})
		}
		p, addr := loopProxy(t, targets[0].addr(), nil)
		st := p.State()
		st.TargetGroups[0].Targets = append(st.TargetGroups[0].Targets, Target{ID: "a/web-1", Addr: targets[1].addr()})
		if err := p.Apply(context.Background(), st); err != nil {
			t.Fatal(err)
		}
		waitState(t, p, "a/web", "healthy", 2)
		served0, handed0 := p.loopCounts()
		fillPools(t, addr, 16, handOff) // idle connections to both targets
		rc := dialAtk(t, addr)
		rc.send(absGet("/boom", handOff))
		if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 502 {
			t.Fatalf("%d %v, want a 502", a.status, a.err)
		}
		if n := boom.Load(); n > 2 {
			t.Fatalf("the targets got the request %d times, want at most 2", n)
		}
		onPath(t, p, handOff, served0, handed0)
	})
}

// TestLoopAttackSpaceBeforeColonInAnswer: a target's "Content-Length : 5"
// frames the answer for the proxy's parser; passed on raw beside the
// proxy's own framing, a lenient client downstream would frame it by
// another rule. The field goes on as the parser read it, once.
func TestLoopAttackSpaceBeforeColonInAnswer(t *testing.T) { bothPaths(t, spaceBeforeColon) }

func spaceBeforeColon(t *testing.T, handOff bool) {
	target := newAtkTarget(t, func(r *http.Request, _ []byte) (string, bool) {
		if r.URL.Path == "/te" {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nX-App :\t1\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length : 5\r\nX-App : 1\r\n\r\nhello", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	for _, path := range []string{"/cl", "/te", "/cl"} {
		rc.send(request("GET", path, handOff))
		a := rc.final(5*time.Second, "GET") // Go's reader refuses a name with a space
		if a.err != nil || a.status != 200 || a.body != "hello" || a.header.Get("X-App") != "1" {
			t.Fatalf("%s: %d %q %v %v", path, a.status, a.body, a.header, a.err)
		}
		want := []string{"5"} // /te: chunked, which Go's reader takes out of the header
		if path == "/te" {
			want = nil
		}
		if got := a.header["Content-Length"]; !slices.Equal(got, want) {
			t.Fatalf("%s: Content-Length %q, want %q", path, got, want)
		}
	}
	onPath(t, p, handOff, served0, handed0)
}

// fewFDs is the descriptor limit of the daemon in
// TestLoopAttackOutOfDescriptors.
const fewFDs = 128

// TestLoopAttackOutOfDescriptors: clients hold more connections than the
// proxy process may open descriptors. The admin API must still answer and
// take a change (the proxy keeps descriptors for itself: fdbudget.go). The listener then reports the waiting
// connections again at once, so a loop that kept accepting would spin on
// EMFILE at 100% of a CPU and log without end. It must pause accepting
// (one warning a second at most) and accept again once descriptors are
// free; meanwhile its own shortage is no target's failure: no health check
// fails for it (the target stays healthy, no rollback), a request that
// finds no socket for the target is answered 503 and counted against no
// group, and clients already connected are served or answered, never cut.
func TestLoopAttackOutOfDescriptors(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, pid := startDaemonAs(t, home, "cutover-test-proxyd-fewfds")
	u := upstream(t, "web")
	addr := freeAddr(t)
	l := oneRouteNamed("e/production", addr, "e/web")
	l.Limits.ReadHeaderTimeout = Duration(time.Minute) // the hogs stay
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	logText := func() string {
		b, _ := os.ReadFile(logPath(home))
		return string(b)
	}
	get := func() (int, error) {
		hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get("http://" + addr + "/x")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(); err != nil || code != 200 {
		t.Fatalf("before the attack: %d %v", code, err)
	}
	// Three kept-alive clients, accepted before the attack, ask through
	// it; the third's HTTP/1.0 request is handed off to the server, which
	// needs a descriptor of its own for the connection.
	var kept []*atkConn
	for range 3 {
		k := dialAtk(t, addr)
		defer k.c.Close()
		k.send("GET /kept HTTP/1.1\r\nHost: app.example\r\n\r\n")
		if a := k.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
			t.Fatalf("kept-alive client before the attack: %d %v", a.status, a.err)
		}
		kept = append(kept, k)
	}
	before := groupCounts(t, c, "e/web")

	// accepted (deferred accept needs bytes), never finished
	hogs := holdConns(t, addr, fewFDs+40, "GET / HTTP/1.1\r\nHost: a")
	const paused = "accepting a connection: paused for a second"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logText(), paused) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held, the proxy never ran out of descriptors (limit %d); its log:\n%s", len(hogs), fewFDs, logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	w0, cpu0 := strings.Count(logText(), paused), procCPU(t, pid)
	time.Sleep(3 * time.Second) // health checks run every 100ms meanwhile
	w1, cpu1 := strings.Count(logText(), paused), procCPU(t, pid)
	if used := cpu1 - cpu0; used > 600*time.Millisecond {
		t.Errorf("out of descriptors, the proxy used %s of CPU in 3s: it spins on the listener", used)
	}
	if n := w1 - w0; n > 3*runtime.NumCPU()+2 {
		t.Errorf("%d warnings in 3s: want at most one a second per loop", n)
	}
	// The admin API answers and takes a change, saved to state.json (a
	// rollback during the attack): the last descriptors are the proxy's
	// own, not the clients'.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := c.SetWeights(cctx, WeightChange{Listener: "e/production", Forward: []WeightedTarget{{"e/web", 2}}})
	cancel()
	if err != nil {
		t.Errorf("a weight change while clients hold the connections: %v", err)
	}
	// Both at once: one may have the idle connection to the target, the
	// other needs a new one and finds no descriptor for it.
	for _, k := range kept[:2] {
		k.send("GET /kept HTTP/1.1\r\nHost: app.example\r\n\r\n")
	}
	kept[2].send("GET /kept HTTP/1.0\r\nHost: app.example\r\n\r\n")
	for i, k := range kept {
		a := k.final(5*time.Second, "GET")
		switch {
		case a.err != nil:
			t.Errorf("kept-alive client %d while out of descriptors: %v (cut without an answer)", i, a.err)
		case a.status == 503 && a.body != unavailableMessage:
			t.Errorf("kept-alive client %d: 503 %q, want %q", i, a.body, unavailableMessage)
		case a.status != 200 && a.status != 503:
			t.Errorf("kept-alive client %d while out of descriptors: %d %q, want 200 or 503", i, a.status, a.body)
		}
	}

	for _, h := range hogs {
		h.Close()
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, err := get()
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors free again, a new client still fails after 10s: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	log := logText()
	if strings.Contains(log, "to=unhealthy") {
		t.Errorf("the proxy's shortage made a healthy target unhealthy; its log:\n%s", log)
	}
	if !strings.Contains(log, "out of resources") {
		t.Errorf("no warning names the shortage; the proxy's log:\n%s", log)
	}
	if after := groupCounts(t, c, "e/web"); after.Codes["5xx"] != before.Codes["5xx"] {
		t.Errorf("the group's 5xx moved from %d to %d: the proxy's shortage counted against the target", before.Codes["5xx"], after.Codes["5xx"])
	}
}

// holdConns opens n connections to addr, each sending first, and closes
// them at the end of the test.
func holdConns(t *testing.T, addr string, n int, first string) []net.Conn {
	t.Helper()
	var hogs []net.Conn
	t.Cleanup(func() {
		for _, h := range hogs {
			h.Close()
		}
	})
	for range n {
		h, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dialing hog %d: %v", len(hogs), err)
		}
		hogs = append(hogs, h)
		io.WriteString(h, first)
	}
	return hogs
}

// A listener opened with TLS is accepted by the server, not the loops: the
// descriptor reserve holds there too, and a shortage pauses it instead of
// ending it. Before, clients holding connections took every descriptor
// (the admin API failed), and the server took the EMFILE of its accept for
// the listener's end: the HTTPS port stopped serving for good.
func TestTLSListenerAttackOutOfDescriptors(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, _ := startDaemonAs(t, home, "cutover-test-proxyd-fewfds")
	u := upstream(t, "web")
	addr := freeAddr(t)
	cert, key, roots := selfSigned(t, t.TempDir(), "a", "app.example")
	l := oneRouteNamed("e/production", addr, "e/web")
	l.TLS = &TLS{CertFile: cert, KeyFile: key}
	l.Limits.ReadHeaderTimeout = Duration(time.Minute) // the hogs stay (the handshake's bound too)
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	hc := httpsClient(addr, "app.example", roots)
	hc.Timeout = 3 * time.Second
	get := func() error {
		resp, err := hc.Get("https://app.example/x")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("before the attack: %v", err)
	}
	hogs := holdConns(t, addr, fewFDs+40, "") // no handshake: held until read_header_timeout
	logText := func() string {
		b, _ := os.ReadFile(logPath(home))
		return string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logText(), "accepting a connection: paused for a second") {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held, the proxy never paused its listener (limit %d); its log:\n%s", len(hogs), fewFDs, logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := c.SetWeights(cctx, WeightChange{Listener: "e/production", Forward: []WeightedTarget{{"e/web", 2}}})
	cancel()
	if err != nil {
		t.Errorf("a weight change while clients hold the connections: %v", err)
	}
	for _, h := range hogs {
		h.Close()
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := get()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors free again, a new HTTPS client still fails after 10s: %v; the proxy's log:\n%s", err, logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if log := logText(); strings.Contains(log, "listener stopped") {
		t.Errorf("the listener stopped; the proxy's log:\n%s", log)
	}
}

// The errors that mean the proxy's own shortage, however a dial wraps them,
// and none that means the target's.
func TestOutOfResources(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL, syscall.ENOSPC} {
		for _, err := range []error{
			&dialError{os.NewSyscallError("socket", e)},
			&dialError{os.NewSyscallError("epoll_ctl", e)}, // the loop's dial registering its socket
			&dialError{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", e)}},
			&url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", e)}},
		} {
			if !outOfResources(err) {
				t.Errorf("%v: not seen as the proxy's shortage", err)
			}
		}
	}
	for _, err := range []error{
		&dialError{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}},
		&dialError{os.ErrDeadlineExceeded}, io.ErrUnexpectedEOF, syscall.ECONNRESET,
	} {
		if outOfResources(err) {
			t.Errorf("%v: a target's failure seen as the proxy's shortage", err)
		}
	}
}

// TestLoopTargetConnectionsProbeKeepAlive: the loop's connections to a
// target carry TCP keep-alive probes (as the server path's dialer sets),
// so a target host gone without a word mid-answer is noticed, not waited
// on for ever. /proc/net/tcp shows the timer (2: keep-alive) of the
// established connection to the target.
func TestLoopTargetConnectionsProbeKeepAlive(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
		t.Fatalf("%d %v", a.status, a.err)
	}
	onLoop(t, p, served0, handed0)
	found := 0
	for _, f := range tcpSocketsTo(t, target.addr()) {
		// sl local rem st tx:rx tr:when ...
		if f[3] == "01" {
			found++
			if !strings.HasPrefix(f[5], "02:") {
				t.Errorf("connection to the target without a keep-alive timer: %v", f)
			}
		}
	}
	if found == 0 {
		t.Fatal("no established connection to the target in /proc/net/tcp")
	}
}

// TestLoopAttackConnectionListsHost: a client naming Host in Connection
// must not strip the Host the request was routed by from what the target
// gets.
func TestLoopAttackConnectionListsHost(t *testing.T) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	rc.send("GET /h HTTP/1.1\r\nHost: app.example\r\nConnection: Host, X-Secret\r\nX-Secret: 1\r\n\r\n")
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 {
		t.Fatalf("%d %v", a.status, a.err)
	}
	onLoop(t, p, served0, handed0)
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.seen) != 1 || target.seen[0].host != "app.example" || target.seen[0].header.Get("X-Secret") != "" {
		t.Fatalf("the target saw %+v, want Host app.example and no X-Secret", target.seen)
	}
}

// timeWaitTo counts the IPv4 sockets in TIME_WAIT whose far end is addr.
func timeWaitTo(t *testing.T, addr string) int {
	n := 0
	for _, f := range tcpSocketsTo(t, addr) {
		if f[3] == "06" {
			n++
		}
	}
	return n
}

// tcpSocketsTo is the lines of /proc/net/tcp (split in fields: sl, local,
// remote, state, queues, timer...) of the IPv4 sockets whose far end is
// addr (127.0.0.1:PORT).
func tcpSocketsTo(t *testing.T, addr string) [][]string {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0100007F:%04X", p)
	var out [][]string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 5 && f[2] == want {
			out = append(out, f)
		}
	}
	return out
}

// procCPU is the user and system CPU time process pid has used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the line, in clock ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		var n int64
		fmt.Sscan(s, &n)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// TestAttackPipelinedUpgradeClientResets: a client pipelines a plain
// request and an upgrade, then resets its connection while the target
// thinks about the upgrade. The server holds the first answer for the
// pipeline; sending it fails, and the server closes the connection without
// handing it to the tunnel. What the tunnel would have released (the
// target's connection, its in-flight count, the record) must be released
// all the same, or each such client leaks them for good.
func TestAttackPipelinedUpgradeClientResets(t *testing.T) {
	asked, answer, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		if r.URL.Path != "/ws" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
			return true
		}
		close(asked)
		select {
		case <-answer:
		case <-time.After(10 * time.Second):
			return false
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c) // until the proxy closes its end
		close(released)
		return false
	})
	p, addr := loopProxy(t, target, nil)
	before := counts(t, p)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"+
		"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the target was not asked for the upgrade")
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset: the server's send of /a's answer fails
	time.Sleep(100 * time.Millisecond)
	close(answer)
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("5s after its client reset, the upgrade's target connection is still held (and its in-flight count)")
	}
	total := func(m map[string]uint64) (n uint64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	var after map[string]uint64
	if !eventually(5*time.Second, func() bool { after = counts(t, p); return total(after) >= total(before)+2 }) {
		t.Fatalf("the upgrade was never recorded: %v -> %v", before, after)
	}
}

// eventually polls cond every 20ms for at most d and reports whether it
// held.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestAttackHopByHopFieldsInAnswers: fields of the target's connection
// (and those its Connection lists, which may name internal ones) do not
// reach the client, on either path.
func TestAttackHopByHopFieldsInAnswers(t *testing.T) { bothPaths(t, hopByHopInAnswers) }

func hopByHopInAnswers(t *testing.T, handOff bool) {
	target := newAtkTarget(t, func(*http.Request, []byte) (string, bool) {
		return "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: internal-10.0.0.5\r\nKeep-Alive: timeout=5\r\n" +
			"Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nUpgrade: foo\r\nTE: trailers\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok", false
	})
	p, addr := loopProxy(t, target.addr(), nil)
	served0, handed0 := p.loopCounts()
	rc := dialAtk(t, addr)
	for range 2 { // and the connection carries the next request
		rc.send(request("GET", "/h", handOff))
		a := rc.final(5*time.Second, "GET")
		if a.err != nil || a.status != 200 || a.body != "ok" || a.header.Get("X-App") != "1" {
			t.Fatalf("%d %q %v %v", a.status, a.body, a.header, a.err)
		}
		for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Trailer", "Upgrade", "Te"} {
			if v := a.header.Values(k); len(v) > 0 {
				t.Errorf("the client got the target's %s: %q", k, v)
			}
		}
		if v := a.header.Get("Connection"); strings.Contains(strings.ToLower(v), "secret") {
			t.Errorf("the client got Connection: %s", v)
		}
	}
	onPath(t, p, handOff, served0, handed0)
}

// serveRaw is a target that reads requests with Go's parser and answers
// each by hand with serve on the connection (which it closes when serve
// returns false); it returns its address.
func serveRaw(t *testing.T, serve func(c net.Conn, r *http.Request) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil || !serve(c, r) {
						return
					}
					// What serve left of the body, as any server does before
					// the next request (or the leftover is read as one, and
					// the connection closes just after its answer).
					if _, err := io.Copy(io.Discard, r.Body); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// TestAttackSlowReaderIsNotTheTargetsFailure: a client that pauses in the
// middle of a large answer holds the target up; the target's own send
// timeout then cuts the answer. The client got a cut answer, but the
// target did not fail: no 5xx for alarms to read (a crowd of paused
// downloads would roll a healthy release back).
func TestAttackSlowReaderIsNotTheTargetsFailure(t *testing.T) { bothPaths(t, slowReader) }

func slowReader(t *testing.T, handOff bool) {
	const size = 64 << 20
	target := bigTarget(t, size, time.Second, nil)
	p, addr := loopProxy(t, target, nil)
	_, handed0 := p.loopCounts()
	before := counts(t, p)
	c := slowClient(t, addr, request("GET", "/big", handOff), 3*time.Second) // the target gives up on us meanwhile
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, _ := io.Copy(io.Discard, c)
	if got >= size {
		t.Fatalf("the client got all %d bytes: the target did not time out", got)
	}
	after := cutRecorded(t, p, before)
	if after["5xx"] != before["5xx"] {
		t.Fatalf("a client that held its answer up made the target's 5xx: %v -> %v", before, after)
	}
	if _, h := p.loopCounts(); handOff == (h == handed0) {
		t.Fatalf("handed off %d, want the attack on the %s", h-handed0, map[bool]string{false: "loop", true: "server path"}[handOff])
	}
}

// TestAttackCrashUnderBackpressureIsCounted: a moment's backpressure is
// not a client holding its answer up. A target that crashes half way
// through a large answer, to a client that paused 20 ms and then reads
// as fast as it can through a small window, failed: counted as the
// target's 5xx (not excused as a slow reader's cut, which a write that
// merely found the socket full once made it).
func TestAttackCrashUnderBackpressureIsCounted(t *testing.T) { bothPaths(t, crashUnderBackpressure) }

func crashUnderBackpressure(t *testing.T, handOff bool) {
	const size = 32 << 20 // a quarter comes: more than the sockets' buffers hold
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		if r.URL.Path == "/healthz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
		c.Write(make([]byte, size/4))
		return false // and the connection closes: a crash
	})
	p, addr := loopProxy(t, target, nil)
	before := counts(t, p)
	c := slowClient(t, addr, request("GET", "/big", handOff), 20*time.Millisecond)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if got, _ := io.Copy(io.Discard, c); got >= size {
		t.Fatalf("the client got %d bytes of a crashed answer", got)
	}
	after := cutRecorded(t, p, before)
	if after["5xx"] != before["5xx"]+1 {
		t.Fatalf("a target that crashed mid-answer is not its 5xx: %v -> %v", before, after)
	}
}

// TestSlowReaderOnAListenerThatDroppedTLS: a listener that served TLS and
// was applied again without it is served by the server on a raw
// connection, whose large answers go out through ReadFrom: a client that
// holds its answer up is seen there too (the target's send timeout is not
// the target's failure).
func TestSlowReaderOnAListenerThatDroppedTLS(t *testing.T) {
	const size = 64 << 20
	cert, key, _ := selfSigned(t, t.TempDir(), "a", "app.example")
	target := bigTarget(t, size, time.Second, nil)
	var l Listener
	p, addr := loopProxy(t, target, func(ll *Listener) {
		ll.TLS = &TLS{CertFile: cert, KeyFile: key}
		l = *ll
	})
	l.TLS = nil
	g := p.State().TargetGroups
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: g}); err != nil {
		t.Fatal(err)
	}
	before := counts(t, p)
	c := slowClient(t, addr, request("GET", "/big", false), 3*time.Second)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	head := make([]byte, 12)
	if _, err := io.ReadFull(c, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("not a plain answer: %q %v", head, err)
	}
	if got, _ := io.Copy(io.Discard, c); got >= size {
		t.Fatalf("the client got all %d bytes: the target did not time out", got)
	}
	after := cutRecorded(t, p, before)
	if after["5xx"] != before["5xx"] {
		t.Fatalf("a client that held its answer up made the target's 5xx: %v -> %v", before, after)
	}
}

// cutRecorded waits for the group's counts to record a cut answer (as 2xx
// or 5xx) since before, and returns them.
func cutRecorded(t *testing.T, p *Proxy, before map[string]uint64) map[string]uint64 {
	t.Helper()
	var after map[string]uint64
	if !eventually(5*time.Second, func() bool {
		after = counts(t, p)
		return after["2xx"]+after["5xx"] > before["2xx"]+before["5xx"]
	}) {
		t.Fatalf("the cut answer was not recorded: %v -> %v", before, after)
	}
	return after
}

// bigTarget answers every request but health checks with size bytes,
// giving up (and closing) when a write takes longer than sendTimeout, as
// servers' send timeouts do; written, if set, counts what it wrote.
func bigTarget(t *testing.T, size int, sendTimeout time.Duration, written *atomic.Int64) string {
	return serveRaw(t, func(c net.Conn, r *http.Request) bool {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/healthz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := 0; n < size; n += len(chunk) {
			c.SetWriteDeadline(time.Now().Add(sendTimeout))
			w, err := c.Write(chunk)
			if written != nil {
				written.Add(int64(w))
			}
			if err != nil {
				return false
			}
		}
		return true
	})
}

// TestAttackLateBytesOnAnIdleTargetConnection: a target that writes a
// whole second answer some time after its answer (a bug, or a target
// turned hostile) must not have it read as the answer to the next request
// sent on that pooled connection: the next client gets its own answer.
// On the server path the requests are HTTP/1.0 GETs, which may be sent
// again and so were sent on a pooled connection unchecked.
func TestAttackLateBytesOnAnIdleTargetConnection(t *testing.T) { bothPaths(t, lateBytes) }

func lateBytes(t *testing.T, handOff bool) {
	late := make(chan struct{}) // closed once the late answer is written
	target := serveRaw(t, func(c net.Conn, r *http.Request) bool {
		switch r.URL.Path {
		case "/first":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
			close(late)
		case "/healthz":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		default:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
		}
		return true
	})
	p, addr := loopProxy(t, target, nil)
	served0, handed0 := p.loopCounts()
	defer onPath(t, p, handOff, served0, handed0)
	get := func(path string) string {
		if handOff {
			return "GET " + path + " HTTP/1.0\r\nHost: app.example\r\n\r\n"
		}
		return request("GET", path, false)
	}
	rc := dialAtk(t, addr)
	rc.send(get("/first"))
	if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "ok" {
		t.Fatalf("/first: %d %q %v", a.status, a.body, a.err)
	}
	select {
	case <-late:
	case <-time.After(5 * time.Second):
		t.Fatal("the target did not write its late answer")
	}
	time.Sleep(50 * time.Millisecond) // the proxy has had it (the test is that it is not served)
	for i := range 3 {
		rc := dialAtk(t, addr)
		rc.send(get("/next"))
		if a := rc.final(5*time.Second, "GET"); a.err != nil || a.status != 200 || a.body != "good" {
			t.Fatalf("request %d after the late answer: %d %q %v, want 200 good", i, a.status, a.body, a.err)
		}
	}
}

// An upload's pace starts when the proxy begins to read it for the
// target, not while it connects to the target: a target whose accept queue
// is full for 1.5 s, a body sent whole at once, body_min_rate 1 MiB/s got
// 408 (a helper's review).
func TestUploadToATargetSlowToConnectIsNotTheClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	taddr := ln.Addr().(*net.TCPAddr)
	go func() { // the one health check
		if c, err := ln.Accept(); err == nil {
			http.ReadRequest(bufio.NewReader(c))
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			c.Close()
		}
	}()
	p, addr := loopProxy(t, taddr.String(), func(l *Listener) { l.Limits.BodyIdleTimeout = Duration(time.Second); l.Limits.BodyMinRate = 1 << 20 })
	ln.Close()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: taddr.Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "target")
	tln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer tln.Close()
	filler, err := net.DialTimeout("tcp", taddr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	var connectedAt time.Duration
	start := time.Now()
	go func() {
		time.Sleep(1500 * time.Millisecond)
		c, err := tln.Accept() // the filler: the queue has room again
		if err != nil {
			return
		}
		defer c.Close()
		c2, err := tln.Accept() // the proxy's
		if err != nil {
			return
		}
		defer c2.Close()
		connectedAt = time.Since(start)
		r, err := http.ReadRequest(bufio.NewReader(c2))
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		body := fmt.Sprint(n)
		fmt.Fprintf(c2, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}()
	before := counts(t, p)
	rc := dialAtk(t, addr)
	const size = 200000
	rc.send(fmt.Sprintf("POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: %d\r\n\r\n", size) + strings.Repeat("u", size))
	a := rc.final(10*time.Second, "POST")
	t.Logf("answer %d %q %v after %v; the target took the connection after %v; counts %v -> %v", a.status, a.body, a.err, time.Since(start).Round(time.Millisecond), connectedAt, before, counts(t, p))
	if a.err != nil || a.status != 200 {
		t.Errorf("an upload sent whole at once, to a target slow to connect: %d, want 200", a.status)
	}
}
