package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"
)

// LetsEncrypt is the ACME directory used when none is given.
const LetsEncrypt = autocert.DefaultACMEDirectory

// ACME obtains and renews a listener's certificates from an ACME CA (Let's
// Encrypt by default) with golang.org/x/crypto/acme/autocert: TLS-ALPN-01
// on the listener itself, HTTP-01 on a listener redirecting to it. The
// account key and certificates are kept in the proxy's ACME directory
// (CUTOVER_HOME/proxy/acme, 0700), so a restart does not ask the CA again.
type ACME struct {
	Email     string   `json:"email,omitempty"`     // contact for the CA's expiry notices
	Domains   []string `json:"domains"`             // the only names a certificate is requested for
	Directory string   `json:"directory,omitempty"` // ACME directory URL; default LetsEncrypt
	// CARoot is a PEM file of the CA certificates the directory's HTTPS is
	// verified with (a private CA such as Pebble); default: the system's.
	CARoot string `json:"ca_root,omitempty"`
	// RenewBefore renews a certificate this long before it expires;
	// default: a third of its lifetime, at most 30 days.
	RenewBefore Duration `json:"renew_before,omitempty"`
}

// key identifies the settings of a manager: a listener whose settings do
// not change keeps its manager, its certificates and its renewal timers.
func (a *ACME) key() string {
	return fmt.Sprintf("%q %q %q %q %d", a.Email, strings.Join(a.Domains, ","), a.Directory, a.CARoot, a.RenewBefore)
}

func validateACME(at string, a *ACME, add func(string, ...any)) {
	if len(a.Domains) == 0 {
		add("%s tls.acme.domains is empty: name the host names to get a certificate for", at)
	}
	for _, d := range a.Domains {
		if !plainHost(d) || !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
			add("%s tls.acme.domains: %q is not a host name such as app.example.com (no wildcards, ports or upper case)", at, d)
		}
	}
	if a.Directory != "" {
		if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
			add("%s tls.acme.directory %q is not an https URL", at, a.Directory)
		}
	}
	if a.CARoot != "" && !filepath.IsAbs(a.CARoot) {
		add("%s tls.acme.ca_root %q is not an absolute path", at, a.CARoot)
	}
	if a.RenewBefore < 0 {
		add("%s tls.acme.renew_before %s is negative", at, a.RenewBefore)
	}
}

// acmeManagers keeps one autocert manager per distinct ACME settings for
// the life of the proxy.
type acmeManagers struct {
	dir string // cache directory; "" refuses ACME
	log interface {
		Info(string, ...any)
		Warn(string, ...any)
	}

	mu    sync.Mutex
	all   map[string]*autocert.Manager
	waits map[*autocert.Manager]*certWaits
}

// manager returns the manager of a's settings, creating it when new.
func (ms *acmeManagers) manager(listener string, a *ACME) (*autocert.Manager, bool, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if m, ok := ms.all[a.key()]; ok {
		return m, false, nil
	}
	if ms.dir == "" {
		return nil, false, fmt.Errorf("listener %q: tls.acme needs the proxy's ACME directory: run the proxy with cutover proxy start", listener)
	}
	if err := os.MkdirAll(ms.dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("listener %q: creating the ACME directory: %w", listener, err)
	}
	if err := os.Chmod(ms.dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("listener %q: %w", listener, err)
	}
	client := &acme.Client{DirectoryURL: a.Directory, UserAgent: "cutover"}
	if client.DirectoryURL == "" {
		client.DirectoryURL = LetsEncrypt
	}
	if a.CARoot != "" {
		pem, err := os.ReadFile(a.CARoot)
		if err != nil {
			return nil, false, fmt.Errorf("listener %q: tls.acme.ca_root: %w", listener, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, false, fmt.Errorf("listener %q: tls.acme.ca_root %s holds no PEM certificate", listener, a.CARoot)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	m := &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       autocert.DirCache(ms.dir),
		HostPolicy:  autocert.HostWhitelist(a.Domains...),
		RenewBefore: time.Duration(a.RenewBefore),
		Client:      client,
		Email:       a.Email,
	}
	if ms.all == nil {
		ms.all = map[string]*autocert.Manager{}
		ms.waits = map[*autocert.Manager]*certWaits{}
	}
	ms.all[a.key()] = m
	ms.waits[m] = newCertWaits(m.GetCertificate)
	return m, true, nil
}

// waitsOf returns the handshakes' waits of m, a manager ms made.
func (ms *acmeManagers) waitsOf(m *autocert.Manager) *certWaits {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.waits[m]
}

// tlsACME is the TLS of a listener whose certificates come from m, a
// handshake waiting for one at most wait (its read_header_timeout).
func tlsACME(m *autocert.Manager, waits *certWaits, protos []string, wait time.Duration) *tlsServing {
	return &tlsServing{acme: m, cfg: &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) { return waits.certificate(hello, wait) },
		NextProtos:     append(protos, acme.ALPNProto), // and TLS-ALPN-01
	}}
}

// maxCertWaits bounds the handshakes waiting at once for one name's
// certificate, per manager.
const maxCertWaits = 8

