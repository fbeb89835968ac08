package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// A proxy started with a supervisor's environment that does not hold what
// it says (the channel is a pipe, one "listening socket" listens on another
// port, another is a plain file) serves every listener on a socket of its
// own, with a warning for each, and does not panic or serve the wrong port.
func TestHandoverWithWrongDescriptorsListensAfresh(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	wrong, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	wf, err := wrong.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	plain, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	const base = 700 // descriptors base, base+1, base+2 as a supervisor would pass 3, 4, 5
	for i := range 3 {
		if _, err := unix.FcntlInt(uintptr(base+i), unix.F_GETFD, 0); err != unix.EBADF {
			t.Fatalf("descriptor %d is in use (%v): pick another base", base+i, err)
		}
	}
	for i, f := range []*os.File{w, wf, plain} {
		if err := unix.Dup2(int(f.Fd()), base+i); err != nil {
			t.Fatal(err)
		}
	}
	a, b := freeAddr(t), freeAddr(t)
	t.Setenv(keeperFDEnv, "700")
	t.Setenv(heldEnv, `["`+a+`","`+b+`"]`)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	h := takeHandover(log)
	if os.Getenv(keeperFDEnv) != "" || os.Getenv(heldEnv) != "" {
		t.Error("the handover environment is left for what the proxy starts")
	}
	if h.conn != nil {
		t.Error("a pipe was taken for the supervisor's channel")
	}
	p := newTestProxy(t, Options{Logger: log})
	p.handover = h
	u := upstream(t, "web")
	err = p.Apply(context.Background(), State{
		Listeners:    []Listener{oneRouteNamed("e/a", a, "e/web"), oneRouteNamed("e/b", b, "e/web")},
		TargetGroups: []TargetGroup{tgOf("e/web", u)},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/web", "healthy", 1)
	for _, addr := range []string{a, b} {
		if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "web" {
			t.Fatalf("%s: %d %q", addr, code, body)
		}
	}
	out := logs.String()
	for _, want := range []string{"the supervisor channel is not a unix socket", `opening a new one" addr=` + a + ` err="it is bound to`, `opening a new one" addr=` + b + ` err=`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// lockedBuffer is a log's buffer, written by the proxy's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
