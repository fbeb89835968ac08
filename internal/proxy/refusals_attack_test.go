package proxy

// Attacks on the refusal counters (cutover_proxy_requests_refused_total,
// GET /v1/stats listeners), from a helper's review.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
)

// refusalsOf returns listener name's refusals by status, and connections.
func refusalsOf(p *Proxy, name string) (map[string]uint64, uint64) {
	for _, l := range p.Stats().Listeners {
		if l.Listener == name {
			out := map[string]uint64{}
			for k, v := range l.RequestsRefused {
				out[k] = v
			}
			return out, l.ConnectionsRefused
		}
	}
	return map[string]uint64{}, 0
}

func deltaOf(before, after map[string]uint64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := int64(v) - int64(before[k]); d != 0 {
			out[k] = d
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			out[k] = -int64(v)
		}
	}
	return out
}

func fmtDelta(d map[string]int64) string {
	if len(d) == 0 {
		return "{}"
	}
	return fmt.Sprint(d)
}

// reviewProxy: a plain listener (event loops) and a TLS listener (server
// path, h2 offered) routed to one echo target.
func reviewProxy(t *testing.T) (p *Proxy, plain, secure string, cfg *tls.Config) {
	t.Helper()
	cert, key, pool := selfSigned(t, t.TempDir(), "r", "app.cutover.test")
	p = newTestProxy(t, Options{})
	plain, secure = freeAddr(t), freeAddr(t)
	web := TargetGroup{Name: "prod/web", Health: fastHealth, Targets: []Target{{ID: "w", Addr: echoRequest(t)}}}
	lim := Limits{ReadHeaderTimeout: Duration(300 * time.Millisecond), BodyIdleTimeout: Duration(400 * time.Millisecond),
		IdleTimeout: Duration(2 * time.Second), MaxHeaderBytes: 4 << 10, MaxBodyBytes: 4000}
	rules := []Rule{{Host: "app.cutover.test", Forward: []WeightedTarget{{"prod/web", 1}}}}
	ls := []Listener{
		{Name: "prod/production", Addr: plain, Limits: lim, Rules: rules},
		{Name: "prod/secure", Addr: secure, Limits: lim, Rules: rules, TLS: &TLS{CertFile: cert, KeyFile: key}},
	}
	if err := p.Apply(context.Background(), State{Listeners: ls, TargetGroups: []TargetGroup{web}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "prod/web", "healthy", 1)
	return p, plain, secure, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"http/1.1"}}
}

// settle waits for the proxy to finish with a connection's refusal.
func settle() { time.Sleep(300 * time.Millisecond) }

