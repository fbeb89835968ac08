package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rawUpgradeTarget answers 200 to a request that asks for no upgrade (the
// health checks) and hands the connection of one that does to h, once it
// answered 101.
func rawUpgradeTarget(t *testing.T, h func(c *net.TCPConn, br *bufio.Reader)) string {
	t.Helper()
	return connTarget(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") == "" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		h(c.(*net.TCPConn), br)
	})
}

// A half-close from either end of a tunnel is passed on, and the other
// direction keeps flowing: a client that sends, half-closes, then reads the
// rest (Docker's attach, any "send, then read the rest" protocol) gets the
// rest; a target that half-closes still gets what the client sends after.
// Before, the first end closed both sockets and the rest was lost.
func TestTunnelHalfCloseIsPassedOn(t *testing.T) {
	clientFirst := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
		got, _ := io.ReadAll(br) // until the client's half-close
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintf(c, "you sent %q; bye\n", got)
	})
	rest := make(chan string, 1)
	targetFirst := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
		io.WriteString(c, "send me the rest\n")
		c.CloseWrite()
		got, err := io.ReadAll(br)
		rest <- fmt.Sprintf("%q %v", got, err)
	})
	for _, tc := range []struct {
		name, target string
	}{{"client half-closes", clientFirst}, {"target half-closes", targetFirst}} {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := proxyToAddr(t, tc.target)
			waitState(t, p, "e/raw", "healthy", 1)
			conn, br := openTunnel(t, addr)
			if tc.target == clientFirst {
				io.WriteString(conn, "data")
				conn.(*net.TCPConn).CloseWrite()
				rest, err := io.ReadAll(br)
				if string(rest) != "you sent \"data\"; bye\n" {
					t.Fatalf("after the client's half-close: %q (%v), want the target's answer to what it sent", rest, err)
				}
				return
			}
			line, err := br.ReadString('\n')
			if err != nil || line != "send me the rest\n" {
				t.Fatalf("before the target's half-close: %q %v", line, err)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("the target's half-close was not passed on as EOF: %v", err)
			}
			io.WriteString(conn, "the rest")
			conn.(*net.TCPConn).CloseWrite()
			select {
			case got := <-rest:
				if got != `"the rest" <nil>` {
					t.Fatalf("the target read %s after its half-close, want what the client sent", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the target never read the client's half-close")
			}
			// The target read it all, then closed: the tunnel ends.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after both half-closes the tunnel did not end: %v", err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				ts := p.Targets()
				if len(ts) == 1 && ts[0].InFlight == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the ended tunnel is still in flight: %+v", ts)
				}
			}
		})
	}
}

// A tunnel is its target's request in flight: a drain waits for it up to
// the group's deregistration delay, and the target is removed then. The
// tunnel must end with it: before, it went on carrying a client to a
// release taken out of the routes, with no health checks and no counters.
func TestTunnelEndsWhenItsTargetsDrainDoes(t *testing.T) {
	u := echoUpgrade(t)
	other := upstream(t, "other")
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := tgOf("e/u", u)
	g.DeregistrationDelay = Duration(time.Second)
	g2 := tgOf("e/o", other)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/u", 1})}, TargetGroups: []TargetGroup{g, g2}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/u", "healthy", 1)
	conn, br := openTunnel(t, addr)
	g.Targets = nil // the cutover: the route goes to e/o, e/u's target drains
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/o", 1})}, TargetGroups: []TargetGroup{g, g2}}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "while draining\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo: while draining\n" {
		t.Fatalf("the tunnel during its target's drain: %q %v", line, err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("read %q from a tunnel whose target's drain ended", b)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("the tunnel ended %s after the drain began: want at the end of the 1s deregistration delay", waited)
	}
	for _, ts := range p.Targets() {
		if ts.Group == "e/u" {
			t.Fatalf("the drained target is still listed: %+v", ts)
		}
	}
	// The route serves the new release.
	if code, body, _ := get(t, addr, "", "/"); code != 200 || !strings.Contains(body, "other") {
		t.Fatalf("after the drain: %d %q", code, body)
	}
	if drain, idle := tunnelsCut(p, cutDrain), tunnelsCut(p, cutIdle); drain != 1 || idle != 0 {
		t.Fatalf("cutover_proxy_tunnels_cut_total: drain %v, idle %v, want 1 and 0", drain, idle)
	}
}

