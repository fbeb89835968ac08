package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzAppendRequestHead: whatever head a client sends that fasthttp's
// parser accepts and refuseFraming lets through, the head a target gets
// (appendRequestHead, from an untrusted client) is one well-formed
// HTTP/1.1 head: Go's server reads it, with the client's method, at most
// one framing field matching the parser's length, every field name a
// token, and no forwarding or client-address field but the proxy's own.
func FuzzAppendRequestHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX_Forwarded_Port: 1\r\nClient-IP: 1.2.3.4\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-A\r\nX-A: 1\r\nContent_Length: 9\r\n\r\n",
		"GET http://b/x?y HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; cutover_session=S\r\nCookie: cutover_session=T;b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nCookie: cutover_session=S;\r\n a=1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	ip := netip.MustParseAddr("192.0.2.7")
	f.Fuzz(func(t *testing.T, raw []byte) {
		end := bytes.Index(raw, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		raw = raw[:end+4]
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil || refused(&h) {
			return
		}
		out := appendRequestHead(nil, &h, nil, false, ip, false, false)
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("the target cannot read the head made of %q:\n%q\n%v", raw, out, err)
		}
		if req.Method != string(h.Method()) {
			t.Fatalf("method %q, the client's %q (%q → %q)", req.Method, h.Method(), raw, out)
		}
		cl := h.ContentLength()
		switch {
		case cl == -1 && (len(req.TransferEncoding) != 1 || req.Header.Get("Content-Length") != ""):
			t.Fatalf("a chunked request's framing: %q → %q", raw, out)
		case cl > 0 && req.ContentLength != int64(cl):
			t.Fatalf("length %d, the parser's %d: %q → %q", req.ContentLength, cl, raw, out)
		case cl <= 0 && cl != -1 && (req.ContentLength > 0 || len(req.TransferEncoding) > 0):
			t.Fatalf("a body the client did not frame: %q → %q", raw, out)
		}
		lower := strings.ToLower(string(out[:bytes.Index(out, []byte("\r\n\r\n"))+2]))
		if n := strings.Count(lower, "\r\ncontent-length:") + strings.Count(lower, "\r\ntransfer-encoding:"); n > 1 {
			t.Fatalf("%d framing fields: %q → %q", n, raw, out)
		}
		for k, v := range req.Header {
			name := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(k))
			own := k == "X-Forwarded-For" || k == "X-Forwarded-Proto" || k == "X-Forwarded-Host" || k == "Content-Length"
			if !own && (strings.HasPrefix(name, "x-forwarded-") || slices.Contains(clientAddressFields, name) || name == "forwarded" ||
				name == "x-real-ip" || name == "content-length" || name == "transfer-encoding" || name == "connection") {
				t.Fatalf("%s %q went on from an untrusted client: %q → %q", k, v, raw, out)
			}
			for _, c := range []byte(k) {
				if !tchar[c] {
					t.Fatalf("field name %q: %q → %q", k, raw, out)
				}
			}
		}
		if sessionCookieIn(req) {
			t.Fatalf("the dashboard's session cookie went on: %q → %q", raw, out)
		}
		if in, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw))); err == nil {
			// The app's own cookies go on as the client sent them: the
			// session's drop takes that pair and nothing else.
			if sent, got := appCookies(in), appCookies(req); !slices.Equal(sent, got) {
				t.Fatalf("the app's cookies %q, the client's %q: %q → %q", got, sent, raw, out)
			}
		}
		if got := req.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != ip.String() {
			t.Fatalf("X-Forwarded-For %q, want the proxy's %s: %q → %q", got, ip, raw, out)
		}
	})
}

// appCookies lists the pairs of r's Cookie fields but the session's, each
// with its runs of SP and HTAB as one space, as an app that takes any bytes
// reads them.
func appCookies(r *http.Request) []string {
	var pairs []string
	for _, f := range r.Header.Values("Cookie") {
		for pair := range strings.SplitSeq(f, ";") {
			pair = strings.Trim(strings.ReplaceAll(pair, "\t", " "), " ")
			for strings.Contains(pair, "  ") {
				pair = strings.ReplaceAll(pair, "  ", " ")
			}
			name, _, _ := strings.Cut(pair, "=")
			if pair != "" && strings.Trim(name, " \t") != SessionCookie {
				pairs = append(pairs, pair)
			}
		}
	}
	return pairs
}
