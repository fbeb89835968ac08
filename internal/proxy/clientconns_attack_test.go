//go:build linux

package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

const ccAttacker = "127.0.0.2"

type ccRig struct {
	t    *testing.T
	p    *Proxy
	addr string
	l    Listener
	g    []TargetGroup
	pool *x509.CertPool
}

// ccSetup opens a listener (trusting nobody) to an echo-upgrade target,
// with edit applied to it.
func ccSetup(t *testing.T, withTLS bool, edit func(*Listener)) *ccRig {
	t.Helper()
	target := rawUpgradeTarget(t, func(c *net.TCPConn, br *bufio.Reader) {
		c.SetDeadline(time.Time{})
		io.Copy(c, br)
	})
	p, addr := proxyToAddr(t, target)
	waitState(t, p, "e/raw", "healthy", 1)
	l := oneRoute(addr, WeightedTarget{"e/raw", 1})
	l.TrustedProxies = []string{TrustNone}
	r := &ccRig{t: t, p: p}
	if withTLS {
		var cert, key string
		cert, key, r.pool = selfSigned(t, t.TempDir(), "a", "127.0.0.1")
		l.TLS = &TLS{CertFile: cert, KeyFile: key}
	}
	if edit != nil {
		edit(&l)
	}
	r.g = p.state.TargetGroups
	l.Addr = freeAddr(t)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: r.g}); err != nil {
		t.Fatal(err)
	}
	r.addr, r.l = l.Addr, l
	return r
}

func (r *ccRig) open(ip string) int {
	r.p.mu.Lock()
	nl := r.p.listeners[r.addr]
	r.p.mu.Unlock()
	return nl.clients.open(netip.MustParseAddr(ip))
}

func (r *ccRig) dialRaw(src string) net.Conn {
	r.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// waitOpen waits up to d for the count of ip to be n.
func (r *ccRig) waitOpen(ip string, n int, d time.Duration) error {
	for deadline := time.Now().Add(d); r.open(ip) != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s holds %d connections by the count, want %d", ip, r.open(ip), n)
		}
	}
	return nil
}

// serverSockets counts the sockets of this process (inode != 0: not
// orphaned) whose local address is addr and whose peer is ip, in any state.
func serverSockets(t *testing.T, addr, ip string) int {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	hexAddr := func(a netip.Addr, port uint16) string {
		b := a.As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", b[3], b[2], b[1], b[0], port)
	}
	local := hexAddr(ap.Addr(), ap.Port())
	peer := netip.MustParseAddr(ip).As4()
	peerHex := fmt.Sprintf("%02X%02X%02X%02X:", peer[3], peer[2], peer[1], peer[0])
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		if f[1] == local && strings.HasPrefix(f[2], peerHex) && f[9] != "0" && f[3] != "0A" {
			n++
		}
	}
	return n
}

// The server path's lingering close (rawConn.Close with linger, after a
// request the proxy refused) keeps the socket open for up to lingerTime:
// its client's count must be given back only when it closes. It was given
// back as Close returned (a helper's review): a client that got its
// requests refused held 10 sockets against max_client_conns 2, and about
// 3,900 opened in a second and a half.
func TestAttackMaxClientConnsLingerOnServerPath(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain (handed off by a loop)", true: "TLS"}[withTLS], func(t *testing.T) {
			lingerBypass(t, withTLS)
		})
	}
}

func lingerBypass(t *testing.T, withTLS bool) {
	r := ccSetup(t, withTLS, func(l *Listener) { l.Limits.MaxClientConns = 2 })
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 10 {
		c := r.dialRaw(ccAttacker)
		held = append(held, c)
		var tc net.Conn = c
		if withTLS {
			tc = tls.Client(c, &tls.Config{RootCAs: r.pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		}
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		// Both Content-Length and Transfer-Encoding: refused (clientError,
		// lingering close).
		if _, err := io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
			t.Logf("conn %d: %v (refused: over the bound)", i, err)
			continue
		}
		res, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Logf("conn %d: %v (refused: over the bound)", i, err)
			continue
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("conn %d: %s", i, res.Status)
		}
	}
	time.Sleep(100 * time.Millisecond)
	n, counted := serverSockets(t, r.addr, ccAttacker), r.open(ccAttacker)
	t.Logf("proxy-side sockets of %s: %d, counted %d, max_client_conns 2", ccAttacker, n, counted)
	if n > 2 {
		t.Errorf("one client holds %d of the proxy's sockets open on the listener, over max_client_conns 2 (counted: %d)", n, counted)
	}
}

