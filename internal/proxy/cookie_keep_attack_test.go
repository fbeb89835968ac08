package proxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// Attack (review of the session cookie's drop): the drop must take the
// session pair and nothing else, but a request that carries the session
// cookie had the app's own cookies changed or lost on the way:
//   - bytes.TrimSpace trims Unicode spaces too, so an app's cookie whose
//     value ends in U+00A0, U+0085 or U+3000 (browsers send UTF-8 values
//     as set) lost those bytes;
//   - a folded Cookie field (obs-fold, which the proxy otherwise passes on
//     unfolded) lost every continuation line after a first line that held
//     the session pair, and a whole continuation line that held it, the
//     app's pairs on those lines with it.
//
// The app must get exactly the pairs the client sent, less the session.
func TestAttackSessionCookieDropKeepsTheAppsCookiesAsSent(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	for _, c := range []struct {
		name, in string
		want     map[string]string // the app's cookies as Go's server reads them, or raw values
	}{
		{"a value ending in a no-break space", "Cookie: " + SessionCookie + "=S; name=caf\u00e9\u00a0\r\n", map[string]string{"name": "caf\u00e9\u00a0"}},
		{"a value ending in an ideographic space", "Cookie: a=\u6771\u4eac\u3000; " + SessionCookie + "=S\r\n", map[string]string{"a": "\u6771\u4eac\u3000"}},
		{"a folded field, session first", "Cookie: " + SessionCookie + "=S;\r\n app=1; theme=dark\r\n", map[string]string{"app": "1", "theme": "dark"}},
		{"a folded field, session on the continuation", "Cookie: app=1;\r\n theme=dark; " + SessionCookie + "=S; lang=fr\r\n", map[string]string{"app": "1", "theme": "dark", "lang": "fr"}},
	} {
		raw := "GET / HTTP/1.1\r\nHost: a\r\n" + c.in + "\r\n"
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if refused(&h) {
			t.Fatalf("%s: refused", c.name)
		}
		out := appendRequestHead(nil, &h, nil, false, ip, false, false)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(out))))
		if err != nil {
			t.Fatalf("%s: %q: %v", c.name, out, err)
		}
		got := rawCookies(req)
		if _, ok := got[SessionCookie]; ok {
			t.Fatalf("%s: the session went on: %q", c.name, out)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: the app's cookie %s = %q, want %q as sent (%q → %q)", c.name, k, got[k], v, c.in, out)
			}
		}
	}
}

// The session cookie's drop came before the Connection check: a Cookie
// field the client lists in Connection (hop-by-hop, RFC 9110 §7.6.1; "fields
// the client lists in Connection are removed, but never Host") went on to
// the app, as it did not before the drop.
func TestAttackCookieListedInConnectionStillGoes(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	raw := "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Cookie\r\nCookie: a=1; " + SessionCookie + "=S\r\n\r\n"
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	out := string(appendRequestHead(nil, &h, nil, false, ip, false, false))
	if strings.Contains(strings.ToLower(out), "\r\ncookie:") {
		t.Fatalf("a Cookie field listed in Connection went on: %q", out)
	}
}

// rawCookies reads r's Cookie fields as an app that takes any bytes in a
// value does (PHP, Node's cookie package): split at ';', the name at '='.
func rawCookies(r *http.Request) map[string]string {
	m := map[string]string{}
	for _, f := range r.Header.Values("Cookie") {
		for pair := range strings.SplitSeq(f, ";") {
			name, value, _ := strings.Cut(pair, "=")
			m[strings.Trim(name, " \t")] = strings.Trim(value, " \t")
		}
	}
	return m
}
