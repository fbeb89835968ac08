package serve

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPort(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	for in, want := range map[string]string{"": "3001", "80": "80", "0": "0", "65535": "65535"} {
		if got, err := Port(env(in), "3001"); err != nil || got != want {
			t.Errorf("PORT=%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"http", "-1", "65536", "+80", "080", " 80"} {
		if _, err := Port(env(in), "3001"); err == nil || !strings.Contains(err.Error(), "PORT=") {
			t.Errorf("PORT=%q: error %v, want one naming PORT", in, err)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if err := Healthcheck(srv.URL, 0); err != nil {
		t.Errorf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := Healthcheck(srv.URL, 0); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: error %v, want one naming the status", err)
	}
}

func TestServeLetsInFlightRequestFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write([]byte("done"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, "127.0.0.1:0", h, 10*time.Second, func(a net.Addr) { addrc <- a.String() })
	}()
	addr := <-addrc
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	cancel() // SIGTERM arrives while the request is in flight
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the in-flight request finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if b := <-got; b != "done" {
		t.Errorf("in-flight request got %q, want done", b)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestServeReportsListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler(), time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %v, want address already in use", err)
	}
}

func TestHealthPath(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{{nil, "/api/health"}, {[]string{"/api/version"}, "/api/version"}, {[]string{"/"}, "/"}} {
		if got, err := HealthPath(c.args, "/api/health"); err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	for _, args := range [][]string{{"api/health"}, {"http://x/"}, {"/a", "/b"}} {
		if _, err := HealthPath(args, "/api/health"); err == nil || !strings.Contains(err.Error(), "-healthcheck") {
			t.Errorf("%q: error %v, want one naming -healthcheck", args, err)
		}
	}
}
