package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/stats"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// seenRequest is what the target behind the proxy received.
type seenRequest struct {
	host   string
	path   string
	uri    string // the request target as sent
	header http.Header
	body   string
	err    error
}

// recordingTarget is a real HTTP server that reads every request's body to
// its end before answering, and records each request but health checks.
type recordingTarget struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newRecordingTarget(t *testing.T) *recordingTarget {
	rt := &recordingTarget{}
	rt.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		b, err := io.ReadAll(r.Body)
		rt.mu.Lock()
		rt.seen = append(rt.seen, seenRequest{r.Host, r.URL.Path, r.RequestURI, r.Header.Clone(), string(b), err})
		rt.mu.Unlock()
		if err != nil {
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(rt.Close)
	return rt
}

func (rt *recordingTarget) take() []seenRequest {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	s := rt.seen
	rt.seen = nil
	return s
}

// rawExchange sends raw bytes on a new connection to addr, 50 ms between
// parts, then stalls (the connection stays open, nothing more is sent),
// reading meanwhile until the proxy closes the connection or 5s after the
// last part. It returns the
// status of every response read, whether the proxy closed the connection,
// and how long after the send that took.
type rawResult struct {
	statuses []int
	bodies   []string
	closed   bool
	after    time.Duration
}

func rawExchange(t *testing.T, addr string, parts ...string) rawResult {
	t.Helper()
	var c net.Conn
	var err error
	if a, ok := strings.CutPrefix(addr, "tls://"); ok {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a,
			&tls.Config{InsecureSkipVerify: true, ServerName: "app.example", NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Sent while the answer is read: the proxy may answer (and close its
	// end) before the last part, and then read and drop the rest (a
	// lingering close), so the time it took is when its answer and its
	// end came, not when the client was done sending.
	sent := make(chan struct{})
	defer func() { c.Close(); <-sent }()
	go func() {
		defer close(sent)
		for i, p := range parts {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := io.WriteString(c, p); err != nil {
				return // the proxy may close on a bad first part
			}
		}
	}()
	c.SetReadDeadline(start.Add(time.Duration(len(parts))*50*time.Millisecond + 5*time.Second))
	var res rawResult
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			res.closed = !(errors.As(err, &ne) && ne.Timeout())
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.statuses = append(res.statuses, resp.StatusCode)
		res.bodies = append(res.bodies, string(b))
	}
	res.after = time.Since(start)
	return res
}

// TestHostileRequests sends requests a client may craft to break or fool
// the proxy, over TCP to a real proxy process, on a plain listener and on
// a TLS one, and checks each answer, that the target never saw what it
// must not see, and that the target group's counters did not move for
// what is the client's fault.
func TestHostileRequests(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, _ := startDaemon(t, home)
	target := newRecordingTarget(t)
	addr := freeAddr(t)
	tg := tgOf("e/web", target.Server)
	tg.Health.Path = "/healthz"
	l := oneRouteNamed("e/production", addr, "e/web")
	l.Limits = Limits{ReadHeaderTimeout: Duration(500 * time.Millisecond), BodyIdleTimeout: Duration(500 * time.Millisecond),
		IdleTimeout: Duration(2 * time.Second), MaxHeaderBytes: 8 << 10, MaxBodyBytes: 4000}
	l.TrustedProxies = []string{TrustNone} // every forwarding header is the proxy's own
	// The same table over TLS (the server path, where the loops do not
	// read), with the same limits.
	saddr := freeAddr(t)
	sl := oneRouteNamed("e/secure", saddr, "e/web")
	sl.Limits, sl.TrustedProxies = l.Limits, l.TrustedProxies
	cert, key, _ := selfSigned(t, t.TempDir(), "h", "app.example")
	sl.TLS = &TLS{CertFile: cert, KeyFile: key}
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{l, sl}, TargetGroups: []TargetGroup{tg}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	// What the checks expect of the listener a case runs on.
	listenAddr, proto := addr, "http"

	const post = "POST /upload HTTP/1.1\r\nHost: app.example\r\n"
	cases := []hostile{{
		name:  "malformed chunk size",
		parts: []string{post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "chunk longer than its size",
		parts: []string{post + "Transfer-Encoding: chunked\r\n\r\n", "5\r\nhelloEXTRA\r\n0\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "chunked body cut off",
		parts: []string{post + "Transfer-Encoding: chunked\r\n\r\n", "5\r\nhel"},
		want:  []int{408},
	}, {
		name:  "body stalls after 10 of 100 bytes",
		parts: []string{post + "Content-Length: 100\r\n\r\n", "0123456789"},
		want:  []int{408}, within: 3 * time.Second,
	}, {
		// Each byte within body_idle_timeout of the last, but 20 bytes a
		// second against body_min_rate's 100: before, held as long as
		// the client went on.
		name:  "body trickled a byte every 50ms",
		parts: append([]string{post + "Content-Length: 100\r\n\r\n"}, slices.Repeat([]string{"x"}, 60)...),
		want:  []int{408}, within: 2500 * time.Millisecond,
	}, {
		name:  "chunked body trickled a byte every 50ms",
		parts: append([]string{post + "Transfer-Encoding: chunked\r\n\r\n"}, slices.Repeat([]string{"1\r\nx\r\n"}, 60)...),
		want:  []int{408}, within: 2500 * time.Millisecond}, {
		name:  "headers never end (slowloris)",
		parts: []string{"GET / HTTP/1.1\r\nHost: app.example\r\n", "X-Slow: 1\r\n"},
		want:  []int{408}, within: 3 * time.Second,
	}, {
		name: "Content-Length and Transfer-Encoding: a request smuggled behind",
		parts: []string{post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
			"GET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want: []int{400},
	}, {
		name: "Transfer-Encoding before Content-Length",
		parts: []string{post + "Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" +
			"GET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want: []int{400},
	}, {
		name:  "Transfer-Encoding on HTTP/1.0",
		parts: []string{"POST /upload HTTP/1.0\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "bad chunk with a request pipelined behind",
		parts: []string{post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "a Content-Length over max_body_bytes",
		parts: []string{post + "Content-Length: 5000\r\n\r\n" + strings.Repeat("b", 5000)},
		want:  []int{413},
	}, {
		// Refused before the client sends it: no 100 Continue first.
		name:  "a Content-Length over max_body_bytes, with Expect: 100-continue",
		parts: []string{post + "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"},
		want:  []int{413}, within: time.Second,
	}, {
		// The target's request is cut when the body goes past the bound.
		name:  "a chunked body past max_body_bytes",
		parts: []string{post + "Transfer-Encoding: chunked\r\n\r\nfa0\r\n" + strings.Repeat("c", 4000) + "\r\n", "10\r\n" + strings.Repeat("d", 16) + "\r\n0\r\n\r\n"},
		want:  []int{413},
	}, {
		name:  "a Content-Length at max_body_bytes is served",
		parts: []string{post + "Content-Length: 4000\r\nConnection: close\r\n\r\n" + strings.Repeat("e", 4000)},
		want:  []int{200}, counted: true,
	}, {
		name:  "a chunked body at max_body_bytes is served",
		parts: []string{post + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nfa0\r\n" + strings.Repeat("f", 4000) + "\r\n0\r\n\r\n"},
		want:  []int{200}, counted: true,
	}, {
		name:  "headers over the size limit",
		parts: []string{"GET / HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"},
		want:  []int{431},
	}, {
		// 431 before, as for the headers; nginx answers 414. On a TLS
		// listener, whose server's parser does not say which part was too
		// long, the connection notes whether a line end came (alpnConn):
		// 414 for a connection's first request, 431 for a later one (the
		// case below).
		name:  "a request line over the size limit",
		parts: []string{"GET /" + strings.Repeat("a", 16<<10) + " HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want:  []int{414},
	}, {
		name: "a request line over the size limit after a request on the connection",
		parts: []string{"GET /first HTTP/1.1\r\nHost: app.example\r\n\r\n",
			"GET /" + strings.Repeat("a", 16<<10) + " HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want: []int{200}, counted: true,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(r.statuses) != 2 || r.statuses[1] != 414 && r.statuses[1] != 431 || !r.closed {
				t.Fatalf("answers %v (closed %v), want 200 then 414 (the loops) or 431 (TLS), then the close", r.statuses, r.closed)
			}
		},
	}, {
		name:  "two different Content-Lengths",
		parts: []string{post + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		want:  []int{400},
	}, {
		name:  "Transfer-Encoding other than chunked",
		parts: []string{post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		want:  []int{400, 501},
	}, {
		// RFC 9112 §6.3: a last coding other than chunked leaves no length.
		// The parser read the body as empty and the rest as a request.
		name:  "Transfer-Encoding: identity, a request smuggled behind",
		parts: []string{post + "Transfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want:  []int{400},
	}, {
		// Sent on raw, the target answered its own 400, counted against
		// the release (or read the name its own way).
		name:  "a space inside a header field name",
		parts: []string{"GET /x HTTP/1.1\r\nHost: app.example\r\nX-Real IP: 203.0.113.66\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "a separator in a header field name",
		parts: []string{"GET /x HTTP/1.1\r\nHost: app.example\r\nX-Forwarded(For): 203.0.113.66\r\n\r\n"},
		want:  []int{400},
	}, {
		// The target got "CONNECT /".
		name:  "CONNECT to another host",
		parts: []string{"CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n"},
		want:  []int{501},
	}, {
		// Served as HTTP/1.0 before (the parser takes any version that is
		// not 1.1 for 1.0); nginx answers 505 to a major version not 1.
		name:  "HTTP/2.0 in an HTTP/1 request line",
		parts: []string{"GET /x HTTP/2.0\r\nHost: app.example\r\n\r\n"},
		want:  []int{505},
	}, {
		name:  "HTTP/0.9 in a request line",
		parts: []string{"GET /x HTTP/0.9\r\nHost: app.example\r\n\r\n"},
		want:  []int{505},
	}, {
		// A server that reads "_" as "-" (CGI-style) would see a second
		// framing beside the proxy's own.
		name: "framing fields spelt with an underscore are not sent on",
		parts: []string{post + "Content-Length: 5\r\nTransfer_Encoding: chunked\r\nContent_Length: 50\r\nProxy_Connection: x\r\n" +
			"Connection: close\r\n\r\nhello"},
		want: []int{200}, counted: true,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(seen) != 1 || seen[0].body != "hello" {
				t.Fatalf("the target saw %+v, want one request with body hello", seen)
			}
			for k := range seen[0].header {
				if strings.Contains(k, "_") {
					t.Errorf("the target saw %s: %q", k, seen[0].header[k])
				}
			}
		},
	}, {
		// The loop and the server's parser find a head's end by CRLF CRLF
		// only: such a head waited for read_header_timeout (408). RFC 9112
		// §2.2 lets a server refuse a bare LF; answered at once. On a TLS
		// listener, whose server's parser waits for a CRLF CRLF, the
		// connection follows its first request's head (alpnConn); a later
		// request's still waits (the case below).
		name:  "a head of bare LF lines",
		parts: []string{"GET /bare HTTP/1.1\nHost: app.example\nConnection: close\n\n"},
		want:  []int{400}, within: time.Second,
	}, {
		name:  "a head of CRLF lines ended by a bare LF",
		parts: []string{"GET /mixed HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\n"},
		want:  []int{400}, within: time.Second,
	}, {
		name:  "a bare LF line then CRLF",
		parts: []string{"GET /mixed2 HTTP/1.1\r\nHost: app.example\nConnection: close\n\r\n"},
		want:  []int{400}, within: time.Second,
	}, {
		name:  "a bare LF end split across two sends",
		parts: []string{"GET /split HTTP/1.1\nHost: app.example\n", "\n"},
		want:  []int{400}, within: time.Second,
	}, {
		name:  "a bare LF then CRLF end split across two sends",
		parts: []string{"GET /split2 HTTP/1.1\nHost: app.example\n\r", "\n"},
		want:  []int{400}, within: time.Second,
	}, {
		// The loops answer 400 at once; on TLS the server's parser waits
		// for read_header_timeout (500 ms here), then 408.
		name: "a head of bare LF lines after a request on the connection",
		parts: []string{"GET /first HTTP/1.1\r\nHost: app.example\r\n\r\n",
			"GET /bare HTTP/1.1\nHost: app.example\nConnection: close\n\n"},
		want: []int{200}, counted: true, within: 2 * time.Second,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(r.statuses) != 2 || r.statuses[1] != 400 && r.statuses[1] != 408 || !r.closed {
				t.Fatalf("answers %v (closed %v), want 200 then 400 (the loops) or 408 (TLS), then the close", r.statuses, r.closed)
			}
		},
	}, {
		// In one read, the loop found the CRLF CRLF of the request behind
		// first, and the server's parser ended the head at the bare LF:
		// served as two requests (a helper's review).
		name: "a head ended by a bare LF, a request behind it in the same read",
		parts: []string{"GET /a HTTP/1.1\r\nHost: app.example\n\n" +
			"GET /smuggled HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"},
		want: []int{400}, within: time.Second,
	}, {
		name:  "a head ended by a bare LF, a body with CRLF CRLF in it",
		parts: []string{post + "Content-Length: 12\r\n\nXXXX\r\n\r\nYYYY"},
		want:  []int{400}, within: time.Second,
	}, {
		// Inside a head that ends in CRLF CRLF, a bare LF ends a line, as
		// for nginx; the target gets the head in CRLF lines.
		name:  "a bare LF inside a head of CRLF lines",
		parts: []string{"GET /inside HTTP/1.1\r\nHost: app.example\nX-A: b\r\nConnection: close\r\n\r\n"},
		want:  []int{200}, counted: true, within: time.Second,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(seen) != 1 || seen[0].host != "app.example" || seen[0].header.Get("X-A") != "b" || seen[0].err != nil {
				t.Fatalf("the target saw %+v, want one request with Host app.example and X-A b", seen)
			}
		},
	}, {
		name:  "space before the header colon",
		parts: []string{post + "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
		want:  []int{400},
	}, {
		// Sent on, a target's own 400 (nginx answers 400 itself). Found by
		// FuzzAppendRequestHead.
		name:  "a % in the path not followed by two hex digits",
		parts: []string{"GET /a%0Xb HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "a fragment in the path, routed by what precedes it",
		parts: []string{"GET /public#/../internal HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "a fragment in an absolute-form target",
		parts: []string{"GET http://app.example#/admin HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "no Host header",
		parts: []string{"GET / HTTP/1.1\r\n\r\n"},
		want:  []int{400},
	}, {
		name:  "HTTP/1.0 without Host is served, with the listener's address as Host",
		parts: []string{"GET /old HTTP/1.0\r\n\r\n"},
		want:  []int{200}, counted: true,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(seen) != 1 || seen[0].host != listenAddr {
				t.Fatalf("the target saw %+v, want one request with Host %s", seen, listenAddr)
			}
		},
	}, {
		// RFC 9112 §3.2.2: the URI's host wins over Host. Routed by one,
		// the request must reach the target with that one only, whether
		// the target reads Host or the URI.
		name:  "absolute-form URI naming another host than Host",
		parts: []string{"GET http://internal.example/admin?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"},
		want:  []int{200}, counted: true,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(seen) != 1 || seen[0].host != "internal.example" || seen[0].path != "/admin" ||
				seen[0].header.Get("X-Forwarded-Host") != "internal.example" || seen[0].uri != "/admin?x=1" {
				t.Fatalf("the target saw %+v, want Host and X-Forwarded-Host internal.example, /admin?x=1 in origin-form", seen)
			}
		},
	}, {
		name:  "upgrade request with a body (the tunnel would send its length without it)",
		parts: []string{"POST /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello"},
		want:  []int{400},
	}, {
		name:  "chunked upgrade request",
		parts: []string{"POST /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		want:  []int{400},
	}, {
		name: "spoofed forwarding headers from an untrusted client",
		parts: []string{"GET /whoami HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 203.0.113.66\r\nX-Forwarded-Proto: https\r\n" +
			"X-Forwarded-Host: bank.example\r\nX-Real-IP: 203.0.113.66\r\nForwarded: for=203.0.113.66;proto=https\r\n" +
			"X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Scheme: https\r\n" +
			"X-Forwarded-Server: bank.example\r\nX_Forwarded_Port: 443\r\nx_forwarded_for: 203.0.113.66\r\nX-Client-IP: 203.0.113.66\r\n" +
			"True-Client-IP: 203.0.113.66\r\nX-Cluster-Client-IP: 203.0.113.66\r\nClient-IP: 203.0.113.66\r\nClient_IP: 203.0.113.66\r\n" +
			"X-Forwarded: for=203.0.113.66\r\nForwarded-For: 203.0.113.66\r\nCF-Connecting-IP: 203.0.113.66\r\n" +
			"Fastly-Client-IP: 203.0.113.66\r\nX-Original-Forwarded-For: 203.0.113.66\r\nX-Originating-IP: 203.0.113.66\r\n" +
			"X-ProxyUser-Ip: 203.0.113.66\r\nX.Forwarded.For: 203.0.113.66\r\nX-Remote-IP: 203.0.113.66\r\nConnection: close\r\n\r\n"},
		want: []int{200}, counted: true,
		check: func(t *testing.T, r rawResult, seen []seenRequest) {
			if len(seen) != 1 {
				t.Fatalf("the target saw %d requests, want 1", len(seen))
			}
			h := seen[0].header
			for k, want := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": proto,
				"X-Forwarded-Host": "app.example", "X-Real-Ip": "", "Forwarded": ""} {
				if got := strings.Join(h.Values(k), ","); got != want {
					t.Errorf("the target saw %s %q, want %q", k, got, want)
				}
			}
			for k, v := range h {
				if k != "X-Forwarded-For" && k != "X-Forwarded-Proto" && k != "X-Forwarded-Host" && slices.Contains(v, "203.0.113.66") ||
					strings.HasPrefix(strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(k)), "x-forwarded-") && v[0] != "127.0.0.1" && v[0] != proto && v[0] != "app.example" {
					t.Errorf("the target saw the client's %s %q", k, v)
				}
			}
		},
	}}
	for _, secure := range []bool{false, true} {
		dial, over := addr, ""
		listenAddr, proto = addr, "http"
		if secure {
			dial, over = "tls://"+saddr, " (TLS)"
			listenAddr, proto = saddr, "https"
		}
		for _, tc := range cases {
			if secure && tc.tlsWant != nil {
				tc.want = tc.tlsWant
			}
			t.Run(tc.name+over, func(t *testing.T) {
				hostileCase(t, c, target, dial, tc)
			})
		}
	}
}

// hostile is a case of TestHostileRequests.
type hostile struct {
	name  string
	parts []string
	// want is the acceptable statuses of the first answer; none means
	// the proxy must close the connection without one. tlsWant, when
	// set, is what a TLS listener answers instead.
	want, tlsWant []int
	// counted: the request reaches the target and counts in its group.
	counted bool
	// within bounds the time until the proxy closes the connection.
	within time.Duration
	check  func(t *testing.T, r rawResult, seen []seenRequest)
}

// hostileCase runs tc against the listener at addr ("tls://" for a TLS
// listener).
func hostileCase(t *testing.T, c *Client, target *recordingTarget, addr string, tc hostile) {
	target.take()
	before, refusedBefore := groupCounts(t, c, "e/web"), refusedCounts(t, c)
	r := rawExchange(t, addr, tc.parts...)
	seen := target.take()
	if len(tc.want) == 0 {
		if len(r.statuses) != 0 || !r.closed {
			t.Fatalf("want the connection closed without an answer, got %v (closed %v)", r.statuses, r.closed)
		}
	} else if len(r.statuses) == 0 || !slices.Contains(tc.want, r.statuses[0]) {
		t.Fatalf("want a status in %v, got %v %q (closed %v)", tc.want, r.statuses, r.bodies, r.closed)
	}
	if !tc.counted && (len(r.statuses) != 1 || !r.closed) && len(tc.want) > 0 {
		t.Errorf("after a refused request the connection must close after one answer: %v closed %v", r.statuses, r.closed)
	}
	if tc.within > 0 && r.after > tc.within {
		t.Errorf("the proxy took %s to give up, want under %s", r.after.Round(time.Millisecond), tc.within)
	}
	for _, s := range seen {
		if s.err == nil && !tc.counted {
			t.Errorf("the target received a complete request %s %q", s.path, s.body)
		}
	}
	time.Sleep(100 * time.Millisecond) // counters are updated after the answer
	after := groupCounts(t, c, "e/web")
	wantDelta := uint64(0)
	if tc.counted {
		wantDelta = 1
	}
	if after.Requests-before.Requests != wantDelta || after.Codes["5xx"] != before.Codes["5xx"] {
		t.Errorf("target group counters moved from %d requests %v to %d %v, want +%d and no 5xx",
			before.Requests, before.Codes, after.Requests, after.Codes, wantDelta)
	}
	// A refusal counts in the listener's refusals by its status (the
	// operator's view of what clients sent), anything else not there.
	refusedAfter := refusedCounts(t, c)
	if len(r.statuses) > 0 {
		want := map[string]uint64{}
		for i, code := range r.statuses {
			if slices.Contains(refusalCodes[:], code) && !(tc.counted && i == 0) {
				want[strconv.Itoa(code)]++
			}
		}
		for code := range merged(refusedBefore, refusedAfter, want) {
			if got := refusedAfter[code] - refusedBefore[code]; got != want[code] {
				t.Errorf("requests refused with %s: +%d, want +%d (before %v, after %v)", code, got, want[code], refusedBefore, refusedAfter)
			}
		}
	}
	if tc.check != nil {
		tc.check(t, r, seen)
	}
}

// TestSteadySlowBodyIsNotTimedOut: body_idle_timeout bounds the wait
// between two parts of a request body, not the time the body takes. A
// Content-Length body sent 10% at a time, a part every 150 ms against a
// 500 ms timeout, got a 408 after 500 ms: the server read the first 8 KiB
// of a body within one deadline before the handler. Small bodies (read
// whole before they are sent on) and streamed ones, on a plain listener's
// server path and on a TLS listener.
func TestSteadySlowBodyIsNotTimedOut(t *testing.T) {
	target := newRecordingTarget(t)
	p := newTestProxy(t, Options{})
	tg := tgOf("e/web", target.Server)
	tg.Health.Path = "/healthz"
	plain, secure := freeAddr(t), freeAddr(t)
	l := oneRouteNamed("e/production", plain, "e/web")
	l.Limits.BodyIdleTimeout = Duration(500 * time.Millisecond)
	tl := oneRouteNamed("e/secure", secure, "e/web")
	tl.Limits = l.Limits
	cert, key, _ := selfSigned(t, t.TempDir(), "a", "app.example")
	tl.TLS = &TLS{CertFile: cert, KeyFile: key}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l, tl}, TargetGroups: []TargetGroup{tg}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/web", "healthy", 1)
	for _, size := range []int{200, 20000} {
		for _, addr := range []string{plain, secure} {
			body := strings.Repeat("b", size)
			var c net.Conn
			var err error
			if addr == secure {
				c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.DialTimeout("tcp", addr, 5*time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, fmt.Sprintf("POST /slow HTTP/1.1\r\nHost: app.example\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size))
			for i := 0; i < size; i += size / 10 {
				time.Sleep(150 * time.Millisecond)
				if _, err := io.WriteString(c, body[i:i+size/10]); err != nil {
					break
				}
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			c.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d bytes to %s, a part every 150 ms: %v %v, want 200", size, addr, resp, err)
			}
			if seen := target.take(); len(seen) != 1 || seen[0].body != body {
				t.Fatalf("%d bytes to %s: the target saw %d requests", size, addr, len(seen))
			}
		}
	}
}

// TestSlowSmallBodyGoesToTheTargetServingWhenItEnds: a small body is read
// before a target is picked, so a request whose body comes slowly while a
// deployment replaces the target goes to the new one: picked first, it
// went to the target removed meanwhile (held in draining for its whole
// delay), and held it in flight while the client sent.
func TestSlowSmallBodyGoesToTheTargetServingWhenItEnds(t *testing.T) {
	old, cur := newRecordingTarget(t), newRecordingTarget(t)
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	l := oneRouteNamed("e/production", addr, "e/web")
	// Room for the Apply and first health check made between two bytes
	// (under -race load they took over 200 ms).
	l.Limits.BodyIdleTimeout = Duration(2 * time.Second)
	l.Limits.BodyMinRate = 1 // a byte every 300 ms: slower than the default pace allows
	apply := func(u *recordingTarget) {
		g := tgOf("e/web", u.Server)
		g.Targets[0].ID = hostOf(u.Server) // a new target, not the old one moved
		g.Health.Path = "/healthz"
		g.DeregistrationDelay = Duration(time.Second)
		if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}}); err != nil {
			t.Fatal(err)
		}
		waitState(t, p, "e/web", "healthy", 1)
	}
	apply(old)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := "0123456789ab"
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: app.example\r\nContent-Length: 12\r\n\r\n")
	for i := range body {
		if i == 2 {
			apply(cur) // the old target drains, for a second
		}
		time.Sleep(300 * time.Millisecond)
		io.WriteString(c, body[i:i+1])
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("got %v %q %v, want 200", resp.StatusCode, b, err)
	}
	if o, n := old.take(), cur.take(); len(o) != 0 || len(n) != 1 || n[0].body != body {
		t.Fatalf("the removed target got %d requests and the serving one %d, want 0 and 1 with the body", len(o), len(n))
	}
}

func groupCounts(t *testing.T, c *Client, group string) stats.GroupStats {
	t.Helper()
	s, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g, ok := s.Group(group)
	if !ok {
		t.Fatalf("no stats for %s: %+v", group, s)
	}
	return g
}

// refusedCounts sums the requests every listener refused, by status.
func refusedCounts(t *testing.T, c *Client) map[string]uint64 {
	t.Helper()
	s, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, l := range s.Listeners {
		for code, n := range l.RequestsRefused {
			out[code] += n
		}
	}
	return out
}

// merged is the set of the keys of ms.
func merged(ms ...map[string]uint64) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

// TestTrustedProxyKeepsForwardingHeaders checks the other side of
// trusted_proxies: a client in the list has its headers kept and extended.
func TestTrustedProxyKeepsForwardingHeaders(t *testing.T) {
	target := newRecordingTarget(t)
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	tg := tgOf("e/web", target.Server)
	tg.Health.Path = "/healthz"
	l := oneRouteNamed("e/production", addr, "e/web")
	l.TrustedProxies = []string{"10.0.0.0/8", "127.0.0.1"}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tg}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/web", "healthy", 1)
	r := rawExchange(t, addr, "GET /whoami HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 203.0.113.66\r\nX-Forwarded-Proto: https\r\n"+
		"X-Forwarded-Host: shop.example\r\nX-Real-IP: 203.0.113.66\r\nForwarded: for=203.0.113.66;proto=https\r\n"+
		"X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /shop\r\nTrue-Client-IP: 203.0.113.66\r\nConnection: close\r\n\r\n")
	seen := target.take()
	if len(r.statuses) != 1 || r.statuses[0] != 200 || len(seen) != 1 {
		t.Fatalf("got %v, target saw %d requests", r.statuses, len(seen))
	}
	for k, want := range map[string]string{"X-Forwarded-For": "203.0.113.66, 127.0.0.1", "X-Forwarded-Proto": "https",
		"X-Forwarded-Host": "shop.example", "X-Real-Ip": "203.0.113.66", "Forwarded": "for=203.0.113.66;proto=https",
		"X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/shop", "True-Client-Ip": "203.0.113.66"} {
		if got := strings.Join(seen[0].header.Values(k), ","); got != want {
			t.Errorf("the target saw %s %q, want %q", k, got, want)
		}
	}
}

// TestBadGatewayNamesTheGroupNotTheTarget: a target that hangs up without
// answering gives a 502 that names the target group, never a target's ID,
// its address or the error, and counts as the group's 5xx.
func TestBadGatewayNamesTheGroupNotTheTarget(t *testing.T) {
	target := connTarget(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err == nil && req.URL.Path == "/" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") // health checks pass
		}
	})
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := TargetGroup{Name: "shop.production/web/blue", Health: fastHealth, Targets: []Target{{ID: "task-7f3a", Addr: target}}}
	g.Health.Interval = Duration(time.Hour)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{g.Name, 1})}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, g.Name, "healthy", 1)
	code, body, _ := get(t, addr, "", "/hangup")
	if code != http.StatusBadGateway || body != "cutover: shop.production/web/blue failed to answer\n" {
		t.Fatalf("got %d %q", code, body)
	}
	if s, _ := p.Stats().Group(g.Name); s.Codes["5xx"] != 1 {
		t.Errorf("a target that hung up counts as the group's 5xx: %+v", s.Codes)
	}
}

// TestClientGoneAfterTheHeadDeadline: a client that hangs up while a slow
// target works is noticed even after the listener's read_header_timeout
// has passed, and the target's request is aborted.
func TestClientGoneAfterTheHeadDeadline(t *testing.T) {
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
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	l := oneRoute(addr, WeightedTarget{"e/u", 1})
	l.Limits.ReadHeaderTimeout = Duration(300 * time.Millisecond)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/u", u)}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/u", "healthy", 1)
	client := &http.Client{Timeout: time.Second}
	if _, err := client.Get("http://" + addr + "/slow"); err == nil {
		t.Fatal("want the client's timeout to end the request")
	}
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the target's request was not aborted when the client went away after the head deadline")
	}
}

func TestValidateListenerEdges(t *testing.T) {
	s := validState()
	l := &s.Listeners[0]
	l.Limits = Limits{ReadHeaderTimeout: Duration(-time.Second), MaxHeaderBytes: 100, TunnelIdleTimeout: Duration(time.Nanosecond), MaxBodyBytes: -1}
	l.TrustedProxies = []string{"10.0.0.0/8", "none"}
	err := s.Validate()
	for _, want := range []string{"limits.read_header_timeout -1s is negative", "limits.max_header_bytes 100 is out of range: give 1024 to 1048576",
		"limits.tunnel_idle_timeout 1ns is out of range: give 1s to 1000h", "limits.max_body_bytes -1 is negative",
		`trusted_proxies: "none" trusts nobody: it cannot be listed with addresses`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	l.TrustedProxies = []string{"10.0.0.300"}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `"10.0.0.300" is neither a CIDR`) {
		t.Errorf("bad IP: %v", err)
	}
	l.Limits, l.TrustedProxies = Limits{}, []string{"192.0.2.7", "2001:db8::/32"}
	if err := s.Validate(); err != nil {
		t.Errorf("good edges refused: %v", err)
	}
	for _, c := range []struct {
		list []string
		ip   string
		want bool
	}{{nil, "127.0.0.1", true}, {nil, "192.0.2.7", false}, {[]string{TrustNone}, "127.0.0.1", false},
		{[]string{"192.0.2.7"}, "192.0.2.7", true}, {[]string{"2001:db8::/32"}, "2001:db8::1", true}, {[]string{"10.0.0.0/8"}, "::ffff:10.1.2.3", true}} {
		trusted, err := parseTrusted(c.list)
		if err != nil {
			t.Fatal(err)
		}
		if got := trusts(trusted, netip.MustParseAddr(c.ip).Unmap()); got != c.want {
			t.Errorf("trusted_proxies %v, client %s: trusted %v, want %v", c.list, c.ip, got, c.want)
		}
	}
}

// TestConnectFailureIsRetriedOnce: with every target of a group gone (still
// healthy until the next check), a request tries a second target once, then
// gets a 502 counted against the group, instead of going round the targets.
func TestConnectFailureIsRetriedOnce(t *testing.T) {
	a, b := httptest.NewServer(http.NotFoundHandler()), httptest.NewServer(http.NotFoundHandler())
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := TargetGroup{Name: "e/g", Health: HealthCheck{Path: "/", Interval: Duration(time.Hour), Timeout: Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 1, SuccessCodes: "200-499"},
		Targets: []Target{{ID: "a", Addr: hostOf(a)}, {ID: "b", Addr: hostOf(b)}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/g", 1})}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/g", "healthy", 2)
	a.Close()
	b.Close()
	done := make(chan int, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		if code != http.StatusBadGateway {
			t.Fatalf("got %d, want 502", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not end: retried without end")
	}
	if s, _ := p.Stats().Group("e/g"); s.Codes["5xx"] != 1 {
		t.Errorf("want one 5xx for the group, have %v", s.Codes)
	}
}

// TestUploadHeldUpByTheTargetIsNotTheClients: body_min_rate counts the
// client's time only. While a target that is slow to take an upload holds
// the proxy's writes, the client is not read, and that wait is not held
// against its pace (before, an 8 MiB upload at full speed got 408 once the
// target had paused 2 s).
func TestUploadHeldUpByTheTargetIsNotTheClients(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			time.Sleep(2 * time.Second) // takes nothing meanwhile
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	t.Cleanup(slow.Close)
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	l := oneRouteNamed("e/production", addr, "e/web")
	l.Limits.BodyIdleTimeout = Duration(500 * time.Millisecond)
	l.Limits.BodyMinRate = 10 << 20 // what an upload on this machine keeps up
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/web", slow)}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/web", "healthy", 1)
	const size = 8 << 20
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Post("http://"+addr+"/up", "application/octet-stream", strings.NewReader(strings.Repeat("u", size)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(size) {
		t.Fatalf("an upload the target was slow to take: %d %q, want 200 %d", resp.StatusCode, b, size)
	}
}

// TestMaxBodyBytesWithRealClients: max_body_bytes as Go's client meets it,
// over HTTP/1.1 and HTTP/2. An upload over it whose length is announced
// gets 413 (its bytes read and dropped, so the client reads the answer and
// not a reset connection); one that streams past it (chunked) gets 413 and
// the target's request is cut; one at the bound is served. The refused
// reach no target whole and count against no group.
func TestMaxBodyBytesWithRealClients(t *testing.T) {
	const limit = 64 << 10
	target := newRecordingTarget(t)
	p := newTestProxy(t, Options{})
	tg := tgOf("e/web", target.Server)
	tg.Health.Path = "/healthz"
	addr := freeAddr(t)
	l := oneRouteNamed("e/production", addr, "e/web")
	l.Limits.MaxBodyBytes = limit
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tg}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/web", "healthy", 1)
	h2p, h2addr, pool := h2Listener(t, func(l *Listener) { l.Limits.MaxBodyBytes = limit })
	h2c := h2Client(h2addr, "app.cutover.test", pool)

	for _, tc := range []struct {
		name    string
		size    int
		chunked bool // the body's length is not announced
		want    int
	}{
		// Without the read and drop, Go's client got "connection reset
		// by peer" for these two, the answer lost.
		{"8 MiB with its length", 8 << 20, false, 413},
		{"8 MiB streamed", 8 << 20, true, 413},
		{"one byte over, with its length", limit + 1, false, 413},
		{"one byte over, streamed", limit + 1, true, 413},
		{"at the bound, with its length", limit, false, 200},
		{"at the bound, streamed", limit, true, 200},
	} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s http2=%v", tc.name, h2), func(t *testing.T) {
				body := strings.Repeat("u", tc.size)
				var r io.Reader = strings.NewReader(body)
				if tc.chunked {
					r = io.MultiReader(r) // no length: Go's client streams it chunked (HTTP/2: DATA frames without content-length)
				}
				group, url, c := "e/web", "http://"+addr+"/up", http.DefaultClient
				stats := p
				if h2 {
					group, url, c, stats = "prod/web", "https://app.cutover.test/up", h2c, h2p
				}
				before, codesBefore := groupRequests(stats, group)
				target.take()
				req, err := http.NewRequest("POST", url, r)
				if err != nil {
					t.Fatal(err)
				}
				res, err := c.Do(req)
				if err != nil {
					t.Fatalf("%v, want a %d answer", err, tc.want)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != tc.want {
					t.Fatalf("%s %q, want %d", res.Status, b, tc.want)
				}
				if tc.want == 413 && !strings.Contains(string(b), "larger than this listener takes (65536 bytes)") {
					t.Errorf("the 413's text %q does not say the bound", b)
				}
				time.Sleep(100 * time.Millisecond) // counters are updated after the answer
				after, codes := groupRequests(stats, group)
				switch {
				case tc.want == 413 && (after != before || codes["4xx"] != codesBefore["4xx"] || codes["5xx"] != codesBefore["5xx"]):
					t.Errorf("the refused upload was counted against the group: %d %v -> %d %v", before, codesBefore, after, codes)
				case tc.want == 200 && after != before+1:
					t.Errorf("the served upload was not counted: %d -> %d", before, after)
				}
				if !h2 {
					for _, s := range target.take() {
						if s.err == nil && (tc.want != 200 || len(s.body) != tc.size) {
							t.Errorf("the target received a whole request of %d bytes", len(s.body))
						}
					}
				}
			})
		}
	}
}

// TestRefusalsAreLoggedWithoutTheRequest: a listener logs a refusal with its
// status, its client and why, in the proxy's words, at most every ten
// seconds (all counted); never the request's bytes, even at debug level: a
// refused request's Authorization stays out of the log (fasthttp's own
// errors quoted the head they failed on). On the server path (a smuggling
// attempt, a head its parser refuses over TLS) and on a loop (a request
// line over the limit), each listener on its own clock.
func TestRefusalsAreLoggedWithoutTheRequest(t *testing.T) {
	logs := &testenv.Buffer{}
	p := newTestProxy(t, Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	target := newRecordingTarget(t)
	a, b, c := freeAddr(t), freeAddr(t), freeAddr(t)
	la, lb, lc := oneRouteNamed("e/production", a, "e/web"), oneRouteNamed("e/test", b, "e/web"), oneRouteNamed("e/secure", c, "e/web")
	cert, key, _ := selfSigned(t, t.TempDir(), "a", "app.example")
	lc.TLS = &TLS{CertFile: cert, KeyFile: key}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{la, lb, lc}, TargetGroups: []TargetGroup{tgOf("e/web", target.Server)}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/web", "healthy", 1)
	smuggle := "POST / HTTP/1.1\r\nHost: app.example\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for range 3 {
		if r := rawExchange(t, a, smuggle); len(r.statuses) != 1 || r.statuses[0] != 400 {
			t.Fatalf("smuggling attempt: %v, want 400", r.statuses)
		}
	}
	long := "GET /" + strings.Repeat("s3cret-token", 4<<10) + " HTTP/1.1\r\nHost: app.example\r\n\r\n"
	if r := rawExchange(t, b, long); len(r.statuses) != 1 || r.statuses[0] != 414 {
		t.Fatalf("long request line: %v, want 414", r.statuses)
	}
	// A head the server's parser refuses (a Content-Length not a number), on
	// TLS: its debug log of the error does not quote the head.
	bad := "POST / HTTP/1.1\r\nHost: app.example\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: 1x\r\n\r\n"
	if r := rawExchange(t, "tls://"+c, bad); len(r.statuses) != 1 || r.statuses[0] != 400 {
		t.Fatalf("a bad field name over TLS: %v, want 400", r.statuses)
	}
	text := logs.String()
	if n := strings.Count(text, "refused a client's request"); n != 3 {
		t.Errorf("%d refusals logged, want 3 (one per listener in ten seconds):\n%s", n, text)
	}
	for _, want := range []string{`listener=e/production status=400 why="the request has both Content-Length and Transfer-Encoding" client=127.0.0.1`,
		`listener=e/test status=414 why="the request target is too long" client=127.0.0.1`} {
		if !strings.Contains(text, want) {
			t.Errorf("the log lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "s3cret") {
		t.Errorf("the request's bytes reached the log:\n%s", text)
	}
	for _, l := range p.Stats().Listeners {
		if want := map[string]uint64{"e/production": 3, "e/test": 1, "e/secure": 1}[l.Listener]; l.RequestsRefused["400"]+l.RequestsRefused["414"] != want {
			t.Errorf("%s refused %v, want %d counted", l.Listener, l.RequestsRefused, want)
		}
	}
}

// A TLS connection's first head is found to end in bare LFs however the
// reads split it, and a head of CRLF lines (with a body of bare LFs after
// it) never is.
func TestFirstHeadBareLFAcrossReads(t *testing.T) {
	for _, tc := range []struct {
		data string
		bare bool
	}{
		{"GET / HTTP/1.1\nHost: a\n\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\n", true},
		{"GET / HTTP/1.1\r\nHost: a\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\n\n\n\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\r\nGET / HTTP/1.1\nHost: a\n\n", false}, // the second head is the server's to wait on
	} {
		for cut := 1; cut < len(tc.data); cut++ {
			for cut2 := cut; cut2 <= len(tc.data); cut2++ {
				c := &alpnConn{}
				got := false
				for _, part := range []string{tc.data[:cut], tc.data[cut:cut2], tc.data[cut2:]} {
					if part != "" && !c.headed && c.bareLFHead([]byte(part)) {
						got = true
						break
					}
				}
				if got != tc.bare {
					t.Fatalf("%q read as %q %q %q: bare LF end %v, want %v", tc.data, tc.data[:cut], tc.data[cut:cut2], tc.data[cut2:], got, tc.bare)
				}
			}
		}
	}
}
