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
	"net/netip"
	"net/textproto"
	"runtime"
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
	// /stream sends its second part once /stream-go is asked (or after
	// 10 s): a client that has its first part before then was not held
	// until the answer's end.
	var goOnce sync.Once
	streamGo := make(chan struct{})
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			select {
			case <-streamGo:
			case <-time.After(10 * time.Second):
			}
			io.WriteString(w, "b")
			return
		case "/stream-go":
			goOnce.Do(func() { close(streamGo) })
			return
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "proto=%s host=%s xff=%q xfp=%q real=%q fwd=%q cookie=%q len=%d sum=%s",
			r.Proto, r.Host, r.Header.Values("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Real-IP"), r.Header.Get("Forwarded"), r.Header.Values("Cookie"), n, hex.EncodeToString(h.Sum(nil))[:12])
	})
	return hostOf(s)
}

// h2Listener opens a TLS listener for app.cutover.test routed to one
// echoRequest target, and returns the proxy, the address and the pool that
// trusts its certificate.
func h2Listener(t *testing.T, edit func(*Listener)) (*Proxy, string, *x509.CertPool) {
	t.Helper()
	return h2ListenerWith(t, Options{}, edit)
}

func h2ListenerWith(t *testing.T, opts Options, edit func(*Listener)) (*Proxy, string, *x509.CertPool) {
	t.Helper()
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, opts)
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

	// OPTIONS * goes to the target, as over HTTP/1.1.
	before, _ := groupRequests(p, "prod/web")
	if st := rawH2Status(t, addr, pool, [2]string{":method", "OPTIONS"}, [2]string{":scheme", "https"}, [2]string{":authority", "app.cutover.test"}, [2]string{":path", "*"}); st != "200" {
		t.Fatalf("OPTIONS * over HTTP/2: %s", st)
	}
	if after, _ := groupRequests(p, "prod/web"); after != before+1 {
		t.Fatalf("OPTIONS * over HTTP/2 was not forwarded: the group counted %d requests", after-before)
	}

	// Many streams on one connection at once.
	before, _ = groupRequests(p, "prod/web")
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
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the first part took %v: the answer was held until its end (the target sends the second once asked, or after 10 s)", d)
	}
	if res, _ := h2Do(t, c, "GET", url+"/stream-go", nil, nil); res.StatusCode != 200 {
		t.Fatalf("/stream-go: %s", res.Status)
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
		{"a method that is not a token", [][2]string{{":method", "GET /admin"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/"}}, "400"},
		{"a Content-Length that is not a number", [][2]string{{"content-length", "abc"}}, "400"},
		{"two Content-Lengths", [][2]string{{"content-length", "0"}, {"content-length", "0"}}, "400"},
		{"neither :authority nor host", [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}}, "400"},
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
	r := dialH2Raw(t, addr, pool, true)
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	block := h2Headers("GET", "/", extra...)
	if len(extra) > 0 && extra[0][0] == ":method" {
		block = encodeFields(extra)
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	st, err := r.answer()
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return st
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
	// The request is at the target (sent before Close's GOAWAY).
	if !eventually(5*time.Second, func() bool { return inFlight(p) == 1 }) {
		t.Fatalf("the request did not reach the target: %d in flight", inFlight(p))
	}
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

	// Windows wide open: only the socket stops the proxy's writes.
	r := dialH2Raw(t, addr, pool, true, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	r.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("GET", "/big"), EndStream: true, EndHeaders: true})
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

// h2Raw is a client connection that writes HTTP/2 frames itself.
type h2Raw struct {
	c  *tls.Conn
	fr *http2.Framer
}

// dialH2Raw connects to addr, negotiates h2 and, with preface, sends the
// client preface and settings.
func dialH2Raw(t *testing.T, addr string, pool *x509.CertPool, preface bool, settings ...http2.Setting) *h2Raw {
	t.Helper()
	return dialH2RawFrom(t, "", addr, pool, preface, settings...)
}

// dialH2RawFrom is dialH2Raw from the local address from (another
// 127.0.0.0/8 address: another client), or any if "".
func dialH2RawFrom(t *testing.T, from, addr string, pool *x509.CertPool, preface bool, settings ...http2.Setting) *h2Raw {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &h2Raw{c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if preface {
		io.WriteString(c, http2.ClientPreface)
		if err := r.fr.WriteSettings(settings...); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// h2Headers encodes a request's fields: method and path on
// app.cutover.test, then the extra ones.
func h2Headers(method, path string, extra ...[2]string) []byte {
	return encodeFields(append([][2]string{{":method", method}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", path}}, extra...))
}

func encodeFields(fields [][2]string) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return hb.Bytes()
}

// answer reads frames until the first answer's head, reset or GOAWAY, and
// returns its :status or the frame's name and code.
func (r *h2Raw) answer() (string, error) {
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return "", err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return f.PseudoValue("status"), nil
		case *http2.RSTStreamFrame:
			return "RST_STREAM " + f.ErrCode.String(), nil
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String(), nil
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.fr.WriteSettingsAck()
			}
		}
	}
}

// closedWithin reports whether the proxy closes r's connection within d
// (reading and dropping what it sends meanwhile).
func (r *h2Raw) closedWithin(d time.Duration) bool {
	r.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.c)
	ne, ok := err.(net.Error)
	return !ok || !ne.Timeout()
}

// slowTarget counts the requests its /slow path holds: each until the
// proxy closes its connection (or 10s).
type slowTarget struct{ at, peak, total atomic.Int64 }

// slowH2Proxy opens a TLS listener routed to a slowTarget (group e/slow)
// and returns a raw HTTP/2 connection to it whose frames are read and
// dropped.
func slowH2Proxy(t *testing.T) (*Proxy, *h2Raw, *slowTarget) {
	t.Helper()
	st := &slowTarget{}
	slow := upstream(t, "")
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		io.Copy(io.Discard, r.Body)
		st.total.Add(1)
		n := st.at.Add(1)
		defer st.at.Add(-1)
		for p := st.peak.Load(); n > p && !st.peak.CompareAndSwap(p, n); p = st.peak.Load() {
		}
		select {
		case <-r.Context().Done(): // the proxy closed the connection
		case <-time.After(10 * time.Second):
		}
	})
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	g := TargetGroup{Name: "e/slow", Health: fastHealth, Targets: []Target{{ID: "slow", Addr: hostOf(slow)}}}
	l := Listener{Name: "e/prod", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key}, Rules: []Rule{{Forward: []WeightedTarget{{"e/slow", 1}}}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/slow", "healthy", 1)
	r := dialH2Raw(t, addr, pool, true)
	go func() {
		for {
			if _, err := r.fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	return p, r, st
}

// Resetting its streams ends a client's requests at the target, as hanging
// up does over HTTP/1.1 (499, not the group's), with a body or without: one
// connection cannot pile requests on a target by opening and resetting
// streams.
func TestHTTP2AttackResetStreamsEndTheirRequests(t *testing.T) {
	p, r, st := slowH2Proxy(t)
	_, codesBefore := groupRequests(p, "e/slow")
	const rounds, streams = 6, 40
	id := uint32(1)
	for round := range rounds {
		first := id
		for range streams {
			if round%2 == 0 {
				r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h2Headers("GET", "/slow"), EndStream: true, EndHeaders: true})
			} else {
				// With a body of unknown length: it is sent to the target
				// (chunked) while the answer is awaited.
				r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h2Headers("POST", "/slow"), EndHeaders: true})
				r.fr.WriteData(id, true, []byte("x"))
			}
			id += 2
		}
		time.Sleep(300 * time.Millisecond)
		for s := first; s < id; s += 2 {
			r.fr.WriteRSTStream(s, http2.ErrCodeCancel)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for st.at.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := st.at.Load(); n > 0 {
		t.Fatalf("%d requests still at the target 2s after their %d streams were reset (peak %d)", n, rounds*streams, st.peak.Load())
	}
	if st.peak.Load() > 2*streams {
		t.Fatalf("the target held %d requests at once, from %d streams reset every 300ms", st.peak.Load(), streams)
	}
	if _, codes := groupRequests(p, "e/slow"); codes["5xx"] != codesBefore["5xx"] {
		t.Fatalf("reset streams were counted as the group's 5xx: %v -> %v", codesBefore, codes)
	}
}

// A client that shuts its streams' flow-control windows and never reads
// holds no stream, goroutine or connection past the idle time.
func TestHTTP2AttackClientShutsItsWindow(t *testing.T) {
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	big := upstream(t, "")
	big.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	})
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	g := TargetGroup{Name: "e/big", Health: fastHealth, Targets: []Target{{ID: "big", Addr: hostOf(big)}}}
	l := Listener{Name: "e/prod", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key}, Limits: Limits{IdleTimeout: Duration(time.Second)},
		Rules: []Rule{{Forward: []WeightedTarget{{"e/big", 1}}}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/big", "healthy", 1)
	r := dialH2Raw(t, addr, pool, true, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for i := range 20 {
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: h2Headers("GET", "/big"), EndStream: true, EndHeaders: true})
	}
	open := func() int64 { return p.http2Open()["e/prod"] }
	for deadline := time.Now().Add(2 * time.Second); open() != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// The streams' writes stop at once; after the idle time each is reset,
	// and the connection, idle then, closes after the idle time.
	if !r.closedWithin(5 * time.Second) {
		t.Fatalf("the connection is open 5s after its client shut its windows (idle time 1s); %d HTTP/2 connections open", open())
	}
	for deadline := time.Now().Add(2 * time.Second); open() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open(); n != 0 {
		t.Fatalf("%d HTTP/2 connections open", n)
	}
}

// A connection that negotiated h2 has read_header_timeout for its preface
// and its first request's head, as an HTTP/1.1 one has for its first head.
func TestHTTP2AttackSilentAndSlowHeads(t *testing.T) {
	_, addr, pool := h2Listener(t, func(l *Listener) {
		l.Limits = Limits{ReadHeaderTimeout: Duration(time.Second), IdleTimeout: Duration(20 * time.Second)}
	})
	for _, tc := range []struct {
		name string
		do   func(r *h2Raw)
	}{
		{"no preface", func(*h2Raw) {}},
		{"preface and settings, then nothing", func(r *h2Raw) {
			io.WriteString(r.c, http2.ClientPreface)
			r.fr.WriteSettings()
		}},
		{"a head in CONTINUATION frames, one every 300ms", func(r *h2Raw) {
			io.WriteString(r.c, http2.ClientPreface)
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("GET", "/"), EndStream: true})
			go func() {
				var hb bytes.Buffer
				enc := hpack.NewEncoder(&hb)
				for i := range 100 {
					hb.Reset()
					enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-slow-%d", i), Value: "x"})
					if r.fr.WriteContinuation(1, false, hb.Bytes()) != nil {
						return
					}
					time.Sleep(300 * time.Millisecond)
				}
			}()
		}},
	} {
		r := dialH2Raw(t, addr, pool, false)
		start := time.Now()
		tc.do(r)
		if !r.closedWithin(4 * time.Second) {
			t.Errorf("%s: the connection is open after 4s (read_header_timeout 1s)", tc.name)
			continue
		}
		t.Logf("%s: closed after %v", tc.name, time.Since(start).Round(10*time.Millisecond))
	}
}

