package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
//
// On Linux the port is below the ephemeral range (ip_local_port_range),
// where the kernel picks neither the source port of an outgoing connection
// nor a listener's ":0": a port taken from that range and closed was taken
// again before the test listened on it, by a connection of another test
// binary running beside this one ("the port is already in use").
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := listenBelowEphemeral()
		if err != nil {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may give a closed port again: a test that asks for
		// two (a listener and an address where nothing listens) then got
		// the same one, and health checks of the "dead" target reached the
		// proxy's own listener.
		if _, again := handedOut.LoadOrStore(addr, true); !again {
			return addr
		}
	}
	t.Fatal("no port not handed out before in 100 tries")
	return ""
}

// handedOut holds the addresses freeAddr has returned.
var handedOut sync.Map

// nextPort walks the ports below the ephemeral range from a start of this
// process's own, so two test binaries seldom try the same ones.
var nextPort atomic.Int64

func init() { nextPort.Store(int64(os.Getpid()) * 7919) }

// listenBelowEphemeral listens on a free loopback port below the ephemeral
// range (from 10000), or fails when that range is not known or full.
func listenBelowEphemeral() (net.Listener, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return nil, err
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low <= 11000 {
		return nil, fmt.Errorf("ephemeral range %q: no room below it", b)
	}
	span := int64(low - 10000)
	for range 200 {
		port := 10000 + (nextPort.Add(1) % span)
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return ln, nil
		}
	}
	return nil, errors.New("no free port below the ephemeral range")
}

// upstream starts a real HTTP server that answers its name on every path.
func upstream(t testing.TB, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// newTestProxy returns a Proxy closed at the end of the test.
func newTestProxy(t testing.TB, opts Options) *Proxy {
	t.Helper()
	p := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// fastHealth checks every 20ms and needs 1 success, 2 failures.
var fastHealth = HealthCheck{Path: "/", Interval: Duration(20 * time.Millisecond), Timeout: Duration(500 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 2}

// tgOf builds a target group of the given upstreams with fast health checks.
func tgOf(name string, ups ...*httptest.Server) TargetGroup {
	g := TargetGroup{Name: name, Health: fastHealth, DeregistrationDelay: Duration(5 * time.Second)}
	for i, u := range ups {
		g.Targets = append(g.Targets, Target{ID: fmt.Sprintf("%s-%d", name, i), Addr: hostOf(u)})
	}
	return g
}

// waitState waits until every target of group is in state.
func waitState(t testing.TB, p *Proxy, group, state string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		count := 0
		var seen []string
		for _, ts := range p.Targets() {
			if ts.Group == group {
				seen = append(seen, ts.ID+"="+ts.State)
				if ts.State == state {
					count++
				}
			}
		}
		if count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: want %d targets %s, have %v", group, n, state, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get sends one GET to the proxy listener at addr and returns status and body.
func get(t testing.TB, addr, host, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// rawTarget is a target written byte for byte: answer returns what to send
// for the n-th request on a connection (and whether to close after it).
func rawTarget(t *testing.T, answer func(n int, head string) (string, bool)) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	addr = connTarget(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			out, closeAfter := answer(n, req.Method+" "+req.URL.Path)
			if _, err := io.WriteString(c, out); err != nil || closeAfter {
				return
			}
		}
	})
	return addr, conns
}

// connTarget is a target on 127.0.0.1 that serves each connection with
// serve, then closes it; it returns its address.
func connTarget(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	acceptEach(ln, serve)
	return ln.Addr().String()
}

// serveHolding serves each connection ln accepts with serve; one it says to
// keep stays open, unread, until the test ends (with ln), the others are
// closed. It returns ln's address.
func serveHolding(t testing.TB, ln net.Listener, serve func(c net.Conn) (keep bool)) string {
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		close(done)
	})
	acceptEach(ln, func(c net.Conn) {
		if serve(c) {
			<-done
		}
	})
	return ln.Addr().String()
}

// acceptEach serves each connection ln accepts with serve, then closes
// it, until ln is closed.
func acceptEach(ln net.Listener, serve func(c net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
}

// proxyToAddr starts a proxy with one route to target addrs, checked once
// before it returns (health checks go to "/" and must answer 200).
func proxyToAddr(t *testing.T, addrs ...string) (*Proxy, string) {
	t.Helper()
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := TargetGroup{Name: "e/raw", Health: fastHealth}
	g.Health.Interval = Duration(time.Hour)
	g.Health.Timeout = Duration(5 * time.Second) // the one check must not time out under load
	for i, a := range addrs {
		g.Targets = append(g.Targets, Target{ID: fmt.Sprintf("raw-%d", i), Addr: a})
	}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/raw", 1})}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	// Apply does not wait for the first health checks; a request sent
	// before they end gets 503 (a CI run under -race load did).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.waitFirstChecks(ctx)
	return p, addr
}

// getLater sends a GET of url through c in the background; the channel
// gives "STATUS BODY", or the error.
func getLater(c *http.Client, url string) <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			out <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	return out
}

// inFlight is the requests in flight at all of p's targets.
func inFlight(p *Proxy) int {
	n := 0
	for _, ts := range p.Targets() {
		n += ts.InFlight
	}
	return n
}

// listenerConns is the connections p's listener at addr has accepted on
// its server path and still holds, or 0 if it has none there.
func listenerConns(p *Proxy, addr string) int {
	p.mu.Lock()
	l := p.listeners[addr]
	p.mu.Unlock()
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
