//go:build linux

package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// The event loops' tests: every other test of the package runs through the
// loops too (plain listeners are theirs); these check what is theirs alone:
// which requests they serve and which they hand to the server, every
// framing of an answer relayed raw, backpressure, retries and failures.

// rawConn opens a connection to the proxy and reads answers from it.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends req and reads one answer (method is the request's, for HEAD).
func (r *rawClient) do(req string) (*http.Response, string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, req); err != nil {
		r.t.Fatal(err)
	}
	method := strings.Fields(req)[0]
	var resp *http.Response
	for resp == nil || resp.StatusCode < 200 { // past 100 Continue
		var err error
		if resp, err = http.ReadResponse(r.br, &http.Request{Method: method}); err != nil {
			r.t.Fatalf("reading the answer to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
		}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		r.t.Fatalf("reading the body of the answer to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	return resp, string(b)
}

// TestLoopServesPlainRequestsAndHandsOffTheRest: a keep-alive GET is
// answered by the loop; an upgrade, a chunked upload, Expect, HTTP/1.0 and
// pipelined requests are handed to the server, which answers them as before.
func TestLoopServesPlainRequestsAndHandsOffTheRest(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	p, addr := proxyTo(t, u)
	s0, h0 := p.loopCounts()
	c := dialRaw(t, addr)
	for i := range 5 {
		resp, body := c.do(fmt.Sprintf("GET /n%d HTTP/1.1\r\nHost: app\r\n\r\n", i))
		if resp.StatusCode != 200 || body != fmt.Sprintf("GET /n%d ", i) {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
	resp, body := c.do("POST /small HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello")
	if resp.StatusCode != 200 || body != "POST /small hello" {
		t.Fatalf("small POST: %d %q", resp.StatusCode, body)
	}
	if s, h := p.loopCounts(); s-s0 != 6 || h != h0 {
		t.Fatalf("the loop served %d and handed off %d, want 6 and 0", s-s0, h-h0)
	}

	for _, tc := range []struct{ name, req, want string }{
		{"chunked upload", "POST /up HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "POST /up hello"},
		{"expect", "POST /ex HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", "POST /ex ok"},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nHost: app\r\n\r\n", "GET /old "},
		{"body after the head", "POST /late HTTP/1.1\r\nHost: app\r\nContent-Length: 20000\r\n\r\n" + strings.Repeat("x", 20000), "POST /late " + strings.Repeat("x", 20000)},
		{"absolute form", "GET http://app/abs HTTP/1.1\r\nHost: app\r\n\r\n", "GET /abs "},
	} {
		_, h1 := p.loopCounts()
		c := dialRaw(t, addr)
		resp, body := c.do(tc.req)
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s: %d %.60q, want 200 %.60q", tc.name, resp.StatusCode, body, tc.want)
		}
		if _, h2 := p.loopCounts(); h2 != h1+1 {
			t.Errorf("%s: handed off %d connections, want 1", tc.name, h2-h1)
		}
	}

	// Pipelined: two requests in one write are answered in order, by the server.
	c = dialRaw(t, addr)
	io.WriteString(c.c, "GET /p1 HTTP/1.1\r\nHost: app\r\n\r\nGET /p2 HTTP/1.1\r\nHost: app\r\n\r\n")
	for _, want := range []string{"GET /p1 ", "GET /p2 "} {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("pipelined: %q, want %q", b, want)
		}
	}
}

// TestLoopRelaysEveryFraming: answers with a length, chunked (with a
// trailer), until the target closes (re-chunked for the client), to HEAD,
// 204 and 304 reach the client whole, and the client's connection carries
// the next request after each.
func TestLoopRelaysEveryFraming(t *testing.T) {
	target, _ := rawTarget(t, func(n int, head string) (string, bool) {
		switch head {
		case "GET /":
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
		case "GET /length":
			return "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Kept: yes\r\n\r\nhello world", false
		case "GET /chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n", false
		case "GET /close":
			return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true
		case "HEAD /length":
			return "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", false
		case "GET /none":
			return "HTTP/1.1 204 No Content\r\n\r\n", false
		case "GET /same":
			return "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", false
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false
	})
	p, addr := proxyToAddr(t, target)
	waitState(t, p, "e/raw", "healthy", 1)
	s0, h0 := p.loopCounts()
	c := dialRaw(t, addr)
	for _, tc := range []struct {
		req, body string
		status    int
		chunked   bool
	}{
		{"GET /length", "hello world", 200, false},
		{"GET /chunked", "hello world", 200, true},
		{"GET /close", "until the end", 200, true},
		{"HEAD /length", "", 200, false},
		{"GET /none", "", 204, false},
		{"GET /same", "", 304, false},
		{"GET /length", "hello world", 200, false},
	} {
		f := strings.Fields(tc.req)
		resp, body := c.do(f[0] + " " + f[1] + " HTTP/1.1\r\nHost: app\r\n\r\n")
		if resp.StatusCode != tc.status || body != tc.body {
			t.Fatalf("%s: %d %q, want %d %q", tc.req, resp.StatusCode, body, tc.status, tc.body)
		}
		if chunked := len(resp.TransferEncoding) > 0; chunked != tc.chunked {
			t.Errorf("%s: chunked %v, want %v", tc.req, chunked, tc.chunked)
		}
		if resp.Close {
			t.Errorf("%s: the client's connection closes", tc.req)
		}
		if tc.req == "HEAD /length" && resp.ContentLength != 11 {
			t.Errorf("HEAD: Content-Length %d, want the target's 11", resp.ContentLength)
		}
		if tc.req == "GET /chunked" && resp.Trailer.Get("X-Sum") != "1" {
			t.Errorf("chunked: trailer %v, want X-Sum: 1", resp.Trailer)
		}
	}
	if s, h := p.loopCounts(); s-s0 != 7 || h != h0 {
		t.Fatalf("the loop served %d and handed off %d, want 7 and 0", s-s0, h-h0)
	}
}

// TestLoopStreamsALargeAnswerToASlowClient: 64 MiB relayed to a client that
// reads slowly arrives whole, and the proxy holds back the target rather than
// buffering it.
func TestLoopStreamsALargeAnswerToASlowClient(t *testing.T) {
	const size = 64 << 20
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i * 7)
	}
	want := sha256.Sum256(big)
	var wrote atomic.Int64
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for off := 0; off < size; off += 64 << 10 {
			n, err := w.Write(big[off : off+64<<10])
			wrote.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	_, addr := proxyTo(t, u)
	c := dialRaw(t, addr)
	c.c.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(c.c, "GET /big HTTP/1.1\r\nHost: app\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Read 1 MiB, then stop: the target cannot have sent much more than the
	// sockets' buffers (the proxy's receive buffer may grow to tcp_rmem's
	// maximum, 32 MiB here) and the proxy's bounded one (64 KiB) hold.
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if ahead := wrote.Load() - 1<<20; ahead > 48<<20 {
		t.Errorf("the target wrote %d bytes beyond what the client read: the proxy buffers instead of holding it back", ahead)
	}
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := h.Sum(nil); string(got) != string(want[:]) {
		t.Fatal("the body arrived changed")
	}
}

// TestLoopSendsAgainWhenTheTargetClosedAnIdleConnection: a target that
// closes every connection after one answer, without saying so, makes the
// pooled connection fail at the next request; a GET is sent again on a new
// one, and the client sees no error.
func TestLoopSendsAgainWhenTheTargetClosedAnIdleConnection(t *testing.T) {
	target, conns := rawTarget(t, func(n int, head string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	p, addr := proxyToAddr(t, target)
	waitState(t, p, "e/raw", "healthy", 1)
	c := dialRaw(t, addr)
	for i := range 20 {
		resp, body := c.do("GET /x HTTP/1.1\r\nHost: app\r\n\r\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(5 * time.Millisecond) // the close reaches the proxy (or not: both must work)
	}
	if n := conns.Load(); n < 20 {
		t.Errorf("%d connections to the target for 20 answers on closed ones", n)
	}
	for _, g := range p.Stats().Groups {
		if g.Group == "e/raw" && g.Codes["5xx"] != 0 {
			t.Errorf("%d answers counted 5xx", g.Codes["5xx"])
		}
	}
}

// TestLoopLooksBeforeReusingForARequestThatCannotBeSentAgain: an idle
// connection whose target closed it, or wrote past its answer, while the
// loop has not yet had the event (both are in the socket, not yet in the
// loop's flags) is not handed to a request that may not be sent again (a
// POST would get a 502). A GET takes it unlooked at (a dead one is sent
// again on a fresh one): what a target sent before the loop's wait
// returned is handled before any request of the pass takes a connection
// (TestLoopAttackLateAnswerIsNotTheNextGETs). The loop is not run here:
// the idle list is driven directly, as the loop would between two events.
func TestLoopLooksBeforeReusingForARequestThatCannotBeSentAgain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &evloop{idle: map[string][]*upc{}}
	addr := ln.Addr().String()
	idle := func(peer func(net.Conn)) *upc {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.(*net.TCPConn).File() // a blocking duplicate the test owns
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		peer(s)
		u := &upc{l: l, fd: fd, addr: addr}
		t.Cleanup(u.close)
		l.release(u, true)
		time.Sleep(50 * time.Millisecond) // what the peer did has reached the socket
		return u
	}
	for _, tc := range []struct {
		name string
		peer func(net.Conn)
		ok   bool
	}{
		{"open", func(net.Conn) {}, true},
		{"closed by the target", func(s net.Conn) { s.Close() }, false},
		{"bytes past the answer", func(s net.Conn) { io.WriteString(s, "HTTP/1.1 200 OK\r\n") }, false},
	} {
		u := idle(tc.peer)
		if got := l.takeIdle(addr, true); (got == u) != tc.ok {
			t.Errorf("%s: a POST got the idle connection: %v, want %v", tc.name, got == u, tc.ok)
		}
		if !tc.ok && u.fd >= 0 {
			t.Errorf("%s: the unusable connection was not closed", tc.name)
		}
		u = idle(tc.peer)
		if got := l.takeIdle(addr, false); got != u {
			t.Errorf("%s: a GET did not get the idle connection (it needs no look)", tc.name)
		}
		u.close()
	}
}

// TestLoopTriesAnotherTargetWhenOneCannotBeReached: a target that refuses
// connections is skipped for another of the group (once); with none left
// the answer is a 502 naming the group, not a target.
func TestLoopTriesAnotherTargetWhenOneCannotBeReached(t *testing.T) {
	u := upstream(t, "alive")
	dead := freeAddr(t)
	// Both healthy at first: the dead one dies after its first check.
	deadLn, err := net.Listen("tcp", dead)
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(deadLn, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	p, addr := proxyToAddr(t, hostOf(u), dead)
	waitState(t, p, "e/raw", "healthy", 2)
	deadLn.Close()
	for i := range 10 {
		if code, body, _ := get(t, addr, "app", "/"); code != 200 || body != "alive" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	// Only the dead one left.
	st := p.State()
	st.TargetGroups[0].Targets = st.TargetGroups[0].Targets[1:]
	if err := p.Apply(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	code, body, _ := get(t, addr, "app", "/")
	if code != 502 || body != badGatewayMessage("e/raw") || strings.Contains(body, dead) {
		t.Fatalf("no reachable target: %d %q, want 502 %q", code, body, badGatewayMessage("e/raw"))
	}
}

// TestLoopCountsAClientThatLeftAs499: a client that hangs up while its
// target works is counted 499, not against the target, and the target's
// connection is not reused for the next request.
func TestLoopCountsAClientThatLeftAs499(t *testing.T) {
	release := make(chan struct{})
	u, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	p, addr := proxyTo(t, u)
	c := dialRaw(t, addr)
	io.WriteString(c.c, "GET /slow HTTP/1.1\r\nHost: app\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	c.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got uint64
		for _, g := range p.Stats().Groups {
			if g.Group == "e/u" {
				got = g.Codes["4xx"]
				if g.Codes["5xx"] != 0 {
					t.Fatalf("the client's hang-up counted against the target: %+v", g.Codes)
				}
			}
		}
		if got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 499 counted (4xx: %d)", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	before := conns.Load()
	if code, body, _ := get(t, addr, "app", "/after"); code != 200 || body != "ok" {
		t.Fatalf("next request: %d %q", code, body)
	}
	if conns.Load() == before {
		t.Error("the next request reused the connection of the abandoned one")
	}
}

// TestLoopDropsAClientThatStopsReading: a client that stops taking a large
// answer is dropped after the listener's idle timeout (nginx's send_timeout),
// and its target's connection closed, rather than held forever; a target
// that is merely slow to send is waited for.
func TestLoopDropsAClientThatStopsReading(t *testing.T) {
	targetDone := make(chan error, 1)
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			chunk := make([]byte, 64<<10)
			var err error
			for i := 0; i < 2048 && err == nil; i++ { // 128 MiB at most
				_, err = w.Write(chunk)
			}
			targetDone <- err
		case "/slow":
			w.(http.Flusher).Flush()
			time.Sleep(2500 * time.Millisecond)
			io.WriteString(w, "late")
		}
	})
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := tgOf("e/u", u)
	g.Health.Interval = Duration(time.Hour)
	l := oneRoute(addr, WeightedTarget{"e/u", 1})
	l.Limits.IdleTimeout = Duration(time.Second)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/u", "healthy", 1)

	// Slower than the idle timeout, but the client reads: it gets the answer.
	c := dialRaw(t, addr)
	if resp, body := c.do("GET /slow HTTP/1.1\r\nHost: app\r\n\r\n"); resp.StatusCode != 200 || body != "late" {
		t.Fatalf("slow target: %d %q", resp.StatusCode, body)
	}

	c = dialRaw(t, addr)
	c.c.(*net.TCPConn).SetReadBuffer(16 << 10)
	io.WriteString(c.c, "GET /big HTTP/1.1\r\nHost: app\r\n\r\n")
	select {
	case err := <-targetDone:
		if err == nil {
			t.Fatal("the target wrote 128 MiB to a client that reads nothing")
		}
	case <-time.After(8 * time.Second):
		t.Fatal("the proxy still holds the target's connection 8 s after its client stopped reading (idle timeout 1s)")
	}
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c.c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("the client's connection (%d bytes read): %v, want it closed by the proxy", n, err)
	}
}

// TestLoopServesAClientThatSpeaksLate: listeners accept deferred (the
// kernel hands a connection over once its first bytes came, or after about
// a second without) and the loop reads at once after accepting. A client
// that waits before its request, past the deferral, is served all the
// same, as is one that sends its head in two parts around the accept.
func TestLoopServesAClientThatSpeaksLate(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})
	p, addr := proxyTo(t, u)
	s0, _ := p.loopCounts()
	late := dialRaw(t, addr)
	split := dialRaw(t, addr)
	io.WriteString(split.c, "GET /split HTTP/1.1\r\n")
	time.Sleep(2500 * time.Millisecond)
	if resp, body := late.do("GET /late HTTP/1.1\r\nHost: app\r\n\r\n"); resp.StatusCode != 200 || body != "GET /late" {
		t.Fatalf("a request sent 2.5 s after connecting: %d %q", resp.StatusCode, body)
	}
	if resp, body := split.do("Host: app\r\n\r\n"); resp.StatusCode != 200 || body != "GET /split" {
		t.Fatalf("a head sent in two parts 2.5 s apart: %d %q", resp.StatusCode, body)
	}
	if s1, _ := p.loopCounts(); s1-s0 != 2 {
		t.Fatalf("the loops served %d of the 2 requests, want both", s1-s0)
	}
}

// twoLoops starts a proxy with two loops (GOMAXPROCS 3 while it starts)
// in front of a target that answers with the request's path.
func twoLoops(t *testing.T) (*Proxy, string) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3)) // two loops and a spare P
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	p, addr := proxyTo(t, u)
	if n := len(p.loops.ls); n != 2 {
		t.Fatalf("%d loops at GOMAXPROCS 3, want 2", n)
	}
	return p, addr
}

// TestLoopsShareABurstOfConnections: the listener wakes whichever loop
// waits, so a burst of connections can land on one loop; kept alive, they
// would hold it busy and the other idle for as long as they last. Here one
// loop is held up while 32 connections come, so the other accepts them
// all: it keeps its share and hands the rest over, and every connection
// is answered.
func TestLoopsShareABurstOfConnections(t *testing.T) {
	p, addr := twoLoops(t)
	a, b := p.loops.ls[0], p.loops.ls[1]
	held, release := make(chan struct{}), make(chan struct{})
	b.do(func() { close(held); <-release })
	<-held
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	const n = 32
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, addr)
		if _, err := fmt.Fprintf(clients[i].c, "GET /c%d HTTP/1.1\r\nHost: app\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
	}
	if !eventually(5*time.Second, func() bool { return a.conns.Load()+b.conns.Load() == n }) {
		t.Fatalf("the loops hold %d and %d connections, want %d in all", a.conns.Load(), b.conns.Load(), n)
	}
	ca, cb := a.conns.Load(), b.conns.Load()
	close(release)
	released = true
	if lo, hi := min(ca, cb), max(ca, cb); hi > lo+1+lo/8 {
		t.Fatalf("the loop that accepted holds %d connections and the held-up one %d: want them shared", ca, cb)
	}
	for i, c := range clients {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != fmt.Sprintf("/c%d", i) {
			t.Fatalf("connection %d: %d %q", i, resp.StatusCode, body)
		}
		c.c.Close()
	}
	if !eventually(5*time.Second, func() bool { return a.conns.Load() == 0 && b.conns.Load() == 0 }) {
		t.Fatalf("all closed, the loops still count %d and %d connections", a.conns.Load(), b.conns.Load())
	}
}

