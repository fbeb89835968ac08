package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// rawPair returns a rawConn and the real TCP connection at its other end,
// on 127.0.0.1.
func rawPair(t *testing.T) (net.Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	rc := newRawConn(c, nil)
	if _, ok := rc.(*rawConn); !ok {
		t.Fatalf("newRawConn(%T) = %T, want *rawConn", c, rc)
	}
	t.Cleanup(func() { rc.Close(); peer.Close() })
	return rc, peer.(*net.TCPConn)
}

// TestRawConnWritesPastAFullSocketBuffer: a write far larger than the
// socket buffers waits for the reader (EAGAIN, then the netpoller) and
// delivers every byte in order.
func TestRawConnWritesPastAFullSocketBuffer(t *testing.T) {
	c, peer := rawPair(t)
	want := make([]byte, 8<<20)
	rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 1000) // a slow reader: small reads
		for b.Len() < len(want) {
			n, err := peer.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	n, err := c.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the reader got %d bytes, not the %d written", len(b), len(want))
	}
	// And back: reads see the bytes in order, then EOF when the peer closes.
	go func() { peer.Write(want[:100000]); peer.CloseWrite() }()
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, want[:100000]) {
		t.Fatalf("ReadAll = %d bytes, %v; want 100000 and EOF", len(back), err)
	}
}

// TestRawConnDeadlineCloseAndReset: a read past its deadline fails as a
// timeout, Close ends a read parked on the netpoller, and a reset reads as
// ECONNRESET, as with net.TCPConn.
func TestRawConnDeadlineCloseAndReset(t *testing.T) {
	c, _ := rawPair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read ended by Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a parked read")
	}

	c, peer := rawPair(t)
	peer.SetLinger(0) // close sends a reset
	peer.Close()
	var err error
	for range 100 { // the reset may take a moment to arrive
		if _, err = c.Read(make([]byte, 10)); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after a reset: %v, want ECONNRESET", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write after a reset succeeded")
	}
}

// TestRawConnTunnel: io.Copy between two wrapped connections (as an
// upgraded connection's tunnel does) carries every byte.
func TestRawConnTunnel(t *testing.T) {
	a, aPeer := rawPair(t)
	b, bPeer := rawPair(t)
	want := make([]byte, 1<<20)
	rand.Read(want)
	go func() { aPeer.Write(want); aPeer.CloseWrite() }()
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(b, a)
		b.(*rawConn).CloseWrite()
		copied <- err
	}()
	got, err := io.ReadAll(bPeer)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("through the tunnel: %d bytes, %v; want the %d sent", len(got), err, len(want))
	}
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
}

// nothingArrives fails the test if peer can read a byte within 100ms.
func nothingArrives(t *testing.T, peer net.Conn, what string) {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	defer peer.SetReadDeadline(time.Time{})
	if n, err := peer.Read(make([]byte, 1)); n > 0 || !isTimeout(err) {
		t.Fatalf("%s: the peer read %d bytes (%v), want nothing yet", what, n, err)
	}
}

// readN reads exactly n bytes from peer within 5s.
func readN(t *testing.T, peer net.Conn, n int) []byte {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer peer.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if got, err := io.ReadFull(peer, b); err != nil {
		t.Fatalf("the peer read %d of %d bytes: %v", got, n, err)
	}
	return b
}

// TestDeferredWriteGoesOutWithTheRead: an armed connection keeps small
// writes, in order, until its next Read sends them and returns the answer
// they bring; the Read disarms it.
func TestDeferredWriteGoesOutWithTheRead(t *testing.T) {
	c, peer := rawPair(t)
	for round := range 3 { // the buffer is reused from round to round
		deferWrites(c)
		for _, part := range []string{"GET / HTTP/1.1\r\n", "Host: x\r\n", "\r\n"} {
			if n, err := c.Write([]byte(part)); n != len(part) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		nothingArrives(t, peer, "after armed writes")
		answered := make(chan error, 1)
		go func() {
			got := readN(t, peer, 27)
			if string(got) != "GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
				answered <- errors.New("the peer read " + string(got))
				return
			}
			time.Sleep(20 * time.Millisecond) // the Read parks meanwhile
			_, err := peer.Write([]byte("answer"))
			answered <- err
		}()
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "answer" {
			t.Fatalf("round %d: Read = %q, %v; want the answer", round, buf[:n], err)
		}
		if err := <-answered; err != nil {
			t.Fatal(err)
		}
		// Disarmed: the next write goes out at once.
		c.Write([]byte("now"))
		if got := readN(t, peer, 3); string(got) != "now" {
			t.Fatalf("unarmed write: the peer read %q", got)
		}
	}
}