// A short upload is the client's error (400, counted against no group),
// not a whole body the target waits on until it is the group's 504: over
// HTTP/1.1 (a client that shuts its side mid-body) and over HTTP/2 (a
// stream ended or reset mid-body).
func TestShortUploadIsTheClientsNotTheTargets(t *testing.T) {
	var reading atomic.Int64
	sink := upstream(t, "")
	sink.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reading.Add(1)
		defer reading.Add(-1)
		io.Copy(io.Discard, r.Body)
	})
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	tlsAddr, plainAddr := freeAddr(t), freeAddr(t)
	g := TargetGroup{Name: "e/sink", Health: fastHealth, Targets: []Target{{ID: "sink", Addr: hostOf(sink)}}}
	lim := Limits{TargetTimeout: Duration(2 * time.Second)}
	fw := []Rule{{Forward: []WeightedTarget{{"e/sink", 1}}}}
	ls := []Listener{
		{Name: "e/tls", Addr: tlsAddr, TLS: &TLS{CertFile: cert, KeyFile: key}, Limits: lim, Rules: fw},
		{Name: "e/plain", Addr: plainAddr, Limits: lim, Rules: fw},
	}
	if err := p.Apply(context.Background(), State{Listeners: ls, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/sink", "healthy", 1)
	part := bytes.Repeat([]byte("b"), 16<<10)

	check := func(name, answer string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for reading.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := reading.Load(); n > 0 {
			t.Errorf("%s: the target still reads a body 3s after its client's end (target_timeout 2s): %s", name, answer)
		}
		if _, codes := groupRequests(p, "e/sink"); codes["5xx"] != 0 || codes["2xx"] != 0 {
			t.Errorf("%s: counted against the group: %v (answer %s)", name, codes, answer)
		}
	}

	// HTTP/1.1, plain listener (the event loop hands a large upload to the
	// server) and TLS: the client shuts its side after 16 KiB of 100000.
	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"HTTP/1.1", func() (net.Conn, error) { return net.Dial("tcp", plainAddr) }},
		{"HTTP/1.1 over TLS", func() (net.Conn, error) {
			return tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test"})
		}},
	} {
		c, err := tc.dial()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: app.cutover.test\r\nContent-Length: 100000\r\n\r\n")
		c.Write(part)
		time.Sleep(100 * time.Millisecond)
		switch c := c.(type) {
		case *net.TCPConn:
			c.CloseWrite()
		case *tls.Conn:
			c.CloseWrite()
		}
		b, _ := io.ReadAll(c)
		c.Close()
		answer, _, _ := strings.Cut(string(b), "\r\n")
		if !strings.HasPrefix(answer, "HTTP/1.1 400") {
			t.Errorf("%s: a body ended short: %q, want 400", tc.name, answer)
		}
		check(tc.name, answer)
	}

	// HTTP/2: the stream ends (END_STREAM) or is reset mid-body.
	for _, reset := range []bool{false, true} {
		r := dialH2Raw(t, tlsAddr, pool, true)
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("POST", "/up", [2]string{"content-length", "100000"}), EndHeaders: true})
		r.fr.WriteData(1, false, part[:8<<10])
		time.Sleep(100 * time.Millisecond)
		if reset {
			r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		} else {
			r.fr.WriteData(1, true, nil)
		}
		r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		answer, err := r.answer()
		if err != nil {
			answer = err.Error()
		}
		name := fmt.Sprintf("HTTP/2, stream reset %v", reset)
		if !reset && answer != "400" && !strings.HasPrefix(answer, "RST_STREAM") {
			t.Errorf("%s: a body ended short: %s, want 400 or a reset", name, answer)
		}
		check(name, answer)
	}
}

