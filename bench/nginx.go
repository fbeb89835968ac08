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

const nginxBin = "/usr/sbin/nginx"

// nginxPrelude opens every nginx config the benchmark writes: in the
// foreground, its files in the config's directory, no access log, no end to
// a keep-alive connection after a number of requests. With .User set, the
// workers run as that user.
const nginxPrelude = `daemon off;
master_process on;
{{if .User}}user {{.User}};
{{end}}worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
`

// nginxConf is tuned the way a production reverse proxy would be for this
// workload: keep-alive to the upstream, no access log. The upstream's idle
// cache (per worker) holds as many connections as the most the benchmark
// opens (1024): with fewer, at 256 client connections nginx would close and
// reopen a backend connection for about one request in six, a handicap the
// cutover proxy (512 idle per target) does not have. Neither side ends a
// keep-alive connection after a number of requests (nginx's default: 1000).
//
// With Forwarding set, nginx does the header work the cutover proxy does for
// every request (its default, `trusted_proxies` empty): the client's Host
// passed on, X-Forwarded-For set to the client's address (a client's own
// replaced), X-Forwarded-Proto and X-Forwarded-Host added, a client's
// X-Real-IP and Forwarded removed. That is the comparison the goal is
// judged on: the same work for proxy and backend (which parses three more
// fields). Without it ("nginx-bare", nginx's defaults: Host set to the
// upstream's name, no forwarding fields) nginx is measured for reference.
var nginxConf = template.Must(template.New("nginx.conf").Parse(nginxPrelude + `
    upstream bluemed {
        server {{.Backend}};
        keepalive 1024;
        keepalive_requests 1000000;
    }

    server {
        listen {{.Listen}};
        location / {
            proxy_pass http://bluemed;
            proxy_http_version 1.1;
            proxy_set_header Connection "";{{if .Forwarding}}
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Real-IP "";
            proxy_set_header Forwarded "";{{end}}
        }
    }
}
`))

// startNginx writes a config into dir/name and runs nginx in the foreground
// on a free 127.0.0.1 port in front of backend, with the cutover proxy's
// forwarding headers or without (see nginxConf). It returns the child and
// its listen address.
func startNginx(ctx context.Context, dir, name, backend string, forwarding bool) (*child, string, error) {
	data := map[string]string{"Backend": backend}
	if forwarding {
		data["Forwarding"] = "yes"
	}
	conf, listen, err := writeProxyConf(dir, name, "nginx.conf", nginxConf, data)
	if err != nil {
		return nil, "", err
	}
	return runNginx(ctx, conf, listen)
}

// runNginx runs nginx in the foreground with conf, and waits until it
// listens on listen.
func runNginx(ctx context.Context, conf, listen string) (*child, string, error) {
	if _, err := os.Stat(nginxBin); err != nil {
		return nil, "", fmt.Errorf("nginx not found: apt-get install nginx-light")
	}
	ndir := filepath.Dir(conf)
	// -e: the error log before the config is read, so nginx never touches /var/log.
	cmd := exec.Command(nginxBin, "-p", ndir, "-c", conf, "-e", filepath.Join(ndir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	c, err := startChild("nginx", cmd)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, c, listen, 10*time.Second); err != nil {
		c.stop(5 * time.Second)
		log, _ := os.ReadFile(filepath.Join(ndir, "error.log"))
		return nil, "", fmt.Errorf("%v\nnginx error log:\n%s", err, log)
	}
	return c, listen, nil
}