// TestAttackConnectionsWithoutARequestAreNotRefusals: connections that
// never carried a request are not refused requests, on the loops and on
// TLS alike. Before, the TLS listener counted a client that refused the
// certificate or a scanner as 400, a browser's preconnect as 408 (an
// expired certificate looked like a flood of malformed requests).
func TestAttackConnectionsWithoutARequestAreNotRefusals(t *testing.T) {
	p, plain, secure, cfg := reviewProxy(t)
	// open connects to addr (over TLS with cfg, when set), sends send,
	// then reads until the proxy closes (wait) or closes at once; it
	// returns the first line the client read.
	open := func(t *testing.T, addr string, cfg *tls.Config, send string, wait bool) string {
		var c net.Conn
		var err error
		if cfg != nil {
			c, err = tls.Dial("tcp", addr, cfg)
		} else {
			c, err = net.Dial("tcp", addr)
		}
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		io.WriteString(c, send)
		if !wait {
			time.Sleep(50 * time.Millisecond)
			return ""
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(c)
		s, _, _ := strings.Cut(string(b), "\r\n")
		return fmt.Sprintf("%q", s[:min(len(s), 60)])
	}
	untrusted := &tls.Config{ServerName: "app.cutover.test"} // system roots: the proxy's certificate is refused
	halfHead := "GET / HTTP/1.1\r\nHost: app.cu"
	notTLS := string([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5})
	cases := []struct {
		listener, addr, name string
		cfg                  *tls.Config
		send                 string
		wait                 bool
	}{
		{"prod/production", plain, "TCP connect then close (a TCP health check)", nil, "", false},
		{"prod/secure", secure, "TCP connect then close (a TCP health check)", nil, "", false},
		{"prod/production", plain, "connect, send nothing, wait past read_header_timeout (a browser preconnect)", nil, "", true},
		{"prod/secure", secure, "TLS handshake, send nothing, wait past read_header_timeout (a browser preconnect)", cfg, "", true},
		{"prod/secure", secure, "TLS client rejects the certificate (expired / untrusted cert)", untrusted, "", false},
		{"prod/secure", secure, "TLS handshake that is not TLS (scanner)", nil, notTLS, true},
		{"prod/production", plain, "half a head, then the client closes", nil, halfHead, false},
		{"prod/secure", secure, "half a head, then the client closes", cfg, halfHead, false},
	}
	for _, tc := range cases {
		t.Run(tc.listener+": "+tc.name, func(t *testing.T) {
			before, _ := refusalsOf(p, tc.listener)
			got := open(t, tc.addr, tc.cfg, tc.send, tc.wait)
			settle()
			after, _ := refusalsOf(p, tc.listener)
			d := deltaOf(before, after)
			t.Logf("client saw %s; refusals moved %s", got, fmtDelta(d))
			if len(d) != 0 {
				t.Errorf("no request was made (client saw %s), yet requests_refused moved %s", got, fmtDelta(d))
			}
		})
	}
}

// TestAttackHTTP2RefusalsCountOnce: each HTTP/2 refusal counts once, with
// the status the client got (a body ended short counted twice before: by
// the HTTP/1.1 path and by the bridge). Go's HTTP/2 server answers a
// header list over max_header_bytes (431) itself, before the proxy's
// handler: that one is not counted (documented).
func TestAttackHTTP2RefusalsCountOnce(t *testing.T) {
	p, _, secure, cfg := reviewProxy(t)
	pool := cfg.RootCAs
	part := bytes.Repeat([]byte("b"), 3000)
	var big [][2]string
	for i := range 4 {
		big = append(big, [2]string{fmt.Sprintf("x-big-%d", i), strings.Repeat("b", 2<<10)})
	}
	cl := func(n string) [][2]string { return [][2]string{{"content-length", n}} }
	// Each case sends its head, then its parts of a body, then (end) an
	// empty DATA frame with END_STREAM; without end the stream stalls.
	cases := []struct {
		name, method string
		fields       [][2]string
		parts        [][]byte
		end          bool
	}{
		{"8 KiB of fields against a 4 KiB limit (the HTTP/2 server's 431)", "GET", big, nil, true},
		{"small body ended short (content-length 3000, 1000 sent, END_STREAM)", "POST", cl("3000"), [][]byte{part[:1000]}, true},
		{"body over max_body_bytes announced (content-length 5000)", "POST", cl("5000"), [][]byte{part, part[:2000]}, true},
		{"body over max_body_bytes, no content-length", "POST", nil, [][]byte{part, part[:2000]}, true},
		{"body stalls (content-length 3000, 100 sent)", "POST", cl("3000"), [][]byte{part[:100]}, false},
		{"large body stalls (content-length 3500, 3000 sent)", "POST", cl("3500"), [][]byte{part}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := refusalsOf(p, "prod/secure")
			r := dialH2Raw(t, secure, pool, true)
			r.c.SetDeadline(time.Now().Add(5 * time.Second))
			headOnly := len(tc.parts) == 0 && tc.end
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers(tc.method, "/up", tc.fields...), EndStream: headOnly, EndHeaders: true})
			for _, b := range tc.parts {
				r.fr.WriteData(1, false, b)
			}
			if tc.end && !headOnly {
				time.Sleep(100 * time.Millisecond)
				r.fr.WriteData(1, true, nil)
			}
			st, err := r.answer()
			if err != nil {
				st = err.Error()
			}
			settle()
			after, _ := refusalsOf(p, "prod/secure")
			d := deltaOf(before, after)
			t.Logf("client got %s; refusals moved %s", st, fmtDelta(d))
			want := map[string]int64{}
			if len(st) == 3 && st[0] == '4' || st == "503" || st == "501" || st == "505" {
				want[st] = 1
			}
			if st == "431" {
				want = map[string]int64{} // Go's HTTP/2 server's own answer
			}
			if fmt.Sprint(d) != fmt.Sprint(want) {
				t.Errorf("client got %s; requests_refused moved %s, want %s", st, fmtDelta(d), fmtDelta(want))
			}
		})
	}
}

