package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// One machine that opens connections and holds them must not take every
// descriptor a listener may use: before max_client_conns, one client could
// hold all of them (fdbudget.go keeps the proxy's own, not the other
// clients'), and everyone else was refused. The attacker here holds
// kept-alive connections and a tunnel, and opens one more; another client
// (127.0.0.3, also "remote": the listener trusts nobody) is served all along,
// and a connection given up frees its place, on the loop's path (plain
// HTTP, a tunnel handed to the server) and the server's own (TLS).
func TestMaxClientConnsBoundsOneClient(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		name := "plain (the loops)"
		if withTLS {
			name = "TLS (the server)"
		}
		t.Run(name, func(t *testing.T) {
			target := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
				c.SetDeadline(time.Time{})
				io.Copy(c, br) // an echo until the client goes
			})
			p, addr := proxyToAddr(t, target)
			waitState(t, p, "e/raw", "healthy", 1)
			l := oneRoute(addr, WeightedTarget{"e/raw", 1})
			l.TrustedProxies = []string{TrustNone}
			l.Limits.MaxClientConns = 4
			var pool *x509.CertPool
			if withTLS {
				var cert, key string
				cert, key, pool = selfSigned(t, t.TempDir(), "a", "127.0.0.1")
				l.TLS = &TLS{CertFile: cert, KeyFile: key}
			}
			g := p.state.TargetGroups
			// The limits are the listener's as opened: a new address.
			l.Addr = freeAddr(t)
			if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: g}); err != nil {
				t.Fatal(err)
			}
			addr = l.Addr
			dial := func(src string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					return nil, err
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if withTLS {
					tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
					if err := tc.Handshake(); err != nil {
						c.Close()
						return nil, err
					}
					return tc, nil
				}
				return c, nil
			}
			// served sends one request on c and reads its answer.
			served := func(c net.Conn, br *bufio.Reader) error {
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					return err
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					return errors.New(res.Status)
				}
				return nil
			}
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			hold := func(src string) {
				t.Helper()
				c, err := dial(src)
				if err != nil {
					t.Fatalf("a connection from %s within its bound: %v", src, err)
				}
				held = append(held, c)
				if err := served(c, bufio.NewReader(c)); err != nil {
					t.Fatalf("a request from %s within its bound: %v", src, err)
				}
			}
			// refused checks that a connection from src is closed at once,
			// with no answer.
			refused := func(src string) {
				t.Helper()
				start := time.Now()
				c, err := dial(src)
				if err == nil {
					defer c.Close()
					err = served(c, bufio.NewReader(c))
				}
				var ne net.Error
				switch {
				case err == nil:
					t.Fatalf("a connection from %s over max_client_conns was served", src)
				case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
					t.Fatalf("a connection from %s over max_client_conns was held, not closed: %v", src, err)
				case time.Since(start) > 2*time.Second:
					t.Fatalf("a connection from %s over max_client_conns took %s to close", src, time.Since(start))
				}
			}
			open := func(ip string) int {
				p.mu.Lock()
				nl := p.listeners[addr]
				p.mu.Unlock()
				return nl.clients.open(netip.MustParseAddr(ip))
			}
			waitOpen := func(ip string, n int) {
				t.Helper()
				for deadline := time.Now().Add(5 * time.Second); open(ip) != n; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%s holds %d connections by the count, want %d", ip, open(ip), n)
					}
				}
			}

			const attacker, other = "127.0.0.2", "127.0.0.3"
			for range 3 {
				hold(attacker)
			}
			tunnel, err := dial(attacker)
			if err != nil {
				t.Fatal(err)
			}
			defer tunnel.Close()
			io.WriteString(tunnel, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			tbr := bufio.NewReader(tunnel)
			if res, err := http.ReadResponse(tbr, nil); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", res, err)
			}
			io.WriteString(tunnel, "ping\n")
			if line, err := tbr.ReadString('\n'); line != "ping\n" {
				t.Fatalf("the tunnel's echo: %q %v", line, err)
			}
			waitOpen(attacker, 4)

			refused(attacker)
			refused(attacker)
			hold(other) // not the attacker's: served
			if n := scraped(t, p, "cutover_proxy_client_connections_refused_total", l.Name); n != 2 {
				t.Errorf("cutover_proxy_client_connections_refused_total = %v, want 2", n)
			}
			if ls := p.Stats().Listeners; len(ls) != 1 || ls[0].Listener != l.Name || ls[0].ConnectionsRefused != 2 {
				t.Errorf("GET /v1/stats listeners: %+v, want %s with 2 connections refused", ls, l.Name)
			}
			if h, _ := p.Stats().Group("e/raw"); h.Codes["5xx"] != 0 {
				t.Errorf("the refusals counted against the group: %+v", h.Codes)
			}

			// The tunnel ends: its place is free.
			tunnel.Close()
			waitOpen(attacker, 3)
			hold(attacker)
			refused(attacker)

			// A kept-alive connection closed by the client frees its place.
			held[0].Close()
			waitOpen(attacker, 3)
			hold(attacker)

			// Once the attacker's address is a trusted proxy (the clients
			// behind it share its address), it is not bounded.
			l.TrustedProxies = []string{attacker}
			if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: g}); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				hold(attacker)
			}
			for _, c := range held {
				c.Close()
			}
			held = nil
			waitOpen(attacker, 0)
			waitOpen(other, 0)
		})
	}
}

