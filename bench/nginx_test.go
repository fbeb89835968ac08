package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestProxyConfigsServe proves the generated nginx and HAProxy configs are
// valid and proxy to the upstream, that nginx and HAProxy send what the
// cutover proxy sends by default (the client's Host, X-Forwarded-For set to
// the client's address whatever the client claimed, X-Forwarded-Proto and
// -Host, no client X-Real-IP or Forwarded) while nginx-bare sends none of
// it, and that stop leaves no process behind.
func TestProxyConfigsServe(t *testing.T) {
	testenv.RequireFile(t, nginxBin, "nginx-light")
	testenv.RequireFile(t, haproxyBin, "haproxy")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join([]string{r.URL.Path, r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Real-IP"), r.Header.Get("Forwarded")}, "|"))
	}))
	defer upstream.Close()
	backend := strings.TrimPrefix(upstream.URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	starts := map[string]func() (*child, string, error){
		"nginx":      func() (*child, string, error) { return startNginx(ctx, t.TempDir(), "nginx", backend, true) },
		"nginx-bare": func() (*child, string, error) { return startNginx(ctx, t.TempDir(), "nginx-bare", backend, false) },
		"haproxy":    func() (*child, string, error) { return startHAProxy(ctx, t.TempDir(), backend) },
	}
	for name, start := range starts {
		c, addr, err := start()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := "/x|" + addr + "|127.0.0.1|http|" + addr + "||"
		if name == "nginx-bare" {
			// nginx's defaults: the upstream's name as Host, the client's
			// fields passed on as they came, nothing added.
			want = "/x|bluemed|10.9.9.9|||spoofed|for=10.9.9.9"
		}
		for range 3 {
			req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
			req.Header.Set("X-Forwarded-For", "10.9.9.9")
			req.Header.Set("X-Real-IP", "spoofed")
			req.Header.Set("Forwarded", "for=10.9.9.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("GET via %s: %d %q, want %q (path|Host|X-Forwarded-For|-Proto|-Host|X-Real-IP|Forwarded)", name, resp.StatusCode, body, want)
			}
		}
		c.stop(5 * time.Second)
		if !c.exited() {
			t.Fatalf("%s still running after stop", name)
		}
	}
}
