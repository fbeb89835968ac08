// Command backend is the bluemed API: a small JSON service for a medical
// booking app, the backend of the example monorepo that cutover deploys.
//
// Environment: PORT (default 3001), HOST (listen address, default all
// interfaces), CORS_ORIGIN (default http://localhost:3000), and BLUEMED_FAULT
// to misbehave on purpose (see fault.go). With -healthcheck [PATH] it probes
// PATH (default /api/health) on 127.0.0.1:$PORT and exits 0 or 1, for images without curl.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"bluemed/internal/serve"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errCrash is returned when the crashafter fault fires.
var errCrash = errors.New("simulated crash")

// run is main without the process: it returns the exit code. When the
// crashafter fault fires it returns 2 at once, leaving requests in flight, as
// a real crash would.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	healthcheck := fs.Bool("healthcheck", false, "GET the path given after the flags (default /api/health) on 127.0.0.1:$PORT and exit 0 when healthy, 1 otherwise")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "bluemed backend: %v\n", err)
		return 1
	}
	port, err := serve.Port(getenv, "3001")
	if err != nil {
		return fail(err)
	}
	if *healthcheck {
		path, err := serve.HealthPath(fs.Args(), "/api/health")
		if err != nil {
			fmt.Fprintf(stderr, "bluemed backend: %v\n", err)
			return 2
		}
		if err := serve.Healthcheck("http://127.0.0.1:"+port+path, 2*time.Second); err != nil {
			return fail(fmt.Errorf("unhealthy: %w", err))
		}
		return 0
	}
	f, err := parseFault(getenv(FaultEnv))
	if err != nil {
		return fail(err)
	}
	host := getenv("HOST")
	switch f.kind {
	case faultExit:
		return fail(fmt.Errorf("listen tcp %s:%s: simulated startup failure", host, port))
	case faultPort:
		fmt.Fprintf(stdout, "bluemed backend: %s=port=%s: ignoring PORT=%s\n", FaultEnv, f.port, port)
		port = f.port
	}
	corsOrigin := getenv("CORS_ORIGIN")
	if corsOrigin == "" {
		corsOrigin = "http://localhost:3000"
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if f.kind == faultCrashAfter {
		t := time.AfterFunc(f.delay, func() { cancel(errCrash) })
		defer t.Stop()
	}
	ready := func(a net.Addr) {
		_, p, _ := net.SplitHostPort(a.String())
		fmt.Fprintf(stdout, "bluemed backend %s listening on %s:%s\n", version, host, p)
	}
	done := make(chan error, 1)
	go func() {
		done <- serve.Serve(ctx, net.JoinHostPort(host, port), newHandler(version, corsOrigin, f), serve.Grace, ready)
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		if context.Cause(ctx) == errCrash {
			fmt.Fprintf(stderr, "bluemed backend: %s=%s: simulated crash, exiting with code 2\n", FaultEnv, getenv(FaultEnv))
			return 2
		}
		err = <-done
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "bluemed backend %s stopped\n", version)
	return 0
}