// A bad max_client_conns is refused with the field named, and changes
// nothing.
func TestMaxClientConnsValidation(t *testing.T) {
	p := newTestProxy(t, Options{})
	for _, n := range []int{-1, maxClientConns + 1} {
		l := oneRoute(freeAddr(t), WeightedTarget{"e/web", 1})
		l.Limits.MaxClientConns = n
		err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/web", upstream(t, "web"))}})
		if err == nil || !strings.Contains(err.Error(), "limits.max_client_conns") {
			t.Errorf("max_client_conns %d: %v", n, err)
		}
	}
	if len(p.state.Listeners) != 0 {
		t.Errorf("a refused state was applied: %+v", p.state.Listeners)
	}
}

// An HTTP/2 connection (handed to the HTTP/2 server after its handshake)
// holds its client's place until that server closes it.
func TestMaxClientConnsCountsHTTP2Connections(t *testing.T) {
	p, addr, pool := h2Listener(t, func(l *Listener) {
		l.TrustedProxies = []string{TrustNone}
		l.Limits.MaxClientConns = 2
	})
	client := func(src string) (*http.Client, *http.Transport) {
		tr := &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"h2"}},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				return d.DialContext(ctx, network, addr)
			},
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: tr}, tr
	}
	get := func(c *http.Client) error {
		res, err := c.Get("https://app.cutover.test/")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || res.StatusCode != 200 {
			return errors.New(res.Proto + " " + res.Status)
		}
		return nil
	}
	open := func() int {
		p.mu.Lock()
		nl := p.listeners[addr]
		p.mu.Unlock()
		return nl.clients.open(netip.MustParseAddr("127.0.0.2"))
	}
	var trs []*http.Transport
	defer func() {
		for _, tr := range trs {
			tr.CloseIdleConnections()
		}
	}()
	for range 2 {
		c, tr := client("127.0.0.2")
		trs = append(trs, tr)
		if err := get(c); err != nil {
			t.Fatalf("an HTTP/2 connection within the bound: %v", err)
		}
	}
	c, tr := client("127.0.0.2")
	if err := get(c); err == nil {
		t.Fatal("a third HTTP/2 connection from the client was served, over max_client_conns 2")
	}
	tr.CloseIdleConnections()
	if other, tr := client("127.0.0.3"); get(other) != nil {
		t.Fatal("another client was refused")
	} else {
		trs = append(trs, tr)
	}
	trs[0].CloseIdleConnections() // the client ends one: the server closes it
	for deadline := time.Now().Add(5 * time.Second); open() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client holds %d connections by the count after closing one of 2", open())
		}
	}
	c, tr = client("127.0.0.2")
	trs = append(trs, tr)
	if err := get(c); err != nil {
		t.Fatalf("after a connection ended: %v", err)
	}
}

// open returns the connections counted for ip's client.
func (cc *clientConns) open(ip netip.Addr) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.n[clientKey(ip)]
}

// scraped is the value of the proxy's series name of listener, as a scrape
// of its /metrics reads it (-1: no such series).
func scraped(t *testing.T, p *Proxy, name, listener string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.metrics)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "listener" && lp.GetValue() == listener {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// A client's mistakes do not take the HTTP/2 budget's warning's turn to be
// logged (a trickle of bad requests hid it, a helper's review), nor does a
// level the logger leaves out.
func TestRefusalWarningsHaveTheirOwnTurn(t *testing.T) {
	logs := &testenv.Buffer{}
	cc := newClientConns("e/production", 10, func(netip.Addr) bool { return false }, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	cc.refusedRequest(400, "cutover: bad request\n", netip.MustParseAddr("192.0.2.1"))
	cc.refusedRequest(503, "HTTP/2: too many requests in flight: 8192 requests, all clients", netip.MustParseAddr("192.0.2.2"))
	if text := logs.String(); !strings.Contains(text, "status=503") || strings.Contains(text, "status=400") {
		t.Errorf("want the 503 logged at Warn, the 400 left out: %q", text)
	}
	all := &testenv.Buffer{}
	cc = newClientConns("e/production", 10, func(netip.Addr) bool { return false }, slog.New(slog.NewTextHandler(all, nil)))
	for _, status := range []int{400, 408, 503, 400, 503} {
		cc.refusedRequest(status, "cutover: why\n", netip.MustParseAddr("192.0.2.1"))
	}
	if text := all.String(); strings.Count(text, "status=400") != 1 || strings.Count(text, "status=408") != 0 || strings.Count(text, "status=503") != 1 {
		t.Errorf("want one client's mistake and one 503 logged in ten seconds: %q", text)
	}
}