// TestAttackHTTP2ShortBodiesCountOnce: a body ended short or reset, small
// (read before the target) and large (streamed): one 400 each, counted
// once (an upload the client abandons is a body it did not send whole).
func TestAttackHTTP2ShortBodiesCountOnce(t *testing.T) {
	p, addr, pool := h2Listener(t, func(l *Listener) {
		l.Limits = Limits{BodyIdleTimeout: Duration(2 * time.Second), TargetTimeout: Duration(2 * time.Second)}
	})
	part := bytes.Repeat([]byte("b"), 16<<10)
	for _, tc := range []struct {
		name  string
		cl, n int
		reset bool
	}{
		{"small, ended short", 3000, 1000, false},
		{"large, ended short", 100000, 12 << 10, false},
		{"small, reset", 3000, 1000, true},
		{"large, reset", 100000, 12 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := refusalsOf(p, "prod/production")
			r := dialH2Raw(t, addr, pool, true)
			r.c.SetDeadline(time.Now().Add(5 * time.Second))
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("POST", "/up", [2]string{"content-length", fmt.Sprint(tc.cl)}), EndHeaders: true})
			r.fr.WriteData(1, false, part[:tc.n])
			time.Sleep(150 * time.Millisecond)
			if tc.reset {
				r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
			} else {
				r.fr.WriteData(1, true, nil)
			}
			r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			st, err := r.answer()
			if err != nil {
				st = err.Error()
			}
			time.Sleep(500 * time.Millisecond)
			after, _ := refusalsOf(p, "prod/production")
			d := deltaOf(before, after)
			t.Logf("client got %s; refusals moved %s", st, fmtDelta(d))
			if len(d) != 1 || d["400"] != 1 || !tc.reset && st != "400" {
				t.Errorf("client got %s; requests_refused moved %s, want one 400", st, fmtDelta(d))
			}
		})
	}
}

