package proxy

import (
	"net/http"
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
