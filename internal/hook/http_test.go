package hook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
)

// server answers /health with 200 "ok" and X-Revision: abc, /fail with a 500,
// /slow after the test ends (bounded by its own timer), /redirect with a 302 to
// an outside address, and counts the requests it got.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/health":
			w.Header().Set("X-Revision", "abc")
			w.Write([]byte("status: ok\n"))
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("database down\n" + strings.Repeat("x", 500)))
		case "/slow":
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
		case "/redirect":
			http.Redirect(w, r, "http://10.1.2.3/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv, &hits
}

func httpHook(c config.HTTPCheck) config.Hook {
	return config.Hook{HTTP: &c, Timeout: config.Duration(5 * time.Second)}
}

func TestHTTP(t *testing.T) {
	test, _ := server(t)
	prod, _ := server(t)
	env := Env{TestURL: test.URL, ProductionURL: prod.URL}
	cases := []struct {
		name   string
		hook   config.Hook
		ok     bool
		detail string // want, with URL standing for the test server's URL and PROD for production's
	}{
		{
			name:   "pass",
			hook:   httpHook(config.HTTPCheck{Path: "/health", ExpectBody: "ok", ExpectHeaders: map[string]string{"x-revision": "abc"}}),
			ok:     true,
			detail: "GET URL/health → 200",
		},
		{
			name:   "production listener",
			hook:   httpHook(config.HTTPCheck{Path: "/health", Listener: config.ListenerProduction}),
			ok:     true,
			detail: "GET PROD/health → 200",
		},
		{
			name:   "wrong status",
			hook:   httpHook(config.HTTPCheck{Path: "/fail"}),
			detail: "GET URL/fail → 500 (want 200); body: database down " + strings.Repeat("x", 186) + "…",
		},
		{
			name:   "expected status other than 200",
			hook:   httpHook(config.HTTPCheck{Path: "/nope", ExpectStatus: 404}),
			ok:     true,
			detail: "GET URL/nope → 404",
		},
		{
			name:   "missing body",
			hook:   httpHook(config.HTTPCheck{Path: "/health", ExpectBody: "healthy"}),
			detail: `GET URL/health → 200; body does not contain "healthy"; body: status: ok`,
		},
		{
			name: "header mismatch",
			hook: httpHook(config.HTTPCheck{Path: "/health", ExpectHeaders: map[string]string{
				"X-Revision": "def", "X-Color": "*", "Content-Type": "*"}}),
			detail: `GET URL/health → 200; header X-Color missing; header X-Revision is "abc" (want "def"); body: status: ok`,
		},
		{
			name:   "redirect is not followed",
			hook:   httpHook(config.HTTPCheck{Path: "/redirect"}),
			detail: "GET URL/redirect → 302 (want 200); body: <a href=\"http://10.1.2.3/\">Found</a>.",
		},
		{
			name:   "timeout",
			hook:   config.Hook{HTTP: &config.HTTPCheck{Path: "/slow"}, Timeout: config.Duration(300 * time.Millisecond)},
			detail: "GET URL/slow timed out after 300ms",
		},
		{
			name:   "method and name",
			hook:   config.Hook{Name: "smoke", HTTP: &config.HTTPCheck{Path: "/health", Method: "head"}},
			ok:     true,
			detail: "HEAD URL/health → 200",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(context.Background(), config.EventAfterAllowTestTraffic, tc.hook, env)
			want := strings.NewReplacer("URL", test.URL, "PROD", prod.URL).Replace(tc.detail)
			if r.OK != tc.ok || r.Detail != want {
				t.Errorf("Run() = ok %v, detail\n  %s\nwant ok %v, detail\n  %s", r.OK, r.Detail, tc.ok, want)
			}
			if r.Event != config.EventAfterAllowTestTraffic || r.Name != Name(tc.hook) || r.Duration <= 0 {
				t.Errorf("Run() = %+v: wrong event, name or duration", r)
			}
		})
	}
}

func TestHTTPName(t *testing.T) {
	if got := Name(config.Hook{HTTP: &config.HTTPCheck{Path: "/api/health"}}); got != "GET /api/health" {
		t.Errorf("Name() = %q, want %q", got, "GET /api/health")
	}
}

func TestHTTPRefusesNonLoopback(t *testing.T) {
	for _, base := range []string{"http://10.1.2.3:8081", "http://example.com"} {
		r := Run(context.Background(), "test", httpHook(config.HTTPCheck{Path: "/x"}), Env{TestURL: base})
		want := "refusing GET " + base + "/x: hooks send requests only to 127.0.0.1 (check the test listener address)"
		if r.OK || r.Detail != want {
			t.Errorf("Run() = ok %v, %q; want a refusal %q", r.OK, r.Detail, want)
		}
	}
}

func TestHTTPWithoutListener(t *testing.T) {
	r := Run(context.Background(), "test", httpHook(config.HTTPCheck{Path: "/x", Listener: "production"}), Env{TestURL: "http://127.0.0.1:1"})
	if want := "GET /x: the environment has no production listener to send it to"; r.OK || r.Detail != want {
		t.Errorf("Run() = ok %v, %q; want %q", r.OK, r.Detail, want)
	}
}

func TestHTTPConnectionRefusedIsOneAttempt(t *testing.T) {
	srv, hits := server(t)
	url := srv.URL
	srv.Close() // nothing listens there any more
	r := Run(context.Background(), "test", httpHook(config.HTTPCheck{Path: "/health"}), Env{TestURL: url})
	if r.OK || !strings.Contains(r.Detail, "connection refused") || hits.Load() != 0 {
		t.Errorf("Run() = ok %v, %q after %d requests; want a connection refused failure", r.OK, r.Detail, hits.Load())
	}
}