// A client that shuts its windows and asks for small answers (each fits the
// server's buffer, so only the answer's last flush waits) or for answers
// the bridge (400) or the HTTP/2 server (431) write is let go after the
// idle time too.
func TestHTTP2AttackShutWindowSmallAnswers(t *testing.T) {
	var big [][2]string
	for j := range 4 {
		big = append(big, [2]string{fmt.Sprintf("x-big-%d", j), strings.Repeat("b", 2<<10)})
	}
	for _, tc := range []struct {
		name  string
		block []byte
	}{
		{"200 small answers", h2Headers("GET", "/")},
		{"400 bad method", encodeFields([][2]string{{":method", "GET /x"}, {":scheme", "https"}, {":authority", "app.cutover.test"}, {":path", "/"}})},
		{"431 header list too long", h2Headers("GET", "/", big...)},
	} {
		p, addr, pool := h2Listener(t, func(l *Listener) {
			l.Limits = Limits{IdleTimeout: Duration(time.Second), MaxHeaderBytes: 4 << 10}
		})
		r := dialH2Raw(t, addr, pool, true, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		for i := range 50 {
			block := tc.block
			if i == 0 { // one request served: the head timer stops
				block = h2Headers("GET", "/")
			}
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block, EndStream: true, EndHeaders: true})
		}
		go func() { // answers SETTINGS, never opens a window
			for {
				f, err := r.fr.ReadFrame()
				if err != nil {
					return
				}
				if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
					r.fr.WriteSettingsAck()
				}
			}
		}()
		open := func() int64 { return p.http2Open()["prod/production"] }
		for deadline := time.Now().Add(2 * time.Second); open() != 1 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if open() != 1 {
			t.Fatalf("%s: %d HTTP/2 connections open, want the client's", tc.name, open())
		}
		deadline := time.Now().Add(6 * time.Second)
		for open() > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := open(); n != 0 {
			t.Errorf("%s: the connection is open 6s after its client shut its windows (idle time 1s)", tc.name)
		}
	}
}

