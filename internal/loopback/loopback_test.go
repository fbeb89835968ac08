package loopback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestCheckURLAcceptsLoopback(t *testing.T) {
	for _, u := range []string{
		"http://127.0.0.1:8080/api/health",
		"http://127.0.0.2/",
		"https://[::1]:8443/",
		"http://localhost:3000/",
		"http://LocalHost/",
		"http://[::ffff:127.0.0.1]/", // IPv4-mapped 127.0.0.1 is still loopback
	} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
}

func TestCheckURLRefusesEverythingElse(t *testing.T) {
	for _, u := range []string{
		"http://0.0.0.0:8080/",          // unspecified: reaches the host's every address
		"http://[::]:8080/",             // same, IPv6
		"http://[::ffff:10.0.0.1]/",     // IPv4-mapped private address
		"http://[::ffff:0.0.0.0]/",      // IPv4-mapped unspecified
		"http://172.17.0.2:80/",         // a container bridge address
		"http://10.0.0.1/",              // private network
		"http://169.254.169.254/latest", // cloud metadata
		"http://example.com/",           // a name that resolves elsewhere
		"http://localhost.example.com/", // a name that starts like localhost
		"http://localhost./",            // fully qualified: goes to DNS, not /etc/hosts
		"http://127.0.0.1.nip.io/",      // a name that embeds a loopback literal
		"http://127.0.0.1@10.0.0.1/",    // userinfo that looks like the host
		"http://10.0.0.1#@127.0.0.1/",   // fragment that looks like the host
		"http://[::1%25eth0]:80/",       // IPv6 zone on loopback
		"http://[fe80::1%25lo]/",        // link-local with a zone naming the loopback interface
		"http://127.1/",                 // short form some resolvers expand to 127.0.0.1
		"http://2130706433/",            // 127.0.0.1 as one decimal number
		"http://0x7f.0.0.1/",            // hexadecimal octet
		"http:///x",                     // no host
		"unix:///var/run/docker.sock",   // not a network address
		"http://[::1",                   // not a URL
	} {
		if err := CheckURL(u); err == nil {
			t.Errorf("CheckURL(%q) = nil, want a refusal", u)
		}
	}
	err := CheckURL("http://172.17.0.2:80/")
	if err == nil || !strings.Contains(err.Error(), `"172.17.0.2"`) || !strings.Contains(err.Error(), "127.0.0.1, ::1, localhost") {
		t.Errorf("refusal %v: want the host named and what is allowed", err)
	}
}

func TestControlRefusesResolvedAddressesOffTheHost(t *testing.T) {
	for _, a := range []string{"127.0.0.1:80", "127.255.0.1:1", "[::1]:443", "[::ffff:127.0.0.1]:80"} {
		if err := Control("tcp", a, nil); err != nil {
			t.Errorf("Control(%s) = %v, want nil", a, err)
		}
	}
	for _, a := range []string{"0.0.0.0:80", "[::]:80", "[::ffff:10.0.0.1]:80", "172.17.0.2:80",
		"10.0.0.1:80", "[fe80::1%eth0]:80", "[::1%lo]:80", "localhost:80", "127.0.0.1", ""} {
		if err := Control("tcp", a, nil); err == nil {
			t.Errorf("Control(%q) = nil, want a refusal", a)
		}
	}
}

// TestDialerConnectsOnlyToLoopback dials for real: to a listener on
// 127.0.0.1 by address and by the name localhost (accepted), and to the same
// listener through 0.0.0.0 (refused before connecting: the listener sees
// nothing).
func TestDialerConnectsOnlyToLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := Dialer()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("dial %s: %v", host, err)
		}
		c.Close()
		<-accepted
	}
	if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(port))); err == nil {
		c.Close()
		t.Fatal("dial 0.0.0.0 succeeded, want a refusal")
	} else if !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("dial 0.0.0.0: %v, want the loopback refusal", err)
	}
	select {
	case <-accepted:
		t.Fatal("the listener accepted a connection made through 0.0.0.0")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestDialerRefusesANameResolvingElsewhere resolves through a real DNS server
// on 127.0.0.1 (run by the test) that answers every A query with 10.0.0.1:
// the dialer must refuse the resolved address before connecting.
func TestDialerRefusesANameResolvingElsewhere(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	queries := make(chan string, 16)
	go serveDNS(pc, queries)
	d := Dialer()
	// A backstop behind the guard under test: should the guard let the
	// address through, the test fails here instead of sending a SYN off the host.
	guard := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := guard(network, address, c); err != nil {
			return err
		}
		return fmt.Errorf("test backstop: the guard let %s through", address)
	}
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp4", pc.LocalAddr().String())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp4", "cutover-evil.test:80")
	if err == nil {
		c.Close()
		t.Fatal("dial of a name resolving to 10.0.0.1 succeeded, want a refusal")
	}
	if !strings.Contains(err.Error(), "refusing to connect to 10.0.0.1:80: not a loopback address") {
		t.Fatalf("dial: %v, want the loopback refusal naming 10.0.0.1:80", err)
	}
	select {
	case q := <-queries:
		if !strings.HasPrefix(q, "cutover-evil.test.") {
			t.Fatalf("DNS query %q, want cutover-evil.test.", q)
		}
	default:
		t.Fatal("the DNS server saw no query: the name was not resolved through it")
	}
}

// serveDNS answers every A question with 10.0.0.1 until pc is closed.
func serveDNS(pc net.PacketConn, queries chan<- string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		select {
		case queries <- q.Name.String():
		default:
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
		b.EnableCompression()
		if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
			continue
		}
		if q.Type == dnsmessage.TypeA {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}
			if b.AResource(rh, dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}}) != nil {
				continue
			}
		}
		msg, err := b.Finish()
		if err != nil {
			continue
		}
		if _, err := pc.WriteTo(msg, from); err != nil && !errors.Is(err, net.ErrClosed) {
			return
		}
	}
}
