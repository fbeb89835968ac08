// Package serve holds what both bluemed services need around their handlers:
// serving with a graceful shutdown so a deployment never cuts a request in
// half, and the -healthcheck probe that stands in for curl in images built
// FROM scratch.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Grace is how long a stopping service waits for in-flight requests. It stays
// below Docker's default stop timeout (10s) so the engine never has to SIGKILL.
const Grace = 8 * time.Second

// Serve listens on addr, reports the bound address to ready (which may be
// nil), and serves h until ctx ends. It then stops accepting connections and
// waits up to grace for in-flight requests before returning.
func Serve(ctx context.Context, addr string, h http.Handler, grace time.Duration, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("graceful shutdown did not finish within %s: %w", grace, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Healthcheck GETs url and returns nil when the answer is 2xx.
func Healthcheck(url string, timeout time.Duration) error {
	// One probe per process: a kept-alive connection would only linger.
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s answered %s", url, resp.Status)
	}
	return nil
}

// Port returns the value of the environment variable PORT as read by getenv,
// or def when it is empty, after checking that it is a TCP port number
// (0 asks the kernel for a free port, which tests and the benchmark use).
func Port(getenv func(string) string, def string) (string, error) {
	p := getenv("PORT")
	if p == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != p {
		return "", fmt.Errorf("PORT=%q is not a TCP port: set PORT to a number from 1 to 65535 (0 for any free port)", p)
	}
	return p, nil
}

// HealthPath returns the path that -healthcheck probes: the first argument
// after the flags when there is one (so a compose healthcheck can name it:
// ["CMD", "/backend", "-healthcheck", "/api/health"]), else def.
func HealthPath(args []string, def string) (string, error) {
	switch {
	case len(args) == 0:
		return def, nil
	case len(args) > 1:
		return "", fmt.Errorf("-healthcheck takes at most one path, got %q", args)
	case !strings.HasPrefix(args[0], "/"):
		return "", fmt.Errorf("-healthcheck %q: the path must start with / (for example %s)", args[0], def)
	}
	return args[0], nil
}