// A TLS connection accepted before a Close (or a hand-over's step-down)
// whose handshake ends after it: over HTTP/1.1 it is served; over HTTP/2 it
// gets a GOAWAY that took no stream, which tells the client to send its
// request again elsewhere (the next proxy), not a bare close.
func TestHTTP2HandshakeAfterTheStepDown(t *testing.T) {
	for _, tc := range []struct {
		proto string
		drain time.Duration
		wait  time.Duration
		want  string
	}{
		{"http/1.1", 0, 200 * time.Millisecond, "HTTP/1.1 200 OK"},
		{"h2", 0, 200 * time.Millisecond, "GOAWAY NO_ERROR"},
		{"http/1.1", handOverDrain, handOverDrain + 300*time.Millisecond, "HTTP/1.1 200 OK"},
		{"h2", handOverDrain, handOverDrain + 300*time.Millisecond, "GOAWAY NO_ERROR"},
	} {
		p, addr, pool := h2Listener(t, nil)
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		// Accepted (a sleep of 100 ms was not always enough under -race
		// load); the server waits for the ClientHello.
		if !eventually(5*time.Second, func() bool { return listenerConns(p, addr) > 0 }) {
			t.Fatal("the proxy did not accept the connection")
		}
		closed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			closed <- p.close(ctx, tc.drain)
		}()
		eventually(5*time.Second, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.closed })
		time.Sleep(tc.wait)
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "app.cutover.test", NextProtos: []string{tc.proto}})
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		var got string
		if tc.proto == "h2" {
			r := &h2Raw{c: c, fr: http2.NewFramer(c, c)}
			r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
			io.WriteString(c, http2.ClientPreface)
			r.fr.WriteSettings()
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("GET", "/"), EndStream: true, EndHeaders: true})
			if got, err = r.answer(); err != nil {
				got = err.Error()
			}
		} else {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.cutover.test\r\n\r\n")
			b, _ := io.ReadAll(c)
			got, _, _ = strings.Cut(string(b), "\r\n")
		}
		if got != tc.want {
			t.Errorf("%s, handshake %v after Close(drain %v) began: %q, want %q", tc.proto, tc.wait, tc.drain, got, tc.want)
		}
		if err := <-closed; err != nil {
			t.Errorf("%s, drain %v: close: %v (no request was cut off)", tc.proto, tc.drain, err)
		}
	}
}

