package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// proc is run() started in a goroutine, as a test's stand-in for the process.
type proc struct {
	addr   string // 127.0.0.1:PORT once listening
	cancel context.CancelFunc
	code   chan int
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs the backend on 127.0.0.1 with env (PORT defaults to 0, a free
// port) and waits for its "listening on" line.
func start(t *testing.T, env map[string]string) *proc {
	t.Helper()
	env["HOST"] = "127.0.0.1"
	if _, ok := env["PORT"]; !ok {
		env["PORT"] = "0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &proc{cancel: cancel, code: make(chan int, 1), stderr: &syncBuffer{}}
	go func() {
		p.code <- run(ctx, nil, func(k string) string { return env[k] }, pw, p.stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close()
	})
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		if _, addr, ok := strings.Cut(lines.Text(), " listening on "); ok {
			p.addr = addr
			go io.Copy(io.Discard, pr) // keep later lines from blocking run
			return p
		}
	}
	t.Fatalf("backend did not start; stderr: %s", p.stderr)
	return nil
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-p.code:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("backend did not exit within 20s")
		return -1
	}
}

func TestRunServesAndHealthcheckFlag(t *testing.T) {
	p := start(t, map[string]string{})
	_, port, _ := net.SplitHostPort(p.addr)
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-healthcheck"}, func(k string) string {
		return map[string]string{"PORT": port}[k]
	}, &out, &out); code != 0 {
		t.Fatalf("-healthcheck exit %d against a running backend: %s", code, &out)
	}
	// The path to probe can be named (compose healthchecks do, so that
	// `cutover init` can read it); a path the backend does not serve is unhealthy.
	for args, want := range map[string]int{"/api/health": 0, "/api/no-such-path": 1, "api/health": 2} {
		out.Reset()
		if code := run(context.Background(), []string{"-healthcheck", args}, func(k string) string {
			return map[string]string{"PORT": port}[k]
		}, &out, &out); code != want {
			t.Errorf("-healthcheck %s: exit %d, want %d: %s", args, code, want, &out)
		}
	}
	p.cancel()
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0; stderr: %s", code, p.stderr)
	}
	out.Reset()
	if code := run(context.Background(), []string{"-healthcheck"}, func(k string) string {
		return map[string]string{"PORT": port}[k]
	}, &out, &out); code != 1 || !strings.Contains(out.String(), "unhealthy") {
		t.Fatalf("-healthcheck exit %d against a stopped backend, want 1: %s", code, &out)
	}
}

func TestFaultExitFailsAtStart(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"BLUEMED_FAULT": "exit", "PORT": "3001"}
	code := run(context.Background(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "listen tcp :3001: simulated startup failure") {
		t.Errorf("exit %d, stderr %q", code, &stderr)
	}
}

func TestBadEnvironmentFailsWithOneLine(t *testing.T) {
	for _, env := range []map[string]string{{"BLUEMED_FAULT": "explode"}, {"PORT": "eighty"}} {
		var stderr bytes.Buffer
		code := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, &stderr)
		if code != 1 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("env %v: exit %d, stderr %q; want 1 and one line", env, code, &stderr)
		}
	}
}

func TestFaultPortListensElsewhere(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, free, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	p := start(t, map[string]string{"PORT": "3001", "BLUEMED_FAULT": "port=" + free})
	if p.addr != "127.0.0.1:"+free {
		t.Errorf("listening on %s, want 127.0.0.1:%s", p.addr, free)
	}
}

func TestFaultCrashAfterExits2(t *testing.T) {
	p := start(t, map[string]string{"BLUEMED_FAULT": "crashafter=200ms"})
	if code := p.wait(t); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(p.stderr.String(), "simulated crash") {
		t.Errorf("stderr %q", p.stderr)
	}
}
