package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingUpstream is a real server that counts the connections it accepted.
func countingUpstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

// proxyTo starts a proxy with one route to u and waits until u is healthy.
func proxyTo(t *testing.T, u *httptest.Server) (*Proxy, string) {
	t.Helper()
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := tgOf("e/u", u)
	g.Health.Interval = Duration(time.Hour)      // one check at start, then quiet
	g.Health.Timeout = Duration(5 * time.Second) // which must not time out under load
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/u", 1})}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/u", "healthy", 1)
	return p, addr
}

func TestKeepAliveConnectionsAreReused(t *testing.T) {
	u, conns := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			io.WriteString(w, "part one ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		default:
			io.WriteString(w, "body")
		}
	})
	_, addr := proxyTo(t, u)
	before := conns.Load() // the health check's connection
	for _, path := range []string{"/", "/empty", "/chunked"} {
		for range 20 {
			if code, _, _ := get(t, addr, "", path); code >= 300 {
				t.Fatalf("GET %s: %d", path, code)
			}
		}
	}
	if code, _, _ := get(t, addr, "", "/"); code != 200 {
		t.Fatalf("HEAD-less GET after the others: %d", code)
	}
	// Sequential requests need one upstream connection; allow a spare.
	if n := conns.Load() - before; n > 2 {
		t.Fatalf("61 sequential requests opened %d upstream connections, want them reused", n)
	}
}

func TestDeadKeepAliveConnectionIsRetried(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, addr := proxyTo(t, u)
	for i := range 5 {
		if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		// The target closes every connection while the proxy holds them idle.
		u.CloseClientConnections()
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClientGoneAbortsTheUpstreamRequest(t *testing.T) {
	aborted := make(chan struct{}, 1)
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		select {
		case <-r.Context().Done():
			aborted <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	p, addr := proxyTo(t, u)
	// A listener with TLS, for a client that says close_notify before it
	// goes: its FIN comes after bytes nobody will read.
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir, "a", "app.cutover.test")
	tlsAddr := freeAddr(t)
	l := oneRoute(tlsAddr, WeightedTarget{"e/u", 1})
	l.Name = "test/tls"
	l.TLS = &TLS{CertFile: cert, KeyFile: key}
	g := tgOf("e/u", u)
	g.Health.Interval = Duration(time.Hour)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/u", 1}), l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	// On the loop; on the server path (an HTTP/1.0 request, which the
	// loop hands off with the bytes it read); over TLS.
	for _, path := range []string{"loop", "server path", "tls"} {
		switch path {
		case "tls":
			c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "app.cutover.test", RootCAs: pool})
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: app.cutover.test\r\n\r\n")
			time.Sleep(200 * time.Millisecond)
			c.Close() // close_notify, then FIN
		case "loop":
			client := &http.Client{Timeout: 200 * time.Millisecond}
			if _, err := client.Get("http://" + addr + "/slow"); err == nil {
				t.Fatal("want the client's timeout to end the request")
			}
		default:
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.0\r\nHost: app.example\r\n\r\n")
			time.Sleep(200 * time.Millisecond)
			c.Close()
		}
		select {
		case <-aborted:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the upstream request was not aborted when the client went away", path)
		}
		deadline := time.Now().Add(5 * time.Second)
		for p.Targets()[0].InFlight != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: in-flight count stuck at %d", path, p.Targets()[0].InFlight)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if code, _, _ := get(t, addr, "", "/"); code != 200 {
			t.Fatalf("%s: after an aborted request: %d", path, code)
		}
	}
}

func TestUnreadBodyClosesTheConnection(t *testing.T) {
	big := make([]byte, 1<<20)
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		io.WriteString(w, "small")
	})
	_, addr := proxyTo(t, u)
	resp, err := http.Get("http://" + addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 1000))
	resp.Body.Close() // the proxy's copy fails midway and drops the upstream connection
	for range 5 {
		if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "small" {
			t.Fatalf("after an abandoned body: %d %q", code, body)
		}
	}
}

// TestPipelinedRequestsAreAnswered: requests a client sends before it has
// the previous answer (together, or while the target works) are all
// answered in order, without waiting for a timeout (the answers are sent
// with the read of the next request: see deferAnswer).
func TestPipelinedRequestsAreAnswered(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	})
	_, addr := proxyTo(t, u)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }
	br := bufio.NewReader(c)
	expect := func(paths ...string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for _, p := range paths {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer to %s: %v", p, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != p {
				t.Fatalf("answer to %s: %d %q", p, resp.StatusCode, b)
			}
		}
	}
	start := time.Now()
	for range 3 {
		// One request at a time, then one sent while the target works on
		// the previous, then three at once.
		c.Write([]byte(req("/a")))
		expect("/a")
		c.Write([]byte(req("/slow")))
		time.Sleep(30 * time.Millisecond)
		c.Write([]byte(req("/b")))
		expect("/slow", "/b")
		c.Write([]byte(req("/c") + req("/d") + req("/e")))
		expect("/c", "/d", "/e")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("18 requests took %v", d)
	}
}

// TestExpectContinueOnAKeepAliveConnection: a request that waits for 100
// Continue before it sends its body gets it, on a connection whose previous
// answers went out with the read of the next request, for a small body and
// a streamed one.
func TestExpectContinueOnAKeepAliveConnection(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		io.WriteString(w, r.URL.Path+" "+strconv.FormatInt(n, 10))
	})
	_, addr := proxyTo(t, u)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	answer := func(want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("want %q: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Fatalf("answer %d %q, want %q", resp.StatusCode, b, want)
		}
	}
	c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	answer("/a 0")
	for _, size := range []int{5, 20 << 10} {
		fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", size)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("size %d: first line %q, %v; want 100 Continue before the body", size, line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("after 100 Continue: %q", blank)
		}
		c.Write(bytes.Repeat([]byte("x"), size))
		answer("/up " + strconv.Itoa(size))
	}
	c.Write([]byte("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"))
	answer("/b 0")
}

// TestH2CUpgradeIsNotTunnelled: a request asking to upgrade to h2c goes on
// as a plain HTTP/1.1 request without Upgrade or HTTP2-Settings. A tunnel
// would let the client send HTTP/2 requests for any path straight to the
// target, past the proxy's path rules, forwarding headers and counters.
// A WebSocket upgrade still reaches the target as one.
func TestH2CUpgradeIsNotTunnelled(t *testing.T) {
	got := make(chan http.Header, 1)
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			got <- r.Header.Clone()
		}
		io.WriteString(w, "plain")
	})
	_, addr := proxyTo(t, u)
	for _, c := range []struct{ upgrade, connection, want string }{
		{"h2c", "Upgrade, HTTP2-Settings", ""},
		{"H2C", "upgrade, http2-settings", ""},
		{"websocket, h2c", "Upgrade, HTTP2-Settings", ""},
		{"websocket", "Upgrade", "websocket"},
	} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /up HTTP/1.1\r\nHost: app.example\r\nConnection: "+c.connection+"\r\nUpgrade: "+c.upgrade+
			"\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
		}
		conn.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "plain" {
			t.Errorf("Upgrade: %s: answer %v %q", c.upgrade, err, body)
			continue
		}
		h := <-got
		if h.Get("Upgrade") != c.want {
			t.Errorf("Upgrade: %s: the target got Upgrade %q, want %q", c.upgrade, h.Get("Upgrade"), c.want)
		}
		if c.want == "" && h.Get("HTTP2-Settings") != "" {
			t.Errorf("Upgrade: %s: the target got HTTP2-Settings", c.upgrade)
		}
	}
}
