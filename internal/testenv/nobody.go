package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nobodyServer is a Python HTTP server on 127.0.0.1 that answers every GET
// 200 as a registry's base endpoint does and prints each request's
// Authorization header: what another user's process on this machine sees.
const nobodyServer = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("auth:" + (self.headers.get("Authorization") or ""), flush=True)
        self.send_response(200)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
`

// ServeAsNobody starts an HTTP server on 127.0.0.1 owned by the user nobody
// (uid 65534), standing for another user's process on this machine, and
// returns its port and a function giving the Authorization headers it has
// received so far. It needs root (to start a process as another user) and
// Debian's python3; without root it skips t. The server is stopped, by its PID, when
// t ends.
func ServeAsNobody(t testing.TB) (port int, auths func() []string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	// Debian's, which nobody may run (not one under root's home, as pyenv's).
	const py = "/usr/bin/python3"
	RequireFile(t, py, "python3")
	cmd := exec.Command(py, "-c", nobodyServer)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	first := make(chan string, 1)
	var mu sync.Mutex
	var seen []string
	go func() {
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "auth:"); ok {
				mu.Lock()
				seen = append(seen, a)
				mu.Unlock()
				continue
			}
			select {
			case first <- line:
			default:
			}
		}
	}()
	select {
	case line := <-first:
		if port, err = strconv.Atoi(line); err != nil {
			t.Fatalf("the server started as nobody printed %q, not its port", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server started as nobody did not say its port in 10s")
	}
	return port, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}