// The limits do not cut what keeps to them: an event stream whose gaps are
// longer than idle_timeout (within target_timeout) arrives whole; a first
// request late but within read_header_timeout is served, and so is one on
// the same connection after a longer pause.
func TestHTTP2LimitsSpareWhatKeepsToThem(t *testing.T) {
	sse := upstream(t, "")
	sse.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond)
		}
		fmt.Fprintf(w, "data: end\n\n")
	})
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	g := TargetGroup{Name: "e/sse", Health: fastHealth, Targets: []Target{{ID: "sse", Addr: hostOf(sse)}}}
	l := Listener{Name: "e/prod", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key},
		Limits: Limits{IdleTimeout: Duration(time.Second), ReadHeaderTimeout: Duration(time.Second), TargetTimeout: Duration(10 * time.Second)},
		Rules:  []Rule{{Forward: []WeightedTarget{{"e/sse", 1}}}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/sse", "healthy", 1)
	res, body := h2Do(t, h2Client(addr, "app.cutover.test", pool), "GET", "https://app.cutover.test/events", nil, nil)
	if res.StatusCode != 200 || body != "data: 0\n\ndata: 1\n\ndata: end\n\n" {
		t.Fatalf("event stream with 1.5s gaps (idle_timeout 1s) over HTTP/2: %s %q", res.Status, body)
	}

	_, addr, pool = h2Listener(t, func(l *Listener) {
		// Room under -race load: the header timer stops only once the
		// stream's handler runs.
		l.Limits = Limits{ReadHeaderTimeout: Duration(2 * time.Second), IdleTimeout: Duration(20 * time.Second)}
	})
	r := dialH2Raw(t, addr, pool, true)
	r.c.SetDeadline(time.Now().Add(15 * time.Second))
	time.Sleep(800 * time.Millisecond)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("GET", "/"), EndStream: true, EndHeaders: true})
	if st, err := r.answer(); st != "200" {
		t.Fatalf("first request at 800ms (read_header_timeout 2s): %q %v", st, err)
	}
	time.Sleep(2500 * time.Millisecond)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h2Headers("GET", "/"), EndStream: true, EndHeaders: true})
	if st, err := r.answer(); st != "200" {
		t.Fatalf("second request 2.5s later (past read_header_timeout): %q %v", st, err)
	}
}

