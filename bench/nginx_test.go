package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// TestStaticBackendServesWhatBluemedAnswers proves `-backend static` serves
// the bytes the real backend answers for the path and the health check, as
// JSON, and that a -path climbing with ".." writes nothing outside the
// benchmark's directory.
func TestStaticBackendServesWhatBluemedAnswers(t *testing.T) {
	testenv.RequireFile(t, nginxBin, "nginx-light")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	}))
	defer upstream.Close()
	from := strings.TrimPrefix(upstream.URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, _, err := startStaticBackend(ctx, t.TempDir(), from, "/api/missing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a path the backend does not answer: %v, want an error naming its 404", err)
	}

	parent := t.TempDir()
	dir := filepath.Join(parent, "bench")
	c, addr, err := startStaticBackend(ctx, dir, from, "/../../api/appointments?page=1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop(5 * time.Second)
	for path, want := range map[string]string{"/api/appointments": `{"path":"/../../api/appointments"}`, healthPath: `{"path":"/api/health"}`} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q (%s), want 200 %q as application/json", path, resp.StatusCode, body, resp.Header.Get("Content-Type"), want)
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 || entries[0].Name() != "bench" {
		t.Errorf("the benchmark's parent directory holds %v, want only its own directory (a path with .. wrote outside it)", entries)
	}
	c.stop(5 * time.Second)
	if !c.exited() {
		t.Fatal("the static backend still runs after stop")
	}
}
