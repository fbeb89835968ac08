package proxy

import (
	"bytes"
	"crypto/rand"
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
	rc := newRawConn(c)
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