// Rapid reset (CVE-2023-44487) moved to the target: streams opened and
// reset within milliseconds, batch after batch, on one connection. A
// stream's handler ends only once its request's HTTP/1.1 side has, so the
// HTTP/2 server's bounds (128 streams, its reset-flood defence) bound the
// requests at the target too.
func TestHTTP2AttackRapidReset(t *testing.T) {
	_, r, st := slowH2Proxy(t)
	id, sent := uint32(1), 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		first := id
		for range 100 {
			if r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h2Headers("GET", "/slow"), EndStream: true, EndHeaders: true}) != nil {
				break
			}
			id += 2
			sent++
		}
		time.Sleep(15 * time.Millisecond)
		for s := first; s < id; s += 2 {
			r.fr.WriteRSTStream(s, http2.ErrCodeCancel)
		}
	}
	time.Sleep(300 * time.Millisecond)
	t.Logf("%d streams opened and reset; the target got %d requests, %d at once at most", sent, st.total.Load(), st.peak.Load())
	// 128 streams a connection, and a little more as the target sees a
	// closed connection a moment after the proxy has let go of it.
	if st.peak.Load() > 150 {
		t.Fatalf("one HTTP/2 connection held %d requests at the target at once (128 streams a connection)", st.peak.Load())
	}
}

// The HTTP/2 requests in flight are bounded, all connections together:
// past the bound a request is answered 503 at once, counted against no
// group.
func TestHTTP2RequestsInFlightAreBounded(t *testing.T) {
	p, addr, pool := h2ListenerWith(t, Options{MaxHTTP2InFlight: 4}, nil)
	r := dialH2Raw(t, addr, pool, true)
	for i := range 6 { // stalled uploads: each holds its request
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: h2Headers("POST", "/up", [2]string{"content-length", "8000"}), EndHeaders: true})
	}
	// The HTTP/2 server runs each stream's handler on its own goroutine, so
	// which two of the six come past the bound is not fixed: any two are.
	r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := map[uint32]string{}
	for len(got) < 2 {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("answers %v, then %v (want two 503s at once)", got, err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			got[h.StreamID] = h.PseudoValue("status")
		}
	}
	for _, st := range got {
		if st != "503" {
			t.Fatalf("answers %v: want 503 for the two streams past the bound of 4", got)
		}
	}
	// The other four are held, not answered.
	r.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			break
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			t.Fatalf("stream %d answered %s within the bound: want it held (answers before: %v)", h.StreamID, h.PseudoValue("status"), got)
		}
	}
	if _, codes := groupRequests(p, "prod/web"); codes["5xx"] != 0 {
		t.Fatalf("the 503s were counted against the group: %v", codes)
	}
	if ls := p.Stats().Listeners; len(ls) != 1 || ls[0].RequestsRefused["503"] != 2 {
		t.Fatalf("the listener's refusals: %+v, want the two 503s", ls)
	}
}

// One client address may hold at most MaxHTTP2InFlightPerClient HTTP/2
// requests in flight, over all its connections: before, one client with 64
// connections of stalled streams took the proxy's whole bound, and every
// other HTTP/2 client got 503. Another client is served meanwhile, and a
// listener's trusted proxy (which carries many clients) is bound by the
// proxy's figure only.
func TestHTTP2RequestsInFlightPerClientAreBounded(t *testing.T) {
	p, addr, pool := h2ListenerWith(t, Options{MaxHTTP2InFlight: 64, MaxHTTP2InFlightPerClient: 3}, func(l *Listener) {
		l.TrustedProxies = []string{"127.0.0.3/32"}
	})
	stall := func(r *h2Raw, ids ...uint32) {
		for _, id := range ids {
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h2Headers("POST", "/up", [2]string{"content-length", "8000"}), EndHeaders: true})
		}
	}
	waitTotal := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); p.h2Budget.requests.Load() != n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d HTTP/2 requests in flight, want %d", p.h2Budget.requests.Load(), n)
			}
		}
	}
	// Client 127.0.0.1: two stalled uploads on one connection, then two on
	// another: the second of those is past its bound of 3.
	a1, a2 := dialH2RawFrom(t, "127.0.0.1", addr, pool, true), dialH2RawFrom(t, "127.0.0.1", addr, pool, true)
	stall(a1, 1, 3)
	waitTotal(2)
	stall(a2, 1)
	waitTotal(3)
	stall(a2, 3)
	a2.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if st, err := a2.answer(); st != "503" {
		t.Fatalf("the 4th stalled upload of one client: %q %v, want 503", st, err)
	}
	// Client 127.0.0.2 is served meanwhile.
	b := dialH2RawFrom(t, "127.0.0.2", addr, pool, true)
	b.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("GET", "/"), EndStream: true, EndHeaders: true})
	b.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if st, err := b.answer(); st != "200" {
		t.Fatalf("another client while the first is at its bound: %q %v, want 200", st, err)
	}
	// A trusted proxy holds more than 3.
	c := dialH2RawFrom(t, "127.0.0.3", addr, pool, true)
	stall(c, 1, 3, 5, 7, 9)
	waitTotal(3 + 5)
	c.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if st, err := c.answer(); err == nil {
		t.Fatalf("a trusted proxy's stalled upload was answered %s, want it held", st)
	}
	if _, codes := groupRequests(p, "prod/web"); codes["5xx"] != 0 {
		t.Fatalf("the 503 was counted against the group: %v", codes)
	}
}

