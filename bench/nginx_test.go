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

// TestNginxConfigServes proves the generated config is valid and proxies to
// the upstream, and that stop leaves no nginx behind.
func TestNginxConfigServes(t *testing.T) {
	testenv.RequireFile(t, nginxBin, "nginx-light")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from upstream "+r.URL.Path)
	}))
	defer upstream.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, addr, err := startNginx(ctx, t.TempDir(), strings.TrimPrefix(upstream.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop(5 * time.Second)
	for range 3 {
		resp, err := http.Get("http://" + addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello from upstream /x" {
			t.Fatalf("GET via nginx: %d %q", resp.StatusCode, body)
		}
	}
	c.stop(5 * time.Second)
	if !c.exited() {
		t.Fatal("nginx still running after stop")
	}
}
