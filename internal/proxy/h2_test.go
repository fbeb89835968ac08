package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client speaks HTTP/2 only (ALPN h2) to addr on 127.0.0.1, verifying
// serverName against roots; its connections are reused.
func h2Client(addr, serverName string, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: serverName, NextProtos: []string{"h2"}},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: tr}
}

// echoRequest is an upstream that answers what it got: the protocol, the
// host, the forwarding fields, the body's size and digest. /stream answers
// "a", then "b" 400ms later; /slow answers after 500ms.
func echoRequest(t *testing.T) string {
	t.Helper()
	s := upstream(t, "")
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			time.Sleep(400 * time.Millisecond)
			io.WriteString(w, "b")
			return
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "proto=%s host=%s xff=%q xfp=%q real=%q fwd=%q len=%d sum=%s",
			r.Proto, r.Host, r.Header.Values("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Real-IP"), r.Header.Get("Forwarded"), n, hex.EncodeToString(h.Sum(nil))[:12])
	})
	return hostOf(s)
}

// h2Listener opens a TLS listener for app.cutover.test routed to one
// echoRequest target, and returns the proxy, the address and the pool that
// trusts its certificate.
func h2Listener(t *testing.T, edit func(*Listener)) (*Proxy, string, *x509.CertPool) {
	t.Helper()
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	web := TargetGroup{Name: "prod/web", Health: fastHealth, Targets: []Target{{ID: "w", Addr: echoRequest(t)}}}
	l := Listener{Name: "prod/production", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key},
		Rules: []Rule{{Host: "app.cutover.test", Forward: []WeightedTarget{{"prod/web", 1}}}}}
	if edit != nil {
		edit(&l)
	}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{web}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "prod/web", "healthy", 1)
	return p, addr, pool
}

func h2Do(t *testing.T, c *http.Client, method, url string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return res, string(b)
}

func groupRequests(p *Proxy, name string) (requests uint64, codes map[string]uint64) {
	g, _ := p.Stats().Group(name)
	return g.Requests, g.Codes
}