// TestServerPathDialsWithoutTheRequestsContext: a context made from a
// fasthttp.RequestCtx (as net.Dialer makes one for its timeout) keeps a
// goroutine that reads the RequestCtx when the server stops, after the
// server has reset it for another request: a data race the race detector
// caught once at a test's end. The server path's dial gets a context of
// its own.
func TestServerPathDialsWithoutTheRequestsContext(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	var dials, fromRequest atomic.Int64
	dial := p.upstream.dial
	p.upstream.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		if _, ok := ctx.(*fasthttp.RequestCtx); ok {
			fromRequest.Add(1)
		}
		return dial(ctx, network, addr)
	}
	g := tgOf("e/u", u)
	g.Health.Interval = Duration(time.Hour)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/u", 1})}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/u", "healthy", 1)
	// A chunked body: handed to the server, which dials the target.
	c := dialRaw(t, addr)
	resp, body := c.do("POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if dials.Load() == 0 || fromRequest.Load() != 0 {
		t.Fatalf("%d dials, %d of them with the request's context: want some, and none", dials.Load(), fromRequest.Load())
	}
}

// TestLoopsServeWhenOneHasStopped: a loop that has stopped (its epoll set
// failed) holds no connection, which makes it the least busy: connections
// are not handed to it, and all are served by the others.
func TestLoopsServeWhenOneHasStopped(t *testing.T) {
	p, addr := twoLoops(t)
	p.loops.ls[1].shutdown()
	for i := range 8 {
		c := dialRaw(t, addr)
		resp, body := c.do(fmt.Sprintf("GET /c%d HTTP/1.1\r\nHost: app\r\n\r\n", i))
		if resp.StatusCode != 200 || body != fmt.Sprintf("/c%d", i) {
			t.Fatalf("connection %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := p.loops.ls[0].conns.Load(); n != 8 {
		t.Fatalf("the running loop holds %d connections, want 8", n)
	}
}

// loopListenerOf returns the loops' side of p's one listener.
func loopListenerOf(p *Proxy) *loopListener {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, nl := range p.listeners {
		return nl.loop
	}
	return nil
}

// TestALoopThatStopsClosesWhatWasHandedToIt: connections another loop
// handed over and still queued when a loop stops are closed and uncounted,
// not left open (the listener's drain waits for its count to reach 0).
func TestALoopThatStopsClosesWhatWasHandedToIt(t *testing.T) {
	p, addr := twoLoops(t)
	ll := loopListenerOf(p)
	a, b := p.loops.ls[0], p.loops.ls[1]
	held, release := make(chan struct{}), make(chan struct{})
	b.do(func() {
		close(held)
		<-release
		b.mu.Lock()
		b.stop = true // as when its epoll set fails
		b.mu.Unlock()
	})
	<-held
	const n = 8
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, addr)
		fmt.Fprintf(clients[i].c, "GET /c%d HTTP/1.1\r\nHost: app\r\n\r\n", i)
	}
	if !eventually(5*time.Second, func() bool { return a.conns.Load()+b.conns.Load() == n }) {
		close(release)
		t.Fatalf("the loops hold %d and %d connections, want %d in all", a.conns.Load(), b.conns.Load(), n)
	}
	queued := b.conns.Load()
	if queued == 0 {
		close(release)
		t.Fatal("no connection was handed to the held-up loop")
	}
	close(release)
	<-b.done
	if !eventually(5*time.Second, func() bool { return ll.open.Load() == int64(a.conns.Load()) && b.conns.Load() == 0 }) {
		t.Fatalf("the listener counts %d open connections, the running loop holds %d and the stopped one %d", ll.open.Load(), a.conns.Load(), b.conns.Load())
	}
	closed := 0
	for _, c := range clients {
		if _, err := http.ReadResponse(c.br, nil); err != nil {
			closed++
		}
	}
	if closed != int(queued) {
		t.Fatalf("%d connections closed unanswered, want the %d queued for the stopped loop", closed, queued)
	}
}

