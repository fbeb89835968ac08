package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"
	"time"
)

const haproxyBin = "/usr/sbin/haproxy"

// haproxyConf is HAProxy as a tuned reverse proxy for this workload: two
// threads (as nginx has two workers), keep-alive to the backend, no logs.
var haproxyConf = template.Must(template.New("haproxy.cfg").Parse(`global
    nbthread 2
    maxconn 8192

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend bench
    bind {{.Listen}}
    default_backend backend

backend backend
    server b1 {{.Backend}}
`))

// startHAProxy runs HAProxy in the foreground on a free 127.0.0.1 port in
// front of backend and returns the child and its listen address.
func startHAProxy(ctx context.Context, dir, backend string) (*child, string, error) {
	if _, err := os.Stat(haproxyBin); err != nil {
		return nil, "", fmt.Errorf("haproxy not found: apt-get install -y haproxy")
	}
	hdir := filepath.Join(dir, "haproxy")
	if err := os.MkdirAll(hdir, 0o755); err != nil {
		return nil, "", err
	}
	listen, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(hdir, "haproxy.cfg")
	f, err := os.Create(conf)
	if err != nil {
		return nil, "", err
	}
	err = haproxyConf.Execute(f, map[string]string{"Backend": backend, "Listen": listen})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", err
	}
	// -db: foreground, one process (its threads), stopped by its PID.
	cmd := exec.Command(haproxyBin, "-db", "-f", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	c, err := startChild("haproxy", cmd)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, c, listen, 10*time.Second); err != nil {
		c.stop(5 * time.Second)
		return nil, "", err
	}
	return c, listen, nil
}
