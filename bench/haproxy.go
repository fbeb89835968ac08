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
// threads (as nginx has two workers), keep-alive to the backend, no logs,
// and the cutover proxy's forwarding headers (as nginx's, see nginxConf).
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
    http-request del-header X-Forwarded-For
    http-request del-header X-Real-IP
    http-request del-header Forwarded
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    option forwardfor
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
	conf, listen, err := writeProxyConf(dir, "haproxy", "haproxy.cfg", haproxyConf, map[string]string{"Backend": backend})
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

// writeProxyConf renders tmpl into dir/name/file for a proxy in front of the
// backend, on a free 127.0.0.1 port (data gets Dir and Listen), and returns
// the config's path and that address. The directory is 0755: nginx workers
// may run as an unprivileged user and need to enter it.
func writeProxyConf(dir, name, file string, tmpl *template.Template, data map[string]string) (conf, listen string, err error) {
	pdir := filepath.Join(dir, name)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return "", "", err
	}
	if listen, err = freePort(); err != nil {
		return "", "", err
	}
	data["Dir"], data["Listen"] = pdir, listen
	conf = filepath.Join(pdir, file)
	f, err := os.Create(conf)
	if err != nil {
		return "", "", err
	}
	err = tmpl.Execute(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return conf, listen, err
}