// TestAttackHTTP2HeaderRefusalsCountOnce: the table of
// TestHTTP2AttackStalledBodyAndHugeHeaders, with counts. Go's HTTP/2 server
// answers two of them itself, before the proxy's handler, and they are not
// counted (documented): a header list over max_header_bytes (431) and a
// connection-specific field such as transfer-encoding (400).
func TestAttackHTTP2HeaderRefusalsCountOnce(t *testing.T) {
	p, addr, pool := h2Listener(t, func(l *Listener) {
		l.Limits = Limits{BodyIdleTimeout: Duration(500 * time.Millisecond), MaxHeaderBytes: 4 << 10}
	})
	var big [][2]string
	for i := range 4 {
		big = append(big, [2]string{fmt.Sprintf("x-big-%d", i), strings.Repeat("b", 2<<10)})
	}
	for _, tc := range []struct {
		name   string
		goOwn  bool // answered by Go's HTTP/2 server itself
		fields [][2]string
	}{
		{"8 KiB of fields against a 4 KiB limit", true, big},
		{"transfer-encoding", true, [][2]string{{"transfer-encoding", "chunked"}}},
		{"CONNECT", false, [][2]string{{":method", "CONNECT"}, {":authority", "internal.example:443"}}},
		{"method not a token", false, [][2]string{{":method", "GET /admin"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/"}}},
		{"content-length abc", false, [][2]string{{"content-length", "abc"}}},
		{"no authority", false, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}}},
		{"path with fragment", false, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/a#b"}}},
		{"path with bad percent", false, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/a%zz"}}},
		{"path *", false, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "*"}}},
	} {
		before, _ := refusalsOf(p, "prod/production")
		st := rawH2Status(t, addr, pool, tc.fields...)
		settle()
		after, _ := refusalsOf(p, "prod/production")
		d := deltaOf(before, after)
		want := map[string]int64{}
		if len(st) == 3 && (st[0] == '4' || st == "501" || st == "503" || st == "505") && !tc.goOwn {
			want[st] = 1
		}
		t.Logf("%s: client got %s; refusals moved %s", tc.name, st, fmtDelta(d))
		if fmt.Sprint(d) != fmt.Sprint(want) {
			t.Errorf("%s: client got %s; refusals moved %s, want %s", tc.name, st, fmtDelta(d), fmtDelta(want))
		}
	}
}

// Renames (Apply) while refusals are counted and scraped, on the loops and
// the server: for -race, and every 400 a client got is counted once (a
// listener's counts follow it to its new name).
func TestAttackRefusalsCountedAcrossRenames(t *testing.T) {
	p, plain, secure, cfg := reviewProxy(t)
	state := func(suffix string) State {
		s := p.state
		out := State{TargetGroups: s.TargetGroups}
		for _, l := range s.Listeners {
			l2 := l
			switch l.Addr {
			case plain:
				l2.Name = "prod/production" + suffix
			case secure:
				l2.Name = "prod/secure" + suffix
			}
			out.Listeners = append(out.Listeners, l2)
		}
		return out
	}
	p.mu.Lock()
	base := state("")
	p.mu.Unlock()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	bad := "GET / HTTP/1.1\r\nHost: app.cutover.test\r\nBad Name: x\r\n\r\n"
	var sent sync.Map
	send := func(addr string, tlsOn bool) {
		defer wg.Done()
		n := 0
		for {
			select {
			case <-stop:
				sent.Store(addr, n)
				return
			default:
			}
			var c net.Conn
			var err error
			if tlsOn {
				c, err = tls.Dial("tcp", addr, cfg)
			} else {
				c, err = net.Dial("tcp", addr)
			}
			if err != nil {
				continue
			}
			io.WriteString(c, bad)
			c.SetReadDeadline(time.Now().Add(10 * time.Second)) // an answer counted is read, however loaded the machine
			b, _ := io.ReadAll(c)
			c.Close()
			if len(b) > 12 && string(b[9:12]) == "400" {
				n++
			}
		}
	}
	wg.Add(2)
	go send(plain, false)
	go send(secure, true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(p.metrics)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.Stats()
			if _, err := reg.Gather(); err != nil {
				t.Errorf("gather: %v", err)
			}
		}
	}()
	for i := range 20 {
		s := base
		if i%2 == 0 {
			s = state("-renamed")
		}
		p.mu.Lock()
		s.TargetGroups = p.state.TargetGroups
		p.mu.Unlock()
		if err := p.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	var total uint64
	for _, l := range p.Stats().Listeners {
		total += l.RequestsRefused["400"]
	}
	a, _ := sent.Load(plain)
	b, _ := sent.Load(secure)
	t.Logf("400s received by clients: plain %v, tls %v; counted in total %d", a, b, total)
	if total != uint64(a.(int)+b.(int)) {
		t.Errorf("counted %d, clients got %d", total, a.(int)+b.(int))
	}
}

// teredo builds 2001:0:SERVER:flags:~port:~client (RFC 4380 §4).
func teredoAddr(server, client [4]byte, port, flags uint16) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	copy(b[4:8], server[:])
	binary.BigEndian.PutUint16(b[8:10], flags)
	binary.BigEndian.PutUint16(b[10:12], ^port)
	for i := range 4 {
		b[12+i] = ^client[i]
	}
	return netip.AddrFrom16(b)
}

// One IPv4 host (203.0.113.5) that answers a Teredo relay's direct bubble
// receives traffic for every 2001:0:*:*:*:~port:~203.0.113.5 address: its
// mapped address and port are all a relay delivers by. max_client_conns
// bounds it as it bounds 203.0.113.5 over IPv4 (before, each port was a
// client of its own, and each server field a /64 of its own).
func TestMaxClientConnsBoundsATeredoHost(t *testing.T) {
	cc := newClientConns("e/production", 4, func(netip.Addr) bool { return false }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	attacker := [4]byte{203, 0, 113, 5}
	server := [4]byte{65, 54, 227, 120} // one Teredo server: one /64 before c35c5fa
	admitted := 0
	for port := uint16(1000); port < 1100; port++ {
		if _, ok := cc.admit(teredoAddr(server, attacker, port, 0x8000)); ok {
			admitted++
		}
	}
	if admitted > 4 {
		t.Errorf("one IPv4 host behind Teredo held %d connections, max_client_conns is 4", admitted)
	}
	servers := 0
	cc2 := newClientConns("e/production", 4, func(netip.Addr) bool { return false }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 100 {
		s := [4]byte{10, 0, 0, byte(i)}
		if _, ok := cc2.admit(teredoAddr(s, attacker, 1000, 0)); ok {
			servers++
		}
	}
	if servers > 4 {
		t.Errorf("varying the Teredo server field: %d admitted, max_client_conns is 4", servers)
	}
}
