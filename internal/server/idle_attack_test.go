package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// Anyone who reaches the daemon may open a connection and ask for
// /v1/health (public); the server then waited for the connection's next
// request for ever (no IdleTimeout, and ReadHeaderTimeout counts only from
// a request's first byte), so anonymous clients could hold as many
// sockets and goroutines as they liked, until the daemon ran out of file
// descriptors (webhooks, the store and commands then fail). An idle
// connection is closed after idleTimeout.
func TestAttackAnonymousIdleConnectionsAreKeptForever(t *testing.T) {
	s, _ := newServer(t)
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 300 * time.Millisecond
	start(t, s)
	conn, err := net.Dial("tcp", s.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/health HTTP/1.1\r\nHost: %s\r\n\r\n", s.Address())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("an idle anonymous connection is still open 3s after its answer (idle timeout 300ms)")
		}
		t.Fatalf("after the answer: %v, want the server to close the connection", err)
	}
}