// TestLoopAnswersWhatItAcceptedAsItsListenerCloses: once a listener is
// closing, the loops leave its waiting connections in the socket (the next
// proxy serves them after a restart: the supervisor holds a copy, as this
// test does), and a connection a loop had accepted just before (here
// accepted by hand and adopted after stopAccepting) gets its answer, with
// Connection: close, instead of being closed unanswered.
func TestLoopAnswersWhatItAcceptedAsItsListenerCloses(t *testing.T) {
	p, addr := twoLoops(t)
	ll := loopListenerOf(p)
	kept, err := unix.FcntlInt(uintptr(ll.fd), unix.F_DUPFD_CLOEXEC, 0) // the supervisor's copy
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(kept)
	ll.stopAccepting(0)

	c := dialRaw(t, addr) // completes in the backlog of the kept socket
	io.WriteString(c.c, "GET /late HTTP/1.1\r\nHost: app\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	if n := ll.open.Load(); n != 0 {
		t.Fatalf("a loop accepted %d connections of a closing listener", n)
	}
	l := p.loops.ls[0]
	l.call(func() {
		fd, ip, err := rawAccept(kept)
		if err != nil {
			t.Errorf("accepting from the kept socket: %v", err)
			return
		}
		ll.open.Add(1)
		l.conns.Add(1)
		l.adopt(fd, ip, ll, nil)
	})
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("the connection accepted as its listener closed: %v (want its answer)", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "/late" || !resp.Close {
		t.Fatalf("got %d %q, close %v; want 200 \"/late\" and Connection: close", resp.StatusCode, b, resp.Close)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer: %v, want the connection closed", err)
	}
	if !eventually(5*time.Second, func() bool { return ll.open.Load() == 0 }) {
		t.Fatalf("the listener counts %d open connections", ll.open.Load())
	}
}

// responsive, what a ping from the supervisor asks, fails while the
// proxy's lock is held or one of its event loops does not run, and holds
// again once they are free (a deadlocked Apply and a stuck loop serve
// nothing without exiting; the supervisor kills a proxy that does not
// answer: TestHungProxyIsKilledAndStartedAgain).
func TestResponsiveChecksTheLockAndEachLoop(t *testing.T) {
	p, _ := twoLoops(t)
	if !p.responsive(2 * time.Second) {
		t.Fatal("an idle proxy is not responsive")
	}
	p.mu.Lock()
	if p.responsive(200 * time.Millisecond) {
		t.Error("responsive with its lock held")
	}
	p.mu.Unlock()
	if !p.responsive(2 * time.Second) {
		t.Fatal("not responsive once the lock is free")
	}
	for i, l := range p.loops.ls {
		stuck, started := make(chan struct{}), make(chan struct{})
		l.do(func() { close(started); <-stuck })
		<-started
		if p.responsive(200 * time.Millisecond) {
			t.Errorf("responsive with loop %d stuck", i)
		}
		close(stuck)
		if !p.responsive(2 * time.Second) {
			t.Fatalf("not responsive once loop %d runs again", i)
		}
	}
}