// An Apply that stops offering HTTP/2 on a listener tells its open HTTP/2
// connections to go (GOAWAY); one that offers it again serves it again.
func TestHTTP2TurnedOffByApplyEndsItsConnections(t *testing.T) {
	cert, key, pool := selfSigned(t, t.TempDir(), "a", "app.cutover.test")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	web := TargetGroup{Name: "prod/web", Health: fastHealth, Targets: []Target{{ID: "w", Addr: echoRequest(t)}}}
	state := func(http1Only bool) State {
		return State{Listeners: []Listener{{Name: "prod/production", Addr: addr, TLS: &TLS{CertFile: cert, KeyFile: key, HTTP1Only: http1Only},
			Rules: []Rule{{Forward: []WeightedTarget{{"prod/web", 1}}}}}}, TargetGroups: []TargetGroup{web}}
	}
	if err := p.Apply(context.Background(), state(false)); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "prod/web", "healthy", 1)
	r := dialH2Raw(t, addr, pool, true)
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers("GET", "/"), EndStream: true, EndHeaders: true})
	if st, err := r.answer(); st != "200" {
		t.Fatalf("before: %q %v", st, err)
	}
	if err := p.Apply(context.Background(), state(true)); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := r.answer()
		if err != nil {
			t.Fatalf("the HTTP/2 connection kept from before http1_only: %v, want a GOAWAY", err)
		}
		if st == "GOAWAY NO_ERROR" {
			break
		}
	}
	if code, body := rawTLSGet(t, addr, pool); code != 200 {
		t.Fatalf("HTTP/1.1 after http1_only: %d %q", code, body)
	}
	if err := p.Apply(context.Background(), state(false)); err != nil {
		t.Fatal(err)
	}
	res, body := h2Do(t, h2Client(addr, "app.cutover.test", pool), "GET", "https://app.cutover.test/", nil, nil)
	if res.StatusCode != 200 || res.ProtoMajor != 2 || !strings.HasPrefix(body, "proto=HTTP/1.1") {
		t.Fatalf("HTTP/2 offered again: %s %s %q", res.Proto, res.Status, body)
	}
}

// A client is counted by its IPv4 address, or its IPv6 address's /64 (one
// host's share: a client with a /64 has 2^64 addresses to spread over), or
// the IPv4 address its IPv6 address carries (the translators' well-known
// prefix, Teredo), or its whole IPv6 address (a translator's own prefix).
func TestHTTP2ClientKey(t *testing.T) {
	for _, tc := range []struct{ remote, key string }{
		{"127.0.0.1:443", "127.0.0.1"},
		{"[::ffff:10.1.2.3]:443", "10.1.2.3"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:2::1]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::"},
		// IPv4 clients behind a translator, or over Teredo: counted by the
		// IPv4 address their IPv6 address carries, as over IPv4.
		{"[64:ff9b::198.51.100.7]:443", "198.51.100.7"},
		{"[64:ff9b::198.51.100.8]:443", "198.51.100.8"},
		{"[64:ff9b:1:c633:64:700::]:443", "64:ff9b:1:c633:64:700::"},     // a translator's own prefix: its length unknown,
		{"[64:ff9b:1:ffff::c633:6407]:443", "64:ff9b:1:ffff::c633:6407"}, // each address alone
		{"[64:ff9b:1:ffff::cb00:7105]:443", "64:ff9b:1:ffff::cb00:7105"},
		{"[2001:0:4136:e378:8000:63bf:3fff:fdd2]:443", "192.0.2.45"}, // RFC 4380's example
		{"[2001:0:a00:1:0:fc17:34ff:8efa]:443", "203.0.113.5"},       // another server field, flags, port:
		{"[2001:0:a00:2:8000:fc18:34ff:8efa]:443", "203.0.113.5"},    // the same IPv4 host
		{"[2001:db8::1]:443", "2001:db8::"},                          // documentation, not Teredo's 2001::/32
		{"not an address", "invalid IP"},
	} {
		if got := clientKey(clientAddr(tc.remote)).String(); got != tc.key {
			t.Errorf("%s: counted as %s, want %s", tc.remote, got, tc.key)
		}
	}
}

