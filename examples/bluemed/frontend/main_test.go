package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestRunServesHealthcheckAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	env := map[string]string{"HOST": "127.0.0.1", "PORT": "0"}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, nil, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var addr string
	for addr == "" && lines.Scan() {
		_, addr, _ = strings.Cut(lines.Text(), " listening on ")
	}
	if addr == "" {
		t.Fatal("frontend did not print its listening line")
	}
	go io.Copy(io.Discard, pr)
	_, port, _ := net.SplitHostPort(addr)
	healthcheck := func() (int, string) {
		var out bytes.Buffer
		c := run(context.Background(), []string{"-healthcheck"}, func(k string) string {
			return map[string]string{"PORT": port}[k]
		}, &out, &out)
		return c, out.String()
	}
	if c, out := healthcheck(); c != 0 {
		t.Fatalf("-healthcheck exit %d against a running frontend: %s", c, out)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after stop, want 0", c)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("frontend did not stop within 20s")
	}
	if c, _ := healthcheck(); c != 1 {
		t.Fatalf("-healthcheck exit %d against a stopped frontend, want 1", c)
	}
}
