package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/acme/autocert"
)

// TLS makes a listener serve HTTPS (HTTP/2 and HTTP/1.1, as the client
// chooses; see h2.go), with the certificate and key of two PEM files or
// with certificates from an ACME CA. The proxy
// reads the files on every Apply, so replacing them and applying again (any
// deploy) serves the new ones; the key is never logged, persisted or
// answered, only its path.
type TLS struct {
	CertFile string `json:"cert_file,omitempty"` // absolute; the certificate, then its chain
	KeyFile  string `json:"key_file,omitempty"`  // absolute
	ACME     *ACME  `json:"acme,omitempty"`      // instead of the files
	// HTTP1Only offers clients HTTP/1.1 only (ALPN), not HTTP/2.
	HTTP1Only bool `json:"http1_only,omitempty"`
}

// nextProtos are the protocols a listener with t offers in ALPN, the
// preferred first (the server's order decides).
func (t *TLS) nextProtos() []string {
	if t.HTTP1Only {
		return []string{"http/1.1"}
	}
	return []string{http2Proto, "http/1.1"}
}

// tlsServing is the TLS of one open listener; Apply swaps it, and every
// connection accepted after the swap uses the new one.
type tlsServing struct {
	cfg  *tls.Config
	acme *autocert.Manager // when the certificates come from ACME
}

func validateTLS(at string, t *TLS, add func(string, ...any)) {
	if t.ACME != nil {
		if t.CertFile != "" || t.KeyFile != "" {
			add("%s tls: give either acme or cert_file and key_file, not both", at)
		}
		validateACME(at, t.ACME, add)
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		add("%s tls: give both cert_file and key_file", at)
		return
	}
	for _, f := range []struct{ field, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if !filepath.IsAbs(f.path) {
			add("%s tls.%s %q is not an absolute path (the proxy runs in its own directory)", at, f.field, f.path)
		}
	}
}

// loadTLS reads the certificate files of l, or finds its ACME manager
// (fresh reports a new one). The error names the files, never their content.
func (p *Proxy) loadTLS(l Listener) (t *tlsServing, fresh bool, err error) {
	if l.TLS == nil {
		return nil, false, nil
	}
	if l.TLS.ACME != nil {
		m, fresh, err := p.acme.manager(l.Name, l.TLS.ACME)
		if err != nil {
			return nil, false, err
		}
		return tlsACME(m, p.acme.waitsOf(m), l.TLS.nextProtos(), l.Limits.readHeader()), fresh, nil
	}
	pair, err := tls.LoadX509KeyPair(l.TLS.CertFile, l.TLS.KeyFile)
	if err != nil {
		return nil, false, fmt.Errorf("listener %q: cannot use tls.cert_file %s with tls.key_file %s: %v (give a PEM certificate chain and its unencrypted PEM private key)", l.Name, l.TLS.CertFile, l.TLS.KeyFile, err)
	}
	return &tlsServing{cfg: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   l.TLS.nextProtos(),
		Certificates: []tls.Certificate{pair},
	}}, false, nil
}

// offersH2 reports whether t (nil: plain HTTP) offers HTTP/2.
func (t *tlsServing) offersH2() bool {
	return t != nil && slices.Contains(t.cfg.NextProtos, http2Proto)
}

// tlsSwitch accepts connections of a listener and wraps each in TLS when
// the listener currently serves TLS. The handshake runs on the connection's
// first read, under the server's read timeout.
type tlsSwitch struct {
	net.Listener
	l *listener
}

func (s tlsSwitch) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err == nil && overAcceptCap(c) {
			// The descriptors left are the proxy's own (fdbudget.go); a
			// connection a loop accepted was checked there.
			c.Close()
			err = errTooManyConns
		}
		if err == errTooManyConns || err != nil && outOfResources(err) {
			// The server takes any error but a timeout for the listener's
			// end, and would stop serving it for good: the listener waits
			// a second instead, as the loops' does, while connections end.
			warnOutOfResources(s.l.log, "accepting a connection: paused for a second", err)
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			return nil, err
		}
		if _, handed := s.Listener.(*handoffListener); !handed {
			// Accepted here, not by a loop (which counted its own).
			release, ok := s.l.clients.admit(clientAddr(c.RemoteAddr().String()))
			if !ok {
				c.Close() // the client holds max_client_conns (clientconns.go)
				continue
			}
			c = newRawConn(c, release)
		}
		return s.wrap(c), nil
	}
}

// wrap wraps c, a raw connection, in TLS when the listener serves TLS now.
func (s tlsSwitch) wrap(c net.Conn) net.Conn {
	if _, ok := c.(*prefixConn); ok {
		return c // handed off by a loop after it read plain HTTP
	}
	if t := s.l.tls.Load(); t != nil {
		return &alpnConn{Conn: tls.Server(c, t.cfg), l: s.l, handed: make(chan struct{})}
	}
	return c
}

var acmeChallengePrefix = []byte("/.well-known/acme-challenge/")

// redirectHTTPS answers a request on a redirect listener: 308 to the same
// host and URI on the HTTPS listener's port. The host must be a plain host
// name or IPv4 address, so the Location header cannot be bent into another
// URL by a crafted Host.
func redirectHTTPS(ctx *fasthttp.RequestCtx, cc *clientConns, lr *listenerRoutes) {
	if lr.challenge != nil && bytes.HasPrefix(ctx.Path(), acmeChallengePrefix) {
		lr.challenge(ctx)
		return
	}
	host := requestHost(ctx.Request.Header.Host())
	if !plainHost(host) {
		cc.refuse(ctx, fasthttp.StatusBadRequest, "cutover: this listener redirects to https and needs a Host header with a host name\n")
		return
	}
	loc := make([]byte, 0, 64)
	loc = append(append(loc, "https://"...), host...)
	if lr.redirectPort != 443 {
		loc = strconv.AppendInt(append(loc, ':'), int64(lr.redirectPort), 10)
	}
	loc = append(loc, ctx.URI().RequestURI()...)
	ctx.Response.Header.SetBytesV("Location", loc)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	ctx.SetBodyString("cutover: use https\n")
}

// plainHost reports whether h is a DNS name or IPv4 address: letters,
// digits, dots and dashes, 1 to 253 of them.
func plainHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