// TestHTTP2BudgetCountsTheHeaderBuffer: a request over HTTP/2 holds its
// bridged connection's read buffer, the listener's max_header_bytes, and
// the bounds counted requests: at 1 MiB (a valid setting) a stalled stream
// held ~1.1 MiB, and one client address with 8 connections of stalled
// uploads over a gigabyte (a helper's review measured 545 MiB for 512
// streams). The bounds now count each request at its listener's cost,
// sized so that the defaults hold what they did at the default header
// bound. Here one client at the default per-client bound opens 512
// stalled uploads: about 90 are held, the rest get 503, and the heap grows
// by about the per-client bound (96 MiB), not 545 MiB.
func TestHTTP2BudgetCountsTheHeaderBuffer(t *testing.T) {
	p, addr, pool := h2ListenerWith(t, Options{}, func(l *Listener) {
		l.Limits.MaxHeaderBytes = 1 << 20
		l.TrustedProxies = []string{TrustNone} // 127.0.0.1 is a client here, not a trusted proxy
	})
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse)
	}
	h0 := heap()
	var refused atomic.Int64
	for range 4 {
		r := dialH2Raw(t, addr, pool, true)
		go func() {
			for {
				f, err := r.fr.ReadFrame()
				if err != nil {
					return
				}
				if h, ok := f.(*http2.MetaHeadersFrame); ok && h.PseudoValue("status") == "503" {
					refused.Add(1)
				}
			}
		}()
		for i := range 128 { // stalled uploads: 8000 bytes announced, none sent
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: h2Headers("POST", "/up", [2]string{"content-length", "8000"}), EndHeaders: true})
		}
	}
	cost := h2StreamCost(1 << 20)
	want := DefaultMaxHTTP2InFlightPerClient * h2StreamCost(DefaultMaxHeaderBytes) / cost
	for deadline := time.Now().Add(10 * time.Second); p.h2Budget.requests.Load()+refused.Load() < 512; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d held and %d refused of 512", p.h2Budget.requests.Load(), refused.Load())
		}
	}
	held := p.h2Budget.requests.Load()
	grown := heap() - h0
	t.Logf("%d stalled streams held, %d refused: heap +%d MiB", held, refused.Load(), grown>>20)
	if held != want {
		t.Fatalf("%d stalled streams of one client held at max_header_bytes 1 MiB, want %d (the per-client bound at %d KiB each)", held, want, cost>>10)
	}
	if limit := int64(DefaultMaxHTTP2InFlightPerClient) * h2StreamCost(DefaultMaxHeaderBytes) * 3 / 2; grown > limit {
		t.Fatalf("the heap grew by %d MiB for one client's stalled streams, over 1.5 times its bound (%d MiB)", grown>>20, limit>>20)
	}
}

// TestHTTP2BudgetLetsOneRequestIn: a bound smaller than one request's cost
// (a listener with large heads, a small bound set through Options) still
// lets one request of a client in, and only one, or every one would be
// refused; what a request takes it gives back whole.
func TestHTTP2BudgetLetsOneRequestIn(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	for _, b := range []*h2Budget{newH2Budget(1, 1), newH2Budget(1, 8)} {
		release, refused := b.take(ip, false, 1<<20)
		if refused != "" {
			t.Fatalf("the first request refused: %s", refused)
		}
		if _, refused := b.take(ip, false, 1<<20); refused == "" {
			t.Fatal("a second request let in past the bound")
		}
		if _, refused := b.take(netip.MustParseAddr("192.0.2.2"), false, 1<<20); refused == "" {
			t.Fatal("another client's request let in past the proxy's bound")
		}
		release()
		if b.total.Load() != 0 || b.requests.Load() != 0 || len(b.clients) != 0 {
			t.Fatalf("after the release: %d bytes, %d requests, clients %v", b.total.Load(), b.requests.Load(), b.clients)
		}
		release, refused = b.take(ip, false, 1<<20)
		if refused != "" {
			t.Fatalf("after the release: %s", refused)
		}
		release()
	}
}