// Every way a connection ends gives its count back: the count of a client
// whose connections all ended is 0.
func TestAttackMaxClientConnsLeakMatrix(t *testing.T) {
	old := runtime.GOMAXPROCS(4) // several loops (loopCount): connections handed between them
	defer runtime.GOMAXPROCS(old)
	lim := func(l *Listener) {
		l.Limits.MaxClientConns = 1000
		l.Limits.ReadHeaderTimeout = Duration(time.Second)
		l.Limits.IdleTimeout = Duration(time.Second)
		l.Limits.BodyIdleTimeout = Duration(time.Second)
		l.Limits.TunnelIdleTimeout = Duration(time.Second)
	}
	type scen struct {
		name string
		run  func(r *ccRig, c net.Conn) // c: a raw TCP connection from the attacker
	}
	wrap := func(r *ccRig, c net.Conn, tlsOn bool, protos ...string) net.Conn {
		if !tlsOn {
			return c
		}
		if len(protos) == 0 {
			protos = []string{"http/1.1"}
		}
		tc := tls.Client(c, &tls.Config{RootCAs: r.pool, ServerName: "127.0.0.1", NextProtos: protos})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			r.t.Logf("handshake: %v", err)
		}
		return tc
	}
	req := func(c net.Conn, s string) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, s)
		br := bufio.NewReader(c)
		if res, err := http.ReadResponse(br, nil); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	for _, tlsOn := range []bool{false, true} {
		scens := []scen{
			{"close at once", func(r *ccRig, c net.Conn) { c.Close() }},
			{"reset at once", func(r *ccRig, c net.Conn) {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}},
			{"nothing sent, left open", func(r *ccRig, c net.Conn) {}},
			{"half a head, left open", func(r *ccRig, c net.Conn) {
				if tlsOn {
					io.WriteString(c, "\x16\x03\x01\x00\xff\x01") // half a ClientHello
				} else {
					io.WriteString(c, "GET / HTTP/1.1\r\nHo")
				}
			}},
			{"garbage", func(r *ccRig, c net.Conn) { io.WriteString(c, "\x00\x01garbage\r\n\r\n") }},
			{"keep-alive, left idle", func(r *ccRig, c net.Conn) {
				req(wrap(r, c, tlsOn), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			}},
			{"HTTP/1.0", func(r *ccRig, c net.Conn) {
				req(wrap(r, c, tlsOn), "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
			}},
			{"chunked upload stalled", func(r *ccRig, c net.Conn) {
				cc := wrap(r, c, tlsOn)
				io.WriteString(cc, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
			}},
			{"bad framing refused", func(r *ccRig, c net.Conn) {
				req(wrap(r, c, tlsOn), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
			}},
			{"tunnel left idle", func(r *ccRig, c net.Conn) {
				cc := wrap(r, c, tlsOn)
				io.WriteString(cc, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			}},
			{"tunnel reset", func(r *ccRig, c net.Conn) {
				cc := wrap(r, c, tlsOn)
				io.WriteString(cc, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				bufio.NewReader(cc).ReadString('\n')
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}},
			{"pipelined then idle", func(r *ccRig, c net.Conn) {
				cc := wrap(r, c, tlsOn)
				io.WriteString(cc, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
			}},
		}
		if tlsOn {
			scens = append(scens,
				scen{"h2 handshake, no preface", func(r *ccRig, c net.Conn) { wrap(r, c, true, "h2") }},
				scen{"h2 preface, left idle", func(r *ccRig, c net.Conn) {
					cc := wrap(r, c, true, "h2")
					io.WriteString(cc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
					io.WriteString(cc, "\x00\x00\x00\x04\x01\x00\x00\x00\x00") // settings ack
				}},
				scen{"h2 preface, reset", func(r *ccRig, c net.Conn) {
					cc := wrap(r, c, true, "h2")
					io.WriteString(cc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
					time.Sleep(50 * time.Millisecond)
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}},
			)
		}
		for _, s := range scens {
			name := map[bool]string{false: "plain", true: "TLS"}[tlsOn] + "/" + s.name
			t.Run(name, func(t *testing.T) {
				r := ccSetup(t, tlsOn, lim)
				var conns []net.Conn
				for range 20 {
					c := r.dialRaw(ccAttacker)
					conns = append(conns, c)
					s.run(r, c)
				}
				// Everything bounds these in a few seconds (1 s timeouts,
				// lingerTime 2 s, tunnel_idle_timeout 1 s, the sweep).
				err := r.waitOpen(ccAttacker, 0, 8*time.Second)
				for _, c := range conns {
					c.Close()
				}
				if err != nil {
					t.Error(err, "(with the client's sockets still open)")
					if err := r.waitOpen(ccAttacker, 0, 5*time.Second); err != nil {
						t.Error(err, "(after the client closed them all)")
					}
				}
			})
		}
	}
}

// Many connections at once (several loops, connections handed between
// them), then all closed: the count is 0, and the bound held throughout.
func TestAttackMaxClientConnsManyLoops(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	for _, tlsOn := range []bool{false, true} {
		t.Run(strconv.FormatBool(tlsOn), func(t *testing.T) {
			r := ccSetup(t, tlsOn, func(l *Listener) { l.Limits.MaxClientConns = 150 })
			const n = 300
			type res struct {
				c  net.Conn
				ok bool
			}
			out := make(chan res, n)
			for range n {
				go func() {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ccAttacker)}, Timeout: 5 * time.Second}
					c, err := d.Dial("tcp", r.addr)
					if err != nil {
						out <- res{}
						return
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					var cc net.Conn = c
					if tlsOn {
						cc = tls.Client(c, &tls.Config{RootCAs: r.pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
					}
					io.WriteString(cc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
					resp, err := http.ReadResponse(bufio.NewReader(cc), nil)
					if err != nil {
						out <- res{c: c}
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					out <- res{c: c, ok: resp.StatusCode == 200}
				}()
			}
			served := 0
			var conns []net.Conn
			for range n {
				x := <-out
				if x.c != nil {
					conns = append(conns, x.c)
				}
				if x.ok {
					served++
				}
			}
			counted := r.open(ccAttacker)
			t.Logf("served %d of %d, counted %d", served, n, counted)
			if served > 150 || counted > 150 {
				t.Errorf("served %d, counted %d: over max_client_conns 150", served, counted)
			}
			for _, c := range conns {
				c.Close()
			}
			if err := r.waitOpen(ccAttacker, 0, 5*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

// A plain listener (the loops) turned TLS with h2: connections the loops
// hand to the server and on to the HTTP/2 server give their count back.
func TestAttackMaxClientConnsPlainTurnedH2(t *testing.T) {
	r := ccSetup(t, false, func(l *Listener) { l.Limits.MaxClientConns = 3 })
	cert, key, pool := selfSigned(t, t.TempDir(), "b", "127.0.0.1")
	r.l.TLS = &TLS{CertFile: cert, KeyFile: key}
	if err := r.p.Apply(context.Background(), State{Listeners: []Listener{r.l}, TargetGroups: r.g}); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		var trs []*http.Transport
		for i := range 3 {
			tr := &http.Transport{
				ForceAttemptHTTP2: true,
				TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ccAttacker)}}
					return d.DialContext(ctx, network, r.addr)
				},
			}
			trs = append(trs, tr)
			res, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Get("https://127.0.0.1/")
			if err != nil {
				t.Fatalf("round %d conn %d: %v", round, i, err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.ProtoMajor != 2 {
				t.Fatalf("not h2: %s", res.Proto)
			}
		}
		for _, tr := range trs {
			tr.CloseIdleConnections()
		}
		if err := r.waitOpen(ccAttacker, 0, 5*time.Second); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// HTTP/2 connections whose bridge is retired (the listener stops offering
// h2) give their count back when the HTTP/2 server closes them.
func TestAttackMaxClientConnsH2Retired(t *testing.T) {
	r := ccSetup(t, true, func(l *Listener) {
		l.Limits.MaxClientConns = 5
		l.Limits.IdleTimeout = Duration(time.Minute)
		l.Limits.ReadHeaderTimeout = Duration(time.Minute)
	})
	var conns []net.Conn
	for range 5 {
		c := r.dialRaw(ccAttacker)
		conns = append(conns, c)
		tc := tls.Client(c, &tls.Config{RootCAs: r.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
		go io.Copy(io.Discard, tc)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := r.waitOpen(ccAttacker, 5, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); r.p.http2Open()[r.l.Name] != 5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("HTTP/2 connections open: %v", r.p.http2Open())
		}
	}
	r.l.TLS.HTTP1Only = true
	if err := r.p.Apply(context.Background(), State{Listeners: []Listener{r.l}, TargetGroups: r.g}); err != nil {
		t.Fatal(err)
	}
	if err := r.waitOpen(ccAttacker, 0, 10*time.Second); err != nil {
		t.Errorf("%v; sockets open on the proxy's side: %d; h2 open %v", err, serverSockets(t, r.addr, ccAttacker), r.p.http2Open())
	}
}