// tunnelsCut is p's cutover_proxy_tunnels_cut_total{reason}.
func tunnelsCut(p *Proxy, reason string) float64 {
	return testutil.ToFloat64(p.metrics.tunnelsCut.WithLabelValues(reason))
}

// The same over TLS: the client's close_notify after its last bytes is its
// half-close; the target's answer still comes, then the proxy's own
// close_notify.
func TestTunnelHalfCloseOverTLS(t *testing.T) {
	target := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
		got, _ := io.ReadAll(br)
		fmt.Fprintf(c, "you sent %q; bye\n", got)
	})
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	g := TargetGroup{Name: "e/w", Health: fastHealth, Targets: []Target{{ID: "w-0", Addr: target}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{{Name: "e/production", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key},
		Rules: []Rule{{Forward: []WeightedTarget{{"e/w", 1}}}}}}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/w", "healthy", 1)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.cutover.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade over TLS: %v %v", resp, err)
	}
	io.WriteString(c, "data")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); string(rest) != "you sent \"data\"; bye\n" || err != nil {
		t.Fatalf("after the client's close_notify: %q (%v), want the target's answer then the proxy's close_notify", rest, err)
	}
}

// An end that half-closed is read no more, so its later reset (or its host
// gone, its keep-alive probes unanswered) was seen by nothing: the tunnel,
// its two sockets and its target's in-flight count stayed until the other
// end acted (third attack review). The tunnel now ends with it, either way.
func TestTunnelEndsWhenItsHalfClosedEndGoes(t *testing.T) {
	for _, who := range []string{"client", "target"} {
		t.Run(who+" half-closes, then resets", func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			gotEOF := make(chan struct{}, 1)
			target := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
				if who == "target" {
					io.WriteString(c, "bye\n")
					c.CloseWrite()
					time.Sleep(100 * time.Millisecond)
					c.SetLinger(0)
					c.Close() // a reset
					return
				}
				io.ReadAll(br) // until the client's half-close, passed on
				gotEOF <- struct{}{}
				<-release // then open and silent
			})
			p, addr := proxyToAddr(t, target)
			waitState(t, p, "e/raw", "healthy", 1)
			conn, br := openTunnel(t, addr)
			if who == "target" {
				if rest, err := io.ReadAll(br); string(rest) != "bye\n" || err != nil {
					t.Fatalf("before the target's reset: %q %v", rest, err)
				}
				// The client stays open and silent.
			} else {
				io.WriteString(conn, "data")
				conn.(*net.TCPConn).CloseWrite()
				select {
				case <-gotEOF:
				case <-time.After(5 * time.Second):
					t.Fatal("the client's half-close did not reach the target")
				}
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close() // a reset
			}
			var inFlight int
			for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				inFlight = 0
				for _, ts := range p.Targets() {
					inFlight += ts.InFlight
				}
				if inFlight == 0 && p.tunnels.Load() == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("3s after the %s reset its half-closed end: in flight %d, tunnels %d; want the tunnel ended", who, inFlight, p.tunnels.Load())
				}
			}
		})
	}
}

