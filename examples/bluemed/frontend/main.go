// Command frontend serves the bluemed single-page app: static files embedded
// in the binary, with index.html for every path that is not a file so the
// app's client-side routes survive a reload.
//
// Environment: PORT (default 80), HOST (listen address, default all
// interfaces). With -healthcheck [PATH] it probes PATH (default /) on
// 127.0.0.1:$PORT and exits 0 or 1, for images without curl.
package main

import (
	"context"
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

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("frontend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	healthcheck := fs.Bool("healthcheck", false, "GET the path given after the flags (default /) on 127.0.0.1:$PORT and exit 0 when healthy, 1 otherwise")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "bluemed frontend: %v\n", err)
		return 1
	}
	port, err := serve.Port(getenv, "80")
	if err != nil {
		return fail(err)
	}
	if *healthcheck {
		path, err := serve.HealthPath(fs.Args(), "/")
		if err != nil {
			fmt.Fprintf(stderr, "bluemed frontend: %v\n", err)
			return 2
		}
		if err := serve.Healthcheck("http://127.0.0.1:"+port+path, 2*time.Second); err != nil {
			return fail(fmt.Errorf("unhealthy: %w", err))
		}
		return 0
	}
	h, err := newHandler(version)
	if err != nil {
		return fail(err)
	}
	host := getenv("HOST")
	ready := func(a net.Addr) {
		_, p, _ := net.SplitHostPort(a.String())
		fmt.Fprintf(stdout, "bluemed frontend %s listening on %s:%s\n", version, host, p)
	}
	if err := serve.Serve(ctx, net.JoinHostPort(host, port), h, serve.Grace, ready); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "bluemed frontend %s stopped\n", version)
	return 0
}