// certWaits bounds the handshakes' waits for certificates of one manager.
// autocert's GetCertificate blocks while a certificate is being obtained,
// for as long as the CA takes (its own bound is minutes), and a handshake
// waiting there has no read to time out: a CA that is slow or down held
// every client connection to the domain, past read_header_timeout. A
// handshake now waits at most its listener's read_header_timeout and then
// fails, while the certificate is still obtained in the background. At most
// maxCertWaits handshakes wait for one name at once (each leaves a goroutine
// in autocert until it returns), counted per manager, so neither an Apply
// nor a second listener with the same settings starts the count again, and
// a name whose certificate is slow takes no other name's turn. A TLS-ALPN-01
// validation, which autocert answers from memory, does not wait.
type certWaits struct {
	get     func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	mu      sync.Mutex
	waiting map[string]int // by name as autocert reads it (IDNA), "+rsa" for its RSA certificate
}

func newCertWaits(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *certWaits {
	return &certWaits{get: get, waiting: map[string]int{}}
}

func (w *certWaits) certificate(hello *tls.ClientHelloInfo, wait time.Duration) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		return w.get(hello) // autocert's test for a validation: its certificate is in memory
	}
	name, err := idna.Lookup.ToASCII(hello.ServerName) // as autocert reads it
	if err != nil {
		return nil, fmt.Errorf("acme: server name %q: %v", hello.ServerName, err)
	}
	name = strings.TrimSuffix(name, ".")
	key := name // the two certificates of a name are obtained, and waited for, apart
	if !wantsECDSA(hello) {
		key += "+rsa"
	}
	w.mu.Lock()
	if w.waiting[key] >= maxCertWaits {
		w.mu.Unlock()
		return nil, fmt.Errorf("acme: %d handshakes already wait for the certificate of %q", maxCertWaits, key)
	}
	w.waiting[key]++
	w.mu.Unlock()
	type got struct {
		c   *tls.Certificate
		err error
	}
	done := make(chan got, 1)
	go func() {
		defer func() {
			w.mu.Lock()
			if w.waiting[key]--; w.waiting[key] <= 0 {
				delete(w.waiting, key)
			}
			w.mu.Unlock()
		}()
		c, err := w.get(hello)
		done <- got{c, err}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g := <-done:
		return g.c, g.err
	case <-t.C:
		return nil, fmt.Errorf("acme: no certificate for %q within %s: it is still being obtained", name, wait)
	}
}

// wantsECDSA says which of a name's certificates autocert serves hello: its
// ECDSA (P-256) one when the hello allows it, else its RSA one. A hello
// allows it unless it lists signature schemes and none is ECDSA, or lists
// curves without P-256 (RFC 5246 §7.4.1.4.1, RFC 8446 §4.2.3), and it must
// offer an ECDHE-ECDSA cipher suite.
func wantsECDSA(hello *tls.ClientHelloInfo) bool {
	ecdsaScheme := func(s tls.SignatureScheme) bool {
		return s == 0x0203 || s == tls.ECDSAWithP256AndSHA256 || s == tls.ECDSAWithP384AndSHA384 || s == tls.ECDSAWithP521AndSHA512
	}
	if hello.SignatureSchemes != nil && !slices.ContainsFunc(hello.SignatureSchemes, ecdsaScheme) {
		return false
	}
	if hello.SupportedCurves != nil && !slices.Contains(hello.SupportedCurves, tls.CurveP256) {
		return false
	}
	return slices.ContainsFunc(hello.CipherSuites, func(c uint16) bool { return slices.Contains(ecdheECDSASuites, c) })
}

var ecdheECDSASuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
}

// obtain asks m for the certificate of every domain now, in the
// background, rather than on the first client's handshake.
func (ms *acmeManagers) obtain(listener string, m *autocert.Manager, domains []string) {
	for _, d := range domains {
		go func() {
			hello := &tls.ClientHelloInfo{
				ServerName:       d,
				CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
				SupportedCurves:  []tls.CurveID{tls.CurveP256},
				SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			}
			start := time.Now()
			c, err := m.GetCertificate(hello)
			if err != nil {
				ms.log.Warn("ACME: no certificate yet (retried on the next handshake)", "listener", listener, "domain", d, "err", err)
				return
			}
			ms.log.Info("ACME: certificate ready", "listener", listener, "domain", d, "expires", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "took", time.Since(start).Round(time.Millisecond).String())
		}()
	}
}

// challengeHandler answers HTTP-01 challenges of m on a plain listener.
// The Host's port is dropped first: autocert checks the bare name against
// the domains, and a validator reaching a port other than 80 (behind a
// port forward) sends it.
func challengeHandler(m *autocert.Manager) fasthttp.RequestHandler {
	h := fasthttpadaptor.NewFastHTTPHandler(m.HTTPHandler(http.NotFoundHandler()))
	return func(ctx *fasthttp.RequestCtx) {
		host := requestHost(ctx.Request.Header.Host())
		ctx.Request.Header.SetHost(host)
		ctx.URI().SetHost(host)
		h(ctx)
	}
}
