package proxy

import (
	"bufio"
	"context"
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

	"github.com/cutoverdev/cutover/internal/testenv"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago, not handed out before by this test process (testenv.FreePort: below
// the ephemeral range, where the kernel picks neither an outgoing
// connection's source port nor a listener's ":0").
func freeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
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