// A tunnel that passes no data either way for tunnel_idle_timeout is cut,
// and its target's in-flight count ends with it; one whose data flows with
// shorter gaps, whichever end sends, lives on. Before, a tunnel whose two
// ends forgot it lived as long as the proxy. Over plain TCP and over TLS.
func TestTunnelIdleForTunnelIdleTimeoutIsCut(t *testing.T) {
	target := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line != "push\n" {
				io.WriteString(c, line) // an echo: data both ways
				continue
			}
			for range 7 { // the target alone sends
				time.Sleep(300 * time.Millisecond)
				io.WriteString(c, "tick\n")
			}
		}
	})
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	for _, overTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "TLS"}[overTLS], func(t *testing.T) {
			p := newTestProxy(t, Options{})
			addr := freeAddr(t)
			l := Listener{Name: "e/production", Addr: addr, Rules: []Rule{{Forward: []WeightedTarget{{"e/w", 1}}}},
				Limits: Limits{TunnelIdleTimeout: Duration(1500 * time.Millisecond)}}
			if overTLS {
				l.TLS = &TLS{CertFile: cert, KeyFile: key}
			}
			g := TargetGroup{Name: "e/w", Health: fastHealth, Targets: []Target{{ID: "w-0", Addr: target}}}
			if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
				t.Fatal(err)
			}
			waitState(t, p, "e/w", "healthy", 1)
			var c net.Conn
			var err error
			if overTLS {
				c, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"http/1.1"}})
			} else {
				c, err = net.DialTimeout("tcp", addr, 5*time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(9 * time.Second))
			io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.cutover.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			br := bufio.NewReader(c)
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			for i := range 7 { // 2.1 s of echoes, 300 ms apart
				time.Sleep(300 * time.Millisecond)
				fmt.Fprintf(c, "ping %d\n", i)
				if line, err := br.ReadString('\n'); line != fmt.Sprintf("ping %d\n", i) {
					t.Fatalf("echo %d, with data every 300 ms (tunnel_idle_timeout 1.5s): %q %v", i, line, err)
				}
			}
			io.WriteString(c, "push\n")
			for i := range 7 { // 2.1 s in which only the target sends
				if line, err := br.ReadString('\n'); line != "tick\n" {
					t.Fatalf("tick %d, sent by the target every 300 ms: %q %v", i, line, err)
				}
			}
			quiet := time.Now()
			b, err := br.ReadByte()
			if took := time.Since(quiet); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || took < 1400*time.Millisecond {
				t.Fatalf("after %s of silence: %q %v, want the tunnel cut after tunnel_idle_timeout (1.5s)", took, b, err)
			}
			if !eventually(5*time.Second, func() bool { return inFlight(p) == 0 }) {
				t.Fatalf("the cut tunnel is still in flight: %+v", p.Targets())
			}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(p.metrics)
			want := `
# HELP cutover_proxy_taken_over_connections Connections taken over from the HTTP server and open: tunnels (WebSockets, other upgrades) and HTTP/1.0 answers ended by their close.
# TYPE cutover_proxy_taken_over_connections gauge
cutover_proxy_taken_over_connections 0
# HELP cutover_proxy_tunnels_cut_total Tunnels (WebSockets, other upgrades) the proxy closed, by reason: idle (no data either way for tunnel_idle_timeout) or drain (their target's deregistration delay ended).
# TYPE cutover_proxy_tunnels_cut_total counter
cutover_proxy_tunnels_cut_total{reason="drain"} 0
cutover_proxy_tunnels_cut_total{reason="idle"} 1
`
			var err2 error
			if !eventually(5*time.Second, func() bool {
				err2 = testutil.GatherAndCompare(reg, strings.NewReader(want), "cutover_proxy_taken_over_connections", "cutover_proxy_tunnels_cut_total")
				return err2 == nil
			}) {
				t.Fatalf("after the cut: %v", err2)
			}
		})
	}
}

// A tunnel the idle bound and its target's drain both cut at about the
// same time is counted once, under one reason: before, both counted it
// (32 cuts for 30 tunnels in one of four runs, from the attack review of
// the idle bound).
func TestTunnelCutByIdleAndDrainIsCountedOnce(t *testing.T) {
	target := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	other := upstream(t, "other")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	l := Listener{Name: "e/production", Addr: addr, Rules: []Rule{{Forward: []WeightedTarget{{"e/w", 1}}}},
		Limits: Limits{TunnelIdleTimeout: Duration(time.Second)}}
	g := TargetGroup{Name: "e/w", Health: fastHealth, DeregistrationDelay: Duration(time.Second), Targets: []Target{{ID: "w-0", Addr: target}}}
	g2 := tgOf("e/o", other)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g, g2}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/w", "healthy", 1)
	waitState(t, p, "e/o", "healthy", 1)
	const n = 30
	for range n {
		openTunnel(t, addr) // silent: idle from now
	}
	g.Targets = nil // the drain of w-0 ends about when the tunnels have been idle a second
	l.Rules = []Rule{{Forward: []WeightedTarget{{"e/o", 1}}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g, g2}}); err != nil {
		t.Fatal(err)
	}
	if !eventually(8*time.Second, func() bool { return p.tunnels.Load() == 0 }) {
		t.Fatalf("%d tunnels still open", p.tunnels.Load())
	}
	if idle, drain := tunnelsCut(p, cutIdle), tunnelsCut(p, cutDrain); idle+drain != n {
		t.Fatalf("cuts counted: idle %v + drain %v, want %d in all", idle, drain, n)
	}
}