// A client that chooses HTTP/2 is served as an HTTP/1.1 client is: routed
// by host, the target speaks HTTP/1.1 and gets the forwarding fields the
// trust setting decides, bodies stream both ways, and the requests count
// against the group.
func TestHTTP2ClientsAreServedAsHTTP1Clients(t *testing.T) {
	p, addr, pool := h2Listener(t, func(l *Listener) { l.TrustedProxies = []string{TrustNone} })
	c := h2Client(addr, "app.cutover.test", pool)
	url := "https://app.cutover.test"
	spoof := map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "Forwarded": "for=6.6.6.6", "X-Forwarded-Proto": "http"}

	res, body := h2Do(t, c, "GET", url+"/a", nil, spoof)
	if res.ProtoMajor != 2 {
		t.Fatalf("the client got %s, want HTTP/2", res.Proto)
	}
	want := `proto=HTTP/1.1 host=app.cutover.test xff=["127.0.0.1"] xfp="https" real="" fwd=""`
	if res.StatusCode != 200 || !strings.HasPrefix(body, want) {
		t.Fatalf("spoofed fields from an untrusted client: %s %q, want 200 %q...", res.Status, body, want)
	}

	// Another host: no rule, as over HTTP/1.1.
	req, _ := http.NewRequest("GET", url+"/a", nil)
	req.Host = "other.test"
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r2.Body)
	r2.Body.Close()
	if r2.StatusCode != http.StatusNotFound {
		t.Fatalf("a host with no rule over HTTP/2: %s, want 404", r2.Status)
	}

	// Many streams on one connection at once.
	before, _ := groupRequests(p, "prod/web")
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := map[string]int{}
	for i := range 64 {
		wg.Go(func() {
			res, err := c.Get(fmt.Sprintf("%s/n/%d", url, i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				bad[err.Error()]++
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || res.ProtoMajor != 2 || !strings.HasPrefix(string(b), "proto=HTTP/1.1") {
				bad[res.Status+" "+res.Proto]++
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("64 concurrent streams: failures %v", bad)
	}
	if after, codes := groupRequests(p, "prod/web"); after-before != 64 {
		t.Fatalf("the group counted %d requests of 64 (codes %v)", after-before, codes)
	}

	// An 8 MiB upload of unknown length (chunked on the HTTP/1.1 side).
	payload := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	sum := sha256.Sum256(payload)
	res, body = h2Do(t, c, "POST", url+"/up", io.MultiReader(bytes.NewReader(payload)), nil)
	if w := fmt.Sprintf("len=%d sum=%s", len(payload), hex.EncodeToString(sum[:])[:12]); res.StatusCode != 200 || !strings.HasSuffix(body, w) {
		t.Fatalf("8 MiB upload over HTTP/2: %s %q, want %q", res.Status, body, w)
	}

	// A streamed answer reaches the client part by part.
	start := time.Now()
	sres, err := c.Get(url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(sres.Body, first); err != nil || first[0] != 'a' {
		t.Fatalf("first part of a streamed answer: %q, %v", first, err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("the first part took %v: the answer was held until its end (the target sends the second 400ms later)", d)
	}
	rest, _ := io.ReadAll(sres.Body)
	sres.Body.Close()
	if string(rest) != "b" {
		t.Fatalf("rest of the streamed answer: %q", rest)
	}
}

// A trusted client's forwarding fields are kept and extended once, as over
// HTTP/1.1 (loopback is trusted by default).
func TestHTTP2TrustedClientsFieldsAreExtendedOnce(t *testing.T) {
	_, addr, pool := h2Listener(t, nil)
	c := h2Client(addr, "app.cutover.test", pool)
	res, body := h2Do(t, c, "GET", "https://app.cutover.test/", nil, map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
	want := `proto=HTTP/1.1 host=app.cutover.test xff=["203.0.113.7, 127.0.0.1"] xfp="https"`
	if res.StatusCode != 200 || !strings.HasPrefix(body, want) {
		t.Fatalf("%s %q, want %q...", res.Status, body, want)
	}
}

// The edge's limits hold over HTTP/2: a stalled body is answered 408 and
// counts against no group; a header block over the limit is refused.
func TestHTTP2AttackStalledBodyAndHugeHeaders(t *testing.T) {
	p, addr, pool := h2Listener(t, func(l *Listener) {
		l.Limits = Limits{BodyIdleTimeout: Duration(500 * time.Millisecond), MaxHeaderBytes: 4 << 10}
	})
	c := h2Client(addr, "app.cutover.test", pool)
	before, codesBefore := groupRequests(p, "prod/web")

	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("part of a body, then nothing"))
	req, _ := http.NewRequest("POST", "https://app.cutover.test/up", pr)
	req.ContentLength = 1 << 20
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("stalled body: %v (want a 408 answer)", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body over HTTP/2: %s, want 408", res.Status)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stalled body answered after %v", d)
	}

	// Go's client keeps to the limits and rules of HTTP/2; an attacker
	// writes the frames itself.
	var big [][2]string
	for i := range 4 {
		big = append(big, [2]string{fmt.Sprintf("x-big-%d", i), strings.Repeat("b", 2<<10)})
	}
	for _, tc := range []struct {
		name   string
		fields [][2]string
		want   string
	}{
		{"8 KiB of fields against a 4 KiB limit", big, "431"},
		{"one field longer than the whole limit", [][2]string{{"x-big", strings.Repeat("b", 8<<10)}}, "GOAWAY COMPRESSION_ERROR"},
		{"a field value with CR LF (a second request or field)", [][2]string{{"x-a", "b\r\nx-injected: 1"}}, "RST_STREAM PROTOCOL_ERROR"},
		{"transfer-encoding (connection-specific)", [][2]string{{"transfer-encoding", "chunked"}}, "400"},
		{"an upper-case field name", [][2]string{{"X-Forwarded-For", "6.6.6.6"}}, "RST_STREAM PROTOCOL_ERROR"},
		{"CONNECT to another host", [][2]string{{":method", "CONNECT"}, {":authority", "internal.example:443"}}, "501"},
	} {
		if st := rawH2Status(t, addr, pool, tc.fields...); st != tc.want {
			t.Errorf("%s over HTTP/2: %s, want %s", tc.name, st, tc.want)
		}
	}
	after, codes := groupRequests(p, "prod/web")
	if after != before || codes["5xx"] != codesBefore["5xx"] || codes["4xx"] != codesBefore["4xx"] {
		t.Fatalf("client errors were counted against the group: requests %d -> %d, codes %v -> %v", before, after, codesBefore, codes)
	}
	// The connection still serves.
	if res, body := h2Do(t, c, "GET", "https://app.cutover.test/", nil, nil); res.StatusCode != 200 {
		t.Fatalf("after the attacks: %s %q", res.Status, body)
	}
}

// rawH2Status sends one request over a fresh HTTP/2 connection, frame by
// frame (no client-side checks), and returns the answer's :status, or the
// frame that refused it. The fields are a GET of / on app.cutover.test and
// then extra, or extra alone when it starts with :method.
func rawH2Status(t *testing.T, addr string, pool *x509.CertPool, extra ...[2]string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := extra
	if len(extra) == 0 || extra[0][0] != ":method" {
		fields = append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/"}}, extra...)
	}
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return f.PseudoValue("status")
		case *http2.RSTStreamFrame:
			return "RST_STREAM " + f.ErrCode.String()
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String()
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		}
	}
}

// http1_only offers HTTP/1.1 alone; without it, a client that offers both
// gets HTTP/2 and one that offers HTTP/1.1 (or nothing) gets HTTP/1.1.
func TestHTTP2IsOfferedUnlessHTTP1Only(t *testing.T) {
	negotiated := func(addr string, pool *x509.CertPool, offer ...string) string {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: offer})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().NegotiatedProtocol
	}
	_, addr, pool := h2Listener(t, nil)
	if got := negotiated(addr, pool, "h2", "http/1.1"); got != "h2" {
		t.Fatalf("client offers h2 and http/1.1: negotiated %q, want h2", got)
	}
	if got := negotiated(addr, pool, "http/1.1"); got != "http/1.1" {
		t.Fatalf("client offers http/1.1: negotiated %q", got)
	}
	if code, body := rawTLSGet(t, addr, pool); code != 200 {
		t.Fatalf("HTTP/1.1 without ALPN: %d %q", code, body)
	}
	_, addr1, pool1 := h2Listener(t, func(l *Listener) { l.TLS.HTTP1Only = true })
	if got := negotiated(addr1, pool1, "h2", "http/1.1"); got != "http/1.1" {
		t.Fatalf("http1_only: negotiated %q, want http/1.1", got)
	}
}

// rawTLSGet sends one HTTP/1.1 request over TLS without ALPN.
func rawTLSGet(t *testing.T, addr string, pool *x509.CertPool) (int, string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.cutover.test\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	var code int
	fmt.Sscanf(string(b), "HTTP/1.1 %d", &code)
	return code, string(b)
}

// Close lets a request in flight on an HTTP/2 connection finish, and the
// connection is told to go (GOAWAY) rather than cut.
func TestHTTP2RequestInFlightFinishesAtClose(t *testing.T) {
	p, addr, pool := h2Listener(t, nil)
	c := h2Client(addr, "app.cutover.test", pool)
	if res, _ := h2Do(t, c, "GET", "https://app.cutover.test/", nil, nil); res.StatusCode != 200 {
		t.Fatal(res.Status)
	}
	got := getLater(c, "https://app.cutover.test/slow")
	time.Sleep(150 * time.Millisecond) // the request is at the target
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if a := <-got; !strings.HasPrefix(a, "200 proto=HTTP/1.1") {
		t.Fatalf("request in flight at close: %s", a)
	}
}

// A target's 103 Early Hints reach an HTTP/2 client; an answer with
// trailers arrives (without them).
func TestHTTP2EarlyHintsAndTrailers(t *testing.T) {
	target, _ := rawTarget(t, func(n int, head string) (string, bool) {
		switch head {
		case "GET /hints":
			return "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
		case "GET /trailers":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: abc\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	g := TargetGroup{Name: "e/raw", Health: fastHealth, Targets: []Target{{ID: "raw", Addr: target}}}
	l := Listener{Name: "e/prod", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key}, Rules: []Rule{{Forward: []WeightedTarget{{"e/raw", 1}}}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/raw", "healthy", 1)
	c := h2Client(addr, "app.cutover.test", pool)

	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://app.cutover.test/hints", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if fmt.Sprint(hints) != "[103 </style.css>; rel=preload]" || res.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("early hints over HTTP/2: %v, then %s %q", hints, res.Status, b)
	}

	res, err = c.Get("https://app.cutover.test/trailers")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	// Trailers are not carried over HTTP/2 (DESIGN.md); the answer is.
	if res.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("chunked answer with trailers over HTTP/2: %s %q", res.Status, b)
	}
}

// A restart fails no request of HTTP/2 clients that keep their
// connections: the old proxy tells them to go (GOAWAY) once its drain is
// over, the requests it has finish, the rest go to the next proxy on new
// connections.
func TestRestartFailsNoHTTP2Request(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	slowStarted := make(chan struct{})
	var slowOnce sync.Once
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowOnce.Do(func() { close(slowStarted) })
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "web "+r.Proto)
	}))
	t.Cleanup(u.Close)
	addr := freeAddr(t)
	l := Listener{Name: "e/production", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key}, Rules: []Rule{{Forward: []WeightedTarget{{"e/blue", 1}}}}}
	if err := k.c.PutScope(ctx, "e", State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/blue", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, k.c, 1)
	k.supervisor()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Go(func() {
			c := h2Client(addr, "app.cutover.test", pool)
			defer c.CloseIdleConnections()
			for range 20000 {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.Get("https://app.cutover.test/")
				if err == nil {
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || string(b) != "web HTTP/1.1" || res.ProtoMajor != 2 {
						err = fmt.Errorf("%s %s %q", res.Proto, res.Status, b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
				time.Sleep(2 * time.Millisecond) // bounded: the machine is shared
			}
		})
	}
	slow := getLater(h2Client(addr, "app.cutover.test", pool), "https://app.cutover.test/slow")
	<-slowStarted
	for deadline := time.Now().Add(5 * time.Second); ok.Load() < 50 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	before := ok.Load()
	next, err := Restart(ctx, home, 20*time.Second)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	k.track(next.PID)
	if !waitGone(ctx, k.pid, 15*time.Second) {
		t.Error("the old proxy still runs")
	}
	afterGone := ok.Load()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d HTTP/2 requests (%d before the restart, %d once the old proxy was gone)", ok.Load(), before, ok.Load()-afterGone)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d HTTP/2 requests failed across the restart; first: %v", n, firstErr.Load())
	}
	if got := <-slow; got != "200 web HTTP/1.1" {
		t.Fatalf("the HTTP/2 request in flight at the restart: %s", got)
	}
	if ok.Load() == afterGone {
		t.Fatal("no HTTP/2 request was served by the next proxy alone")
	}
	if err := Stop(ctx, home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// A client that stops reading its connection (flow control open, the
// socket full) is let go after the idle time, as over HTTP/1.1, rather than
// holding it for good.
func TestHTTP2AttackClientStopsReading(t *testing.T) {
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	big := upstream(t, "")
	big.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 1024 { // 64 MiB, more than the sockets hold
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	g := TargetGroup{Name: "e/big", Health: fastHealth, Targets: []Target{{ID: "big", Addr: hostOf(big)}}}
	g.Health.Path = "/health"
	l := Listener{Name: "e/prod", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key}, Limits: Limits{IdleTimeout: Duration(time.Second)},
		Rules: []Rule{{Forward: []WeightedTarget{{"e/big", 1}}}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/big", "healthy", 1)

	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	// Windows wide open: only the socket stops the proxy's writes.
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/big"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	// Not reading: the proxy's writes stall; after the idle time (and the
	// second a write takes to fail) the connection is closed.
	open := func() int64 { return p.http2Open()["e/prod"] }
	for deadline := time.Now().Add(2 * time.Second); open() != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if open() != 1 {
		t.Fatalf("%d HTTP/2 connections open, want the client's", open())
	}
	deadline := time.Now().Add(4 * time.Second)
	for open() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := open(); n != 0 {
		t.Fatalf("%d HTTP/2 connections open 4s after the client stopped reading (idle time 1s)", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.metrics)
	want := "# HELP cutover_proxy_http2_connections HTTP/2 client connections open, by listener (TLS listeners that offer h2).\n# TYPE cutover_proxy_http2_connections gauge\ncutover_proxy_http2_connections{listener=\"e/prod\"} 0\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cutover_proxy_http2_connections"); err != nil {
		t.Fatal(err)
	}
}
