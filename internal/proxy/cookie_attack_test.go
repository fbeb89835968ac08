package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Attack: a browser logged in to the dashboard at 127.0.0.1:8790 sends its
// session cookie to every port of 127.0.0.1 (RFC 6265 §8.5), so an app the
// proxy serves on 127.0.0.1:8080 (one a branch deployed) received it and
// could read every dashboard page as the browser's user. The proxy now
// drops that cookie, and only it, from what it passes on: on the loops (a
// GET), on the server path (a streamed upload) and over HTTP/2.
func TestAttackDashboardSessionCookieNeverReachesAnApp(t *testing.T) {
	seen := make(chan []string, 4)
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/x") {
			return // a health check
		}
		io.Copy(io.Discard, r.Body)
		seen <- r.Header.Values("Cookie")
	}))
	defer u.Close()
	_, addr := proxyTo(t, u)
	for _, c := range []struct {
		name, cookie string
		body         io.Reader
		want         []string
	}{
		{"alone", SessionCookie + "=SECRET", nil, nil},
		{"among the app's", "app=1; " + SessionCookie + "=SECRET; theme=dark", nil, []string{"app=1; theme=dark"}},
		{"last, no spaces", "app=1;" + SessionCookie + "=SECRET", nil, []string{"app=1"}},
		{"the name as a value", "app=1;theme=dark;  x=" + SessionCookie, nil, []string{"app=1; theme=dark; x=" + SessionCookie}},
		{"no session cookie: as sent", "app=1;theme=dark;  x=y", nil, []string{"app=1;theme=dark;  x=y"}},
		{"a name that only starts so", SessionCookie + "2=keep; " + SessionCookie + "=SECRET", nil, []string{SessionCookie + "2=keep"}},
		{"streamed upload (server path)", "app=1; " + SessionCookie + "=SECRET", strings.NewReader(strings.Repeat("u", 256<<10)), []string{"app=1"}},
	} {
		method := "GET"
		if c.body != nil {
			method = "POST"
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/x", c.body)
		req.Header.Set("Cookie", c.cookie)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		var got []string
		select {
		case got = <-seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the request did not reach the app", c.name)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: the app got Cookie %q, want %q", c.name, got, c.want)
		}
	}

	// HTTP/2: a browser sends its cookies as separate fields (RFC 9113 §8.2.3).
	_, h2addr, pool := h2Listener(t, nil)
	req, _ := http.NewRequest("GET", "https://app.cutover.test/a", nil)
	req.Header.Add("Cookie", "app=1")
	req.Header.Add("Cookie", SessionCookie+"=SECRET")
	res, err := h2Client(h2addr, "app.cutover.test", pool).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || strings.Contains(string(b), "SECRET") || !strings.Contains(string(b), "app=1") {
		t.Fatalf("over %s the app got: %s", res.Proto, b)
	}
}

// The head a target gets never carries the session cookie, whatever the
// client's Cookie fields look like (folded ones too), and carries the
// other cookies as sent.
func TestAppendRequestHeadDropsOnlyTheSessionCookie(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	for _, c := range []struct{ in, want string }{
		{"Cookie: a=1\r\n", "Cookie: a=1\r\n"},
		{"Cookie: " + SessionCookie + "=S\r\n", ""},
		{"cookie: a=1; " + SessionCookie + " = S ; b=2\r\n", "Cookie: a=1; b=2\r\n"},
		{"Cookie: a=1;\r\n " + SessionCookie + "=S\r\n", "Cookie: a=1\r\n"},
		{"Cookie: a=1\r\nCookie: " + SessionCookie + "=S\r\nCookie: b=2\r\n", "Cookie: a=1\r\nCookie: b=2\r\n"},
		{"Cookie: ;;" + SessionCookie + ";;\r\n", ""},
		{"X-Note: " + SessionCookie + "=S\r\n", ""}, // not a cookie: passed on as any field
	} {
		raw := "GET / HTTP/1.1\r\nHost: a\r\n" + c.in + "\r\n"
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		out := string(appendRequestHead(nil, &h, nil, false, ip, false, false))
		var cookies []string
		for _, l := range strings.Split(out, "\r\n") {
			if strings.HasPrefix(strings.ToLower(l), "cookie:") || strings.HasPrefix(l, " ") {
				cookies = append(cookies, l+"\r\n")
			}
		}
		if got := strings.Join(cookies, ""); got != c.want {
			t.Errorf("%q: the target got %q, want %q", c.in, got, c.want)
		}
		if strings.HasPrefix(c.in, "X-Note") != strings.Contains(out, SessionCookie) {
			t.Errorf("%q → %q", c.in, out)
		}
	}
}

// sessionCookieIn reports whether a head's Cookie fields have a pair
// named as the session cookie.
func sessionCookieIn(r *http.Request) bool {
	for _, f := range r.Header.Values("Cookie") {
		for pair := range strings.SplitSeq(f, ";") {
			name, _, _ := strings.Cut(pair, "=")
			if textproto.TrimString(name) == SessionCookie { // as Go's cookie reader trims a name
				return true
			}
		}
	}
	return false
}

// Attack (a helper's note on the drop above): an app answered
// Set-Cookie: cutover_session=..., which the browser stored for the whole
// host, over the dashboard's own session: logged out of the dashboard, or
// into a session the app chose. The proxy drops that field, and only it,
// from answers: on the loops (a small GET) and on the server path (a
// streamed upload's answer).
func TestAttackAppCannotSetTheDashboardSessionCookie(t *testing.T) {
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		w.Header().Add("Set-Cookie", SessionCookie+"=CHOSEN-BY-THE-APP; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "theme="+SessionCookie+"; Path=/")
		io.WriteString(w, "ok")
	}))
	defer u.Close()
	_, addr := proxyTo(t, u)
	for _, body := range []io.Reader{nil, strings.NewReader(strings.Repeat("u", 256<<10))} {
		method := "GET"
		if body != nil {
			method = "POST"
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/x", body)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		got := res.Header.Values("Set-Cookie")
		if res.StatusCode != 200 || len(got) != 2 || got[0] != "app=1; Path=/" || got[1] != "theme="+SessionCookie+"; Path=/" {
			t.Fatalf("%s: the client got %d, Set-Cookie %q: want the app's own two, never %s", method, res.StatusCode, got, SessionCookie)
		}
	}
}