// TestDeferredWriteFlushedByClose: a connection armed, written to and
// closed without a read delivers every byte, then EOF.
func TestDeferredWriteFlushedByClose(t *testing.T) {
	c, peer := rawPair(t)
	deferWrites(c)
	c.Write([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"))
	c.Write([]byte("body"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody" {
		t.Fatalf("the peer read %q, %v", got, err)
	}
}

// TestDeferredWriteOverTheLimit: a write that would take the kept bytes
// past deferLimit sends them, then itself, at once and in order.
func TestDeferredWriteOverTheLimit(t *testing.T) {
	c, peer := rawPair(t)
	deferWrites(c)
	c.Write([]byte("head"))
	big := make([]byte, deferLimit)
	rand.Read(big)
	done := make(chan error, 1)
	go func() { _, err := c.Write(big); done <- err }() // larger than the socket buffers
	if got := readN(t, peer, 4); string(got) != "head" {
		t.Fatalf("the peer read %q first, want the kept bytes", got)
	}
	if got := readN(t, peer, len(big)); !bytes.Equal(got, big) {
		t.Fatal("the large write arrived damaged")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Still armed: a small write is kept again.
	c.Write([]byte("tail"))
	nothingArrives(t, peer, "a small write after the large one")
	c.(*rawConn).CloseWrite()
	if got := readN(t, peer, 4); string(got) != "tail" {
		t.Fatalf("CloseWrite: the peer read %q", got)
	}
	if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after CloseWrite: %d, %v; want EOF", n, err)
	}
}

// TestDeferredWritePartial: kept bytes the socket cannot take at once (the
// peer reads late) are sent whole before the Read returns the answer.
func TestDeferredWritePartial(t *testing.T) {
	c, peer := rawPair(t)
	c.(*rawConn).Conn.(*net.TCPConn).SetWriteBuffer(4096)
	peer.SetReadBuffer(4096)
	msg := make([]byte, deferLimit-1)
	rand.Read(msg)
	deferWrites(c)
	c.Write(msg)
	go func() {
		time.Sleep(100 * time.Millisecond)
		got := readN(t, peer, len(msg))
		if !bytes.Equal(got, msg) {
			peer.Write([]byte("damaged"))
			return
		}
		peer.Write([]byte("whole"))
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "whole" {
		t.Fatalf("Read = %q, %v; want the peer to have got the message whole", buf[:n], err)
	}
}

// TestDeferredWriteAndDeadlines: a Read past its deadline still sends the
// kept bytes; SetWriteDeadline and SetDeadline send them without a Read.
func TestDeferredWriteAndDeadlines(t *testing.T) {
	c, peer := rawPair(t)
	deferWrites(c)
	c.Write([]byte("one"))
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}
	if got := readN(t, peer, 3); string(got) != "one" {
		t.Fatalf("the peer read %q", got)
	}
	c.SetReadDeadline(time.Time{})

	deferWrites(c)
	c.Write([]byte("two"))
	c.SetReadDeadline(time.Now().Add(time.Hour)) // leaves them kept
	nothingArrives(t, peer, "after SetReadDeadline")
	c.SetWriteDeadline(time.Now().Add(time.Hour))
	if got := readN(t, peer, 3); string(got) != "two" {
		t.Fatalf("SetWriteDeadline: the peer read %q", got)
	}
	c.Write([]byte("three"))
	c.SetDeadline(time.Time{})
	if got := readN(t, peer, 5); string(got) != "three" {
		t.Fatalf("SetDeadline: the peer read %q", got)
	}
}

// TestDeferredWriteToAClosedPeer: the kept bytes' write failing shows in
// the Read as a write error, at once (no wait for an answer).
func TestDeferredWriteToAClosedPeer(t *testing.T) {
	c, peer := rawPair(t)
	peer.SetLinger(0)
	peer.Close() // a reset
	time.Sleep(50 * time.Millisecond)
	deferWrites(c)
	c.Write([]byte("request"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 10))
	if err == nil || isTimeout(err) {
		t.Fatalf("Read after a reset: %v, want the connection's failure", err)
	}
	if !isWriteError(err) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after a reset: %v, want a write error or ECONNRESET", err)
	}
}

// TestDeferredWriteBeforeATunnel: kept bytes go out before what an
// io.Copy into the connection sends (the answer of an upgrade, then the
// tunnel), and a tunnel reading from an armed connection sends its kept
// bytes first.
func TestDeferredWriteBeforeATunnel(t *testing.T) {
	client, clientPeer := rawPair(t)
	target, targetPeer := rawPair(t)
	deferWrites(client)
	client.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"))
	deferWrites(target)
	target.Write([]byte("hello target"))
	go func() {
		targetPeer.Write([]byte("from the target"))
		targetPeer.CloseWrite()
	}()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(client, target); client.(*rawConn).CloseWrite(); done <- err }()
	clientPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(clientPeer)
	if err != nil || string(got) != "HTTP/1.1 101 Switching Protocols\r\n\r\nfrom the target" {
		t.Fatalf("the client read %q, %v", got, err)
	}
	if got := readN(t, targetPeer, 12); string(got) != "hello target" {
		t.Fatalf("the target read %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDeferredWriteCloseRaces: Close from another goroutine while the
// owner writes and reads (the listener's forced close) never hangs, and a
// write reported done reaches the peer unless the Read reports it failed;
// run with -race.
func TestDeferredWriteCloseRaces(t *testing.T) {
	for i := range 100 {
		c, peer := rawPair(t)
		got := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(peer); got <- b }()
		var werr, rerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			deferWrites(c)
			_, werr = c.Write([]byte("abc"))
			_, rerr = c.Read(make([]byte, 1)) // ended by Close
		}()
		time.Sleep(time.Duration(i%10) * 100 * time.Microsecond)
		c.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the owner's Read")
		}
		b := <-got
		switch {
		case len(b) > 0 && string(b) != "abc":
			t.Fatalf("the peer read %q", b)
		case werr == nil && !isWriteError(rerr) && string(b) != "abc":
			t.Fatalf("Write succeeded, Read said %v, but the peer read %q", rerr, b)
		case werr != nil && !errors.Is(werr, net.ErrClosed):
			t.Fatalf("Write after Close: %v, want net.ErrClosed", werr)
		}
	}
}

// TestDeferredAnswerToAPipeliningClient: a client's request that arrived
// before its previous answer was sent (its readiness cleared by the
// answer's Read) is still read, within about guardWait, after the answer
// went out; the connection is then not armed again.
func TestDeferredAnswerToAPipeliningClient(t *testing.T) {
	c, peer := rawPair(t)
	peer.Write([]byte("request 2"))
	time.Sleep(100 * time.Millisecond)
	// A look at the socket (as the proxy's client watch takes) clears the
	// readiness the request brought, whether the netpoller had recorded it
	// yet or not, and leaves the request unread.
	if _, data := peek(c); !data {
		t.Fatal("the request has not arrived")
	}
	c.SetReadDeadline(time.Now().Add(time.Hour))
	deferAnswer(c)
	c.Write([]byte("answer 1"))
	c.SetReadDeadline(time.Now().Add(time.Hour)) // as the server does before it waits
	start := time.Now()
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "request 2" {
		t.Fatalf("Read = %q, %v; want the waiting request", buf[:n], err)
	}
	if d := time.Since(start); d > guardWait+time.Second {
		t.Fatalf("the waiting request took %v to be read, want about guardWait (%v)", d, guardWait)
	}
	if got := readN(t, peer, 8); string(got) != "answer 1" {
		t.Fatalf("the client read %q", got)
	}
	rc := c.(*rawConn)
	rc.mu.Lock()
	pipelines := rc.pipelines
	rc.mu.Unlock()
	if !pipelines {
		t.Fatal("the connection was not marked as pipelining")
	}
	deferAnswer(c)
	c.Write([]byte("answer 2"))
	if got := readN(t, peer, 8); string(got) != "answer 2" {
		t.Fatalf("after pipelining, the answer was kept: the client read %q", got)
	}
}

// TestDeferredAnswerKeepsTheCallersDeadline: a client slower than
// guardWait gets its answer at once and its next request read whenever it
// comes within the caller's read deadline, which still ends the wait; a
// deadline sooner than the guard's sends the answer at once.
func TestDeferredAnswerKeepsTheCallersDeadline(t *testing.T) {
	c, peer := rawPair(t)
	for range 2 {
		deferAnswer(c)
		c.Write([]byte("answer"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		go func() {
			readN(t, peer, 6)
			time.Sleep(6 * guardWait)
			peer.Write([]byte("next"))
		}()
		buf := make([]byte, 10)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "next" {
			t.Fatalf("a slow client's request: %q, %v", buf[:n], err)
		}
		// A read after the guard's wait without a SetReadDeadline waits
		// under the caller's deadline, not the guard's.
		go func() {
			time.Sleep(2 * guardWait)
			peer.Write([]byte("more"))
		}()
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "more" {
			t.Fatalf("the read after: %q, %v", buf[:n], err)
		}
	}
	rc := c.(*rawConn)
	rc.mu.Lock()
	pipelines := rc.pipelines
	rc.mu.Unlock()
	if pipelines {
		t.Fatal("a slow client was taken for a pipelining one")
	}

	deferAnswer(c)
	c.Write([]byte("answer"))
	c.SetReadDeadline(time.Now().Add(3 * guardWait))
	start := time.Now()
	if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("Read with nothing coming: %v, want the caller's timeout", err)
	}
	if d := time.Since(start); d < 2*guardWait {
		t.Fatalf("the read timed out after %v, before the caller's deadline", d)
	}
	if got := readN(t, peer, 6); string(got) != "answer" {
		t.Fatalf("the client read %q", got)
	}

	deferAnswer(c)
	c.Write([]byte("soon"))
	c.SetReadDeadline(time.Now().Add(guardWait / 5))
	if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("Read with a short deadline: %v, want a timeout", err)
	}
	if got := readN(t, peer, 4); string(got) != "soon" {
		t.Fatalf("the client read %q", got)
	}
}

// TestWriteFloorBoundsWritesAfterTheServerClearsTheDeadline: the server
// clears the write deadline its handler set once the answer is sent; on a
// client's connection with a floor (floorWrites) "no deadline" is the floor
// from now, so a write to a client that has stopped reading fails in time
// instead of holding the connection (and a target behind it) for ever.
// SetDeadline (a tunnel's) still clears it, over TLS too.
func TestWriteFloorBoundsWritesAfterTheServerClearsTheDeadline(t *testing.T) {
	const floor = 300 * time.Millisecond
	stuck := func(c net.Conn, wait time.Duration) error { // writes until it fails, or wait passes
		done := make(chan error, 1)
		go func() {
			_, err := c.Write(make([]byte, 64<<20)) // more than the socket buffers hold
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(wait):
			c.Close()
			<-done
			return nil
		}
	}
	c, _ := rawPair(t)
	if !floorWrites(c, floor) {
		t.Fatal("floorWrites did not take a rawConn")
	}
	c.SetWriteDeadline(time.Time{}) // as the server does after the answer
	start := time.Now()
	var ne net.Error
	if err := stuck(c, 5*time.Second); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a write to a peer that reads nothing, after the deadline was cleared: %v, want a timeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the write gave up after %s, want about %s", took.Round(time.Millisecond), floor)
	}

	// A tunnel clears both deadlines: no floor.
	c, _ = rawPair(t)
	floorWrites(c, floor)
	c.SetDeadline(time.Time{})
	if err := stuck(c, 4*floor); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a write after SetDeadline(zero) failed: %v, want it to wait", err)
	}

	// Through the TLS connection over it, and through a handed-off one.
	c, _ = rawPair(t)
	if !floorWrites(&prefixConn{Conn: c}, floor) || !floorWrites(tls.Server(c, &tls.Config{}), floor) {
		t.Fatal("floorWrites did not find the rawConn under a prefixConn or TLS")
	}
}

// writeFloorOf returns the write floor of a client's connection (see
// floorWrites); known is false off Linux, where there is none.
func writeFloorOf(c net.Conn) (d time.Duration, known bool) {
	if rc := rawUnder(c); rc != nil {
		return time.Duration(rc.floor.Load()), true
	}
	return 0, true
}
