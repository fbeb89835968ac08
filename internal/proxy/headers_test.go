package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"testing"
)

// TestResponseHeadersPassThrough: every response header line of the target
// reaches the client, repeated ones (Set-Cookie for one name and two paths,
// Vary, Link) included, in order.
func TestResponseHeadersPassThrough(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Set-Cookie"] = []string{"sid=a; Path=/", "sid=b; Path=/admin", "theme=dark"}
		h["Vary"] = []string{"Origin", "Accept-Encoding"}
		h["Link"] = []string{"</a.css>; rel=preload", "</b.js>; rel=preload"}
		h["X-Lower-Case"] = []string{"kept"}
		w.WriteHeader(http.StatusCreated)
	})
	_, addr := proxyTo(t, u)
	resp, err := http.Get("http://" + addr + "/h")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, want := range map[string][]string{
		"Set-Cookie":   {"sid=a; Path=/", "sid=b; Path=/admin", "theme=dark"},
		"Vary":         {"Origin", "Accept-Encoding"},
		"Link":         {"</a.css>; rel=preload", "</b.js>; rel=preload"},
		"X-Lower-Case": {"kept"},
	} {
		if got := resp.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
}

// TestEarlyHintsReachTheClient: a target's 103 Early Hints answer is relayed
// before the final one.
func TestEarlyHintsReachTheClient(t *testing.T) {
	u, _ := countingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" {
			return
		}
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "page")
	})
	_, addr := proxyTo(t, u)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "http://"+addr+"/page", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "page" {
		t.Fatalf("final answer %d %q", resp.StatusCode, b)
	}
	if !slices.Equal(hints, []string{"103 </app.css>; rel=preload; as=style"}) {
		t.Fatalf("interim answers %q, want the 103 with its Link", hints)
	}
}
