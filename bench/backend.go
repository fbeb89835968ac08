package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	pathpkg "path"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// The backends the proxies can be measured in front of (-backend).
const (
	backendBluemed = "bluemed"
	backendStatic  = "static"
)

// backendLabels name them in the report.
var backendLabels = map[string]string{
	backendBluemed: "bluemed's Go server",
	backendStatic:  "nginx serving bluemed's answer as a static file",
}

// startBackend builds the bluemed backend and runs it on a free 127.0.0.1
// port, without Docker: the benchmark measures the proxy, not Docker's
// userland proxy. It returns the child and its address.
func startBackend(ctx context.Context, moduleDir, dir string) (*child, string, error) {
	// The example is a module of its own: build inside it.
	bin, err := goBuild(ctx, filepath.Join(moduleDir, "examples", "bluemed"), "./backend", dir, "bluemed-backend")
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0", "BLUEMED_FAULT=")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	c, err := startChild("bluemed backend", cmd)
	if err != nil {
		return nil, "", err
	}
	addr, err := scanFor(stdout, " listening on ", 10*time.Second)
	if err != nil {
		c.stop(5 * time.Second)
		return nil, "", err
	}
	return c, strings.TrimSpace(addr), nil
}

// staticConf is nginx serving files, as the backend of `-backend static`:
// a backend that answers in a few microseconds of CPU, so that neither it
// nor its scheduler sets the latencies, and the figures are the proxies'
// own. bluemed's Go server, the default backend, is saturated by this load
// on two CPUs (its p99 alone is 12-17 ms at 32 connections): its queueing
// grows steeply with the requests/s a proxy passes it, which is part of
// every proxy's p99 against it (see bench/RESULTS.md).
//
// Its workers run as the benchmark's own user (nginx would otherwise drop
// a root master's workers to nobody, who cannot read the benchmark's
// private directory).
var staticConf = template.Must(template.New("nginx.conf").Parse(nginxPrelude + `
    server_tokens off;

    server {
        listen {{.Listen}};
        root {{.Root}};
        default_type application/json;
        etag off;
    }
}
`))

// startStaticBackend serves, with nginx on a free 127.0.0.1 port, the
// bytes bluemed (at from) answers for path and for the health check's
// path, and returns the child and its address.
func startStaticBackend(ctx context.Context, dir, from, path string) (*child, string, error) {
	root := filepath.Join(dir, "static-www")
	for _, p := range []string{path, healthPath} {
		u, err := url.Parse(p)
		if err != nil {
			return nil, "", fmt.Errorf("-path %q: %v", p, err)
		}
		body, err := fetch(ctx, "http://"+from+p)
		if err != nil {
			return nil, "", fmt.Errorf("reading what the static backend serves: %w", err)
		}
		// Clean of a rooted path keeps it under root ("/../x" is "/x").
		file := filepath.Join(root, filepath.FromSlash(pathpkg.Clean("/"+u.Path)))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(file, body, 0o644); err != nil {
			return nil, "", err
		}
	}
	me, err := user.Current()
	if err != nil {
		return nil, "", err
	}
	conf, listen, err := writeProxyConf(dir, "static-backend", "nginx.conf", staticConf, map[string]string{"Root": root, "User": me.Username})
	if err != nil {
		return nil, "", err
	}
	return runNginx(ctx, conf, listen)
}

// fetch GETs url and returns its body; anything but 200 is an error.
func fetch(ctx context.Context, url string) ([]byte, error) {
	// A local bluemed that has just answered its health check answers in
	// milliseconds: one that does not within 10 s is stuck.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}
