package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// The ACME tests run Pebble (github.com/letsencrypt/pebble), Let's
// Encrypt's ACME test server, on 127.0.0.1, validating challenges for real:
// its DNS resolver is a stub in the test that answers 127.0.0.1 for every
// name (there is no DNS for app.cutover.test here), and its validation
// ports are the proxy's listeners, so TLS-ALPN-01 reaches the HTTPS
// listener and HTTP-01 the redirect listener, as Let's Encrypt reaches 443
// and 80.

const pebbleInstall = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3 (scripts/setup.sh does)"

// pebbleBinary finds pebble on PATH or in GOPATH/bin; missing, it skips,
// or fails under CUTOVER_REQUIRE_TOOLS=1.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	if p := filepath.Join(build.Default.GOPATH, "bin", "pebble"); fileExists(p) {
		return p
	}
	why := "pebble, the ACME test server, is not installed: " + pebbleInstall
	if os.Getenv(testenv.RequireToolsEnv) == "1" {
		t.Fatalf("%s (and %s=1, so this is a failure, not a skip)", why, testenv.RequireToolsEnv)
	}
	t.Skip(why)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// pebble is a running Pebble.
type pebble struct {
	logFile   string
	directory string         // ACME directory URL
	caRoot    string         // PEM file trusted for Pebble's own HTTPS
	root      *x509.CertPool // the CA Pebble issues under (from its management API)
	rootPEM   []byte         // the same, PEM
	inter     *x509.Certificate
}

// startPebble runs Pebble on free 127.0.0.1 ports, issuing certificates
// valid for validity and validating TLS-ALPN-01 on tlsPort and HTTP-01 on
// httpPort of 127.0.0.1; it is stopped at the end of the test.
func startPebble(t *testing.T, validity time.Duration, tlsPort, httpPort string) *pebble {
	t.Helper()
	bin := pebbleBinary(t)
	dir := t.TempDir()
	certFile, keyFile, httpsPool := selfSigned(t, dir, "pebble-https", "127.0.0.1", "localhost")
	acmeAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	tp, _ := strconv.Atoi(tlsPort)
	hp, _ := strconv.Atoi(httpPort)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": acmeAddr, "managementListenAddress": mgmtAddr,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": hp, "tlsPort": tp,
		"keyAlgorithm": "ecdsa",
		"profiles":     map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", loopbackDNS(t))
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	logFile := filepath.Join(dir, "pebble.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("pebble output:\n%s", b)
		}
	})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: httpsPool}}}
	fetch := func(url string) ([]byte, error) {
		res, err := c.Get(url)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			return nil, fmt.Errorf("%s: %s", url, res.Status)
		}
		return io.ReadAll(res.Body)
	}
	p := &pebble{directory: "https://" + acmeAddr + "/dir", caRoot: certFile, logFile: logFile}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := fetch(p.directory)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rootPEM, err := fetch("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	p.root, p.rootPEM = x509.NewCertPool(), rootPEM
	if !p.root.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %q", rootPEM)
	}
	interPEM, err := fetch("https://" + mgmtAddr + "/intermediates/0")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(interPEM)
	block := pemCerts(t, interPEM)
	p.inter = block[0]
	return p
}

func (p *pebble) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var der []byte
		der, b = nextPEM(b)
		if der == nil {
			return out
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// TestACMECertificateObtainedServedAndRenewedUnderLoad runs the proxy
// daemon with a listener whose certificate comes from Pebble: it is
// obtained without a client asking, served with its chain for the domain
// (verified against Pebble's root, dialing 127.0.0.1), refused for other
// names, and renewed while clients keep connecting, with no failed request.
func TestACMECertificateObtainedServedAndRenewedUnderLoad(t *testing.T) {
	addr, redirAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	_, redirPort, _ := net.SplitHostPort(redirAddr)
	// TLS-ALPN-01 on the HTTPS listener, HTTP-01 on the redirect listener.
	peb := startPebble(t, 30*time.Second, port, redirPort)
	home := t.TempDir()
	ctx := context.Background()
	client, url, res, _ := acmeServing(t, peb, home, addr, redirAddr)
	chain := res.TLS.PeerCertificates
	first := chain[0].SerialNumber.String()
	t.Logf("certificate %s for %v, %s to %s", first, chain[0].DNSNames, chain[0].NotBefore.Format(time.TimeOnly), chain[0].NotAfter.Format(time.TimeOnly))

	// Attack: names outside domains get no certificate, and the CA is not asked for one.
	for _, sni := range []string{"evil.cutover.test", "127.0.0.1"} {
		if _, err := httpsClient(addr, sni, peb.root).Get("https://" + sni + ":" + port + "/"); err == nil {
			t.Errorf("SNI %q: served", sni)
		}
	}
	// The redirect listener answers HTTP-01 challenges, and 308 otherwise;
	// the challenge path cannot read the account key from the cache.
	for _, tc := range []struct {
		host, path string
		code       int
	}{
		{"app.cutover.test", "/.well-known/acme-challenge/acme_account+key", 404},
		{"app.cutover.test", "/.well-known/acme-challenge/../acme_account+key", 308}, // normalised: not a challenge
		{"app.cutover.test", "/.well-known/acme-challenge/app.cutover.test", 404},
		{"evil.cutover.test", "/.well-known/acme-challenge/x", 403},
		{"app.cutover.test", "/other", 308},
	} {
		code, raw := rawGet(t, redirAddr, tc.host, tc.path)
		if code != tc.code || strings.Contains(raw, "PRIVATE KEY") {
			t.Errorf("%s %s: %d, want %d\n%s", tc.host, tc.path, code, tc.code, raw)
		}
	}
	// The cache is private; the state holds no key.
	if fi, err := os.Stat(acmeDir(home)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("acme directory: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(acmeDir(home))
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v", e.Name(), fi.Mode())
		}
	}
	if len(entries) < 2 {
		t.Errorf("acme cache holds %d entries, want the account key and the certificate", len(entries))
	}
	if b, _ := os.ReadFile(statePath(home)); strings.Contains(string(b), "PRIVATE KEY") || !strings.Contains(string(b), `"acme"`) {
		t.Fatalf("state.json:\n%s", b)
	}

	// Renewal under load: new connections (each a handshake) for 14s.
	lctx, cancel := context.WithTimeout(ctx, 14*time.Second)
	defer cancel()
	ok, failed, errs, serials := tlsLoad(lctx, client, url, 3)
	t.Logf("14s of load: %d ok, %d failed, certificates served %v", ok, failed, serials)
	delete(serials, first)
	if failed != 0 || ok == 0 {
		t.Fatalf("%d failed requests during renewal: %v", failed, errs)
	}
	if len(serials) == 0 {
		t.Fatalf("the certificate was not renewed in 14s (first %s)", first)
	}
}

func nextPEM(b []byte) ([]byte, []byte) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, nil
	}
	return block.Bytes, rest
}

func TestACMESettingsRefused(t *testing.T) {
	p := newTestProxy(t, Options{}) // no ACME directory
	web := upstream(t, "web")
	addr := freeAddr(t)
	with := func(tl *TLS) error {
		l := oneRouteNamed("prod/production", addr, "prod/web")
		l.TLS = tl
		return p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("prod/web", web)}})
	}
	for name, tc := range map[string]struct {
		tls  *TLS
		want string
	}{
		"no domains":   {&TLS{ACME: &ACME{}}, "tls.acme.domains is empty"},
		"wildcard":     {&TLS{ACME: &ACME{Domains: []string{"*.cutover.test"}}}, `tls.acme.domains: "*.cutover.test" is not a host name`},
		"with port":    {&TLS{ACME: &ACME{Domains: []string{"app.cutover.test:443"}}}, `"app.cutover.test:443" is not a host name`},
		"single label": {&TLS{ACME: &ACME{Domains: []string{"localhost"}}}, `"localhost" is not a host name`},
		"http CA":      {&TLS{ACME: &ACME{Domains: []string{"a.cutover.test"}, Directory: "http://127.0.0.1:14000/dir"}}, "is not an https URL"},
		"relative CA":  {&TLS{ACME: &ACME{Domains: []string{"a.cutover.test"}, CARoot: "ca.pem"}}, `tls.acme.ca_root "ca.pem" is not an absolute path`},
		"both":         {&TLS{CertFile: "/a.pem", KeyFile: "/a.key", ACME: &ACME{Domains: []string{"a.cutover.test"}}}, "either acme or cert_file and key_file"},
		"no cache dir": {&TLS{ACME: &ACME{Domains: []string{"a.cutover.test"}}}, "tls.acme needs the proxy's ACME directory"},
	} {
		if err := with(tc.tls); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want %q in %v", name, tc.want, err)
		}
	}
	if len(p.State().Listeners) != 0 {
		t.Fatal("a refused change was applied")
	}
}

// acmeServing runs the proxy daemon on home with an HTTPS listener on addr
// whose certificate comes from peb (renewed 24s before the end of a 30s
// certificate: 6s, minus up to 2.4s of jitter, after issue) and a redirect
// listener on redirAddr; it returns once the listener serves a certificate
// that verifies against Pebble's root, with its chain checked, and a
// function that stops the proxy.
func acmeServing(t *testing.T, peb *pebble, home, addr, redirAddr string) (*http.Client, string, *http.Response, func()) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	c, stop := startRun(t, home)
	web := TargetGroup{Name: "prod/web", Health: fastHealth, Targets: []Target{{ID: "w", Addr: echoProto(t)}}}
	prod := oneRouteNamed("prod/production", addr, "prod/web")
	prod.TLS = &TLS{ACME: &ACME{Email: "ops@cutover.test", Domains: []string{"app.cutover.test"}, Directory: peb.directory, CARoot: peb.caRoot, RenewBefore: Duration(24 * time.Second)}}
	st := State{Listeners: []Listener{prod, {Name: "prod/redirect", Addr: redirAddr, RedirectTo: "prod/production"}}, TargetGroups: []TargetGroup{web}}
	if err := c.PutScope(context.Background(), "prod", st); err != nil {
		t.Fatal(err)
	}
	// Obtained in the background after the change: poll.
	url := "https://app.cutover.test:" + port + "/"
	client := httpsClient(addr, "app.cutover.test", peb.root)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(url)
		if err == nil && res.StatusCode == 200 {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			chain := res.TLS.PeerCertificates
			if string(body) != "proto=https" || len(chain) < 2 || !chain[1].Equal(peb.inter) || chain[0].DNSNames[0] != "app.cutover.test" {
				t.Fatalf("served %q, chain %d certificates (intermediate from pebble: %v)", body, len(chain), len(chain) > 1 && chain[1].Equal(peb.inter))
			}
			return client, url, res, stop
		}
		if err == nil {
			res.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from pebble after 30s: %v %v", err, res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMEHTTP01OnTheRedirectListener: when TLS-ALPN-01 cannot reach the
// HTTPS listener (Pebble validates it on a closed port), the certificate
// is obtained by HTTP-01, answered on the redirect listener.
func TestACMEHTTP01OnTheRedirectListener(t *testing.T) {
	addr, redirAddr := freeAddr(t), freeAddr(t)
	_, redirPort, _ := net.SplitHostPort(redirAddr)
	_, closedPort, _ := net.SplitHostPort(freeAddr(t))
	peb := startPebble(t, time.Hour, closedPort, redirPort)
	home := t.TempDir()
	client, url, res, stop := acmeServing(t, peb, home, addr, redirAddr)
	serial := res.TLS.PeerCertificates[0].SerialNumber
	t.Logf("certificate %s obtained by HTTP-01", serial)
	log := peb.log(t)
	if !strings.Contains(log, "Attempting to validate w/ HTTP") || !strings.Contains(log, "set VALID") {
		t.Fatalf("pebble did not validate by HTTP-01:\n%s", log)
	}
	issued := strings.Count(log, "Issued certificate serial")
	acmeHooks(t, peb, addr)

	// A restarted proxy serves the certificate from its cache at once,
	// without asking the CA again.
	stop()
	startRun(t, home)
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	res.Body.Close()
	if got := res.TLS.PeerCertificates[0].SerialNumber; got.Cmp(serial) != 0 {
		t.Fatalf("after a restart: certificate %s, want %s from the cache", got, serial)
	}
	if n := strings.Count(peb.log(t), "Issued certificate serial"); n != issued {
		t.Fatalf("the restarted proxy asked for %d more certificates", n-issued)
	}
}

// acmeHooks runs a production lifecycle hook against the ACME listener on
// addr, as a deployment does (hook.ListenerTLS of the environment's
// listen): it asks for the domain and verifies Pebble's certificate with
// ca_root, which holds Pebble's HTTPS root and its issuing root. With only
// the HTTPS root (the issuer unknown) the hook fails.
func acmeHooks(t *testing.T, peb *pebble, addr string) {
	t.Helper()
	caHTTPS, err := os.ReadFile(peb.caRoot)
	if err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(both, append(caHTTPS, peb.rootPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	listen := config.Listen{TLS: &config.ListenTLS{ACME: &config.ACME{Domains: []string{"app.cutover.test"}, CARoot: both}}}
	env := hook.Env{ProductionURL: "https://127.0.0.1:" + port, ProductionTLS: hook.ListenerTLS(&config.Config{}, listen)}
	check := config.HTTPCheck{Listener: config.ListenerProduction, Path: "/", ExpectBody: "proto=https"}
	run := func() hook.Result {
		return hook.Run(context.Background(), "AfterAllowTraffic", config.Hook{HTTP: &check, Timeout: config.Duration(5 * time.Second)}, env)
	}
	if r := run(); !r.OK || !strings.Contains(r.Detail, "(app.cutover.test) → 200") {
		t.Fatalf("production hook on the ACME listener: %+v", r)
	}
	listen.TLS.ACME.CARoot = peb.caRoot
	env.ProductionTLS = hook.ListenerTLS(&config.Config{}, listen)
	if r := run(); r.OK || !strings.Contains(r.Detail, "unknown authority") {
		t.Fatalf("without Pebble's issuing root: %+v", r)
	}
}

// loopbackDNS answers DNS queries over TCP (what Pebble's resolver uses)
// and UDP on 127.0.0.1 until the test ends: an A record 127.0.0.1 for every
// name, no other records (so Pebble validates on 127.0.0.1 and finds no CAA
// record). Returns its address.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	for range 20 { // the same free port for both
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		ln.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both TCP and UDP")
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if answer := dnsAnswer(buf[:n]); answer != nil {
				pc.WriteTo(answer, from)
			}
		}
	}()
	acceptEach(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for {
			var size [2]byte
			if _, err := io.ReadFull(c, size[:]); err != nil {
				return
			}
			q := make([]byte, binary.BigEndian.Uint16(size[:]))
			if _, err := io.ReadFull(c, q); err != nil {
				return
			}
			answer := dnsAnswer(q)
			if answer == nil {
				return
			}
			c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(answer))), answer...))
		}
	})
	return ln.Addr().String()
}

// dnsAnswer builds the reply to one query (RFC 1035 4.1): the question
// echoed, and for type A one answer 127.0.0.1 pointing at it.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	question := q[12 : i+5]
	out := append([]byte{}, q[0:2]...)      // ID
	out = append(out, 0x84|q[2]&0x01, 0x80) // QR, AA, RD as asked; RA; NOERROR
	ancount := byte(0)
	if qtype == 1 {
		ancount = 1
	}
	out = append(out, 0, 1, 0, ancount, 0, 0, 0, 0)
	out = append(out, question...)
	if ancount == 1 {
		out = append(out, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	}
	return out
}

// slowCAProxy serves ok.cutover.test and slow.cutover.test by ACME from a
// CA that accepts and never answers (Pebble cannot be made to stall like
// that), with a 1s read_header_timeout (room for the handshakes that must
// pass under -race load). ok.cutover.test's certificate was obtained
// before (cached); slow.cutover.test's is not, but its TLS-ALPN-01 token
// certificate is at hand, as autocert keeps it while the CA validates. handshake dials the listener with cfg (nil: Go's defaults);
// waiting is the handshakes waiting for a certificate, by key.
func slowCAProxy(t *testing.T) (p *Proxy, state State, handshake func(name string, cfg *tls.Config) error, waiting func() map[string]int) {
	t.Helper()
	release := make(chan struct{})
	ca := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(ca.Close)
	t.Cleanup(func() { close(release) })
	caRoot := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	acmeDir := t.TempDir()
	writeAutocertCache(t, acmeDir, "ok.cutover.test", "ok.cutover.test")
	writeAutocertCache(t, acmeDir, "slow.cutover.test+token", "slow.cutover.test")
	p = newTestProxy(t, Options{ACMEDir: acmeDir})
	addr := freeAddr(t)
	l := oneRouteNamed("prod/production", addr, "prod/web")
	l.TLS = &TLS{ACME: &ACME{Domains: []string{"ok.cutover.test", "slow.cutover.test"}, Directory: ca.URL + "/dir", CARoot: caRoot}}
	l.Limits = Limits{ReadHeaderTimeout: Duration(time.Second)}
	state = State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("prod/web", upstream(t, "web"))}}
	if err := p.Apply(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	handshake = func(name string, cfg *tls.Config) error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		cfg.ServerName, cfg.InsecureSkipVerify = name, true
		return tls.Client(c, cfg).Handshake()
	}
	waiting = func() map[string]int {
		p.acme.mu.Lock()
		defer p.acme.mu.Unlock()
		out := map[string]int{}
		for _, w := range p.acme.waits {
			w.mu.Lock()
			for k, v := range w.waiting {
				out[k] += v
			}
			w.mu.Unlock()
		}
		return out
	}
	return p, state, handshake, waiting
}

// A CA that does not answer (its directory request hangs) held every
// handshake for an ACME domain inside autocert's GetCertificate, past the
// listener's read_header_timeout, and a goroutine each. A handshake now
// fails after read_header_timeout, and at most maxCertWaits wait for one
// name at once, however many Applies come (the count is the manager's).
// Meanwhile another domain whose certificate is cached, and the CA's
// TLS-ALPN-01 validation of the one being obtained, are served: a first
// version's single bound per listener refused them too (third attack
// review).
func TestACMEHandshakesAreBoundedWhileTheCAIsSlow(t *testing.T) {
	p, state, handshake, _ := slowCAProxy(t)
	const n = 2 * maxCertWaits
	for apply := range 3 {
		if err := p.Apply(context.Background(), state); err != nil {
			t.Fatal(err)
		}
		results := make(chan error, n)
		start := time.Now()
		for range n {
			go func() { results <- handshake("slow.cutover.test", nil) }()
		}
		for range n {
			if err := <-results; err == nil || strings.Contains(err.Error(), "timeout") {
				t.Fatalf("a handshake while the CA hangs: %v after %s, want it refused within the 1s read_header_timeout", err, time.Since(start))
			}
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%d handshakes took %s to be refused, want about the 1s read_header_timeout", n, took)
		}
		if err := handshake("ok.cutover.test", nil); err != nil {
			t.Fatalf("apply %d: the cached domain while %d handshakes wait for another: %v", apply, n, err)
		}
		if err := handshake("slow.cutover.test", &tls.Config{NextProtos: []string{acme.ALPNProto}}); err != nil {
			t.Fatalf("apply %d: the CA's TLS-ALPN-01 validation while handshakes wait: %v", apply, err)
		}
	}
	// The goroutines left waiting in autocert (fasthttp's idle workers,
	// kept for seconds, are not counted).
	buf := make([]byte, 8<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if waiting := strings.Count(stacks, "(*certWaits).certificate.func"); waiting > maxCertWaits {
		t.Fatalf("%d goroutines wait for the certificate after 3 Applies of %d refused handshakes, want at most %d", waiting, n, maxCertWaits)
	}
}

// A hello that does not allow ECDSA (no P-256 among its curves) asks
// autocert for the name's RSA certificate, which is obtained (and waited
// for) apart from its ECDSA one: counted under the name, 8 such hellos
// refused every client of a domain whose ECDSA certificate is cached
// (fourth attack review). They are counted apart now.
func TestACMEWaitsForARSACertificateAreCountedApart(t *testing.T) {
	_, _, handshake, waiting := slowCAProxy(t)
	noECDSA := &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}
	done := make(chan error, maxCertWaits+1)
	for range maxCertWaits + 1 {
		go func() { done <- handshake("ok.cutover.test", noECDSA) }()
	}
	for range maxCertWaits + 1 {
		if err := <-done; err == nil {
			t.Fatal("a hello without P-256 was served: the test needs its RSA certificate to wait for the CA")
		}
	}
	for i := range 5 {
		if err := handshake("ok.cutover.test", nil); err != nil {
			t.Fatalf("handshake %d for the cached domain after %d hellos without P-256: %v (waiting: %v)", i, maxCertWaits+1, err, waiting())
		}
	}
}

// Names autocert reads as one (IDNA: a soft hyphen is dropped, full-width
// letters become ASCII, capitals lower-case) are counted as one: counted by
// their spelling, each had its own 8 waits, and the goroutines waiting in
// autocert grew without bound while the CA was slow (fourth attack review).
func TestACMEWaitsAreCountedByTheNameAutocertReads(t *testing.T) {
	_, _, handshake, waiting := slowCAProxy(t)
	spellings := []string{"slow.cutover.test", "Slow.Cutover.Test", "s\u00adlow.cutover.test", "\uff53low.cutover.test"}
	for i := 1; len(spellings) < 12; i++ {
		spellings = append(spellings, "slow"+strings.Repeat("\u00ad", i)+".cutover.test")
	}
	done := make(chan error, 2*len(spellings))
	for _, s := range spellings {
		for range 2 {
			go func() { done <- handshake(s, nil) }()
		}
	}
	for range 2 * len(spellings) {
		<-done
	}
	total := 0
	w := waiting()
	for _, n := range w {
		total += n
	}
	if total > maxCertWaits {
		t.Fatalf("%d handshakes wait for slow.cutover.test's certificate (%v), want at most %d", total, w, maxCertWaits)
	}
}

// writeAutocertCache writes a self-signed certificate for name to dir under
// autocert's cache key (key PEM, then certificate PEM).
func writeAutocertCache(t *testing.T, dir, key, name string) {
	t.Helper()
	certFile, keyFile, _ := selfSigned(t, t.TempDir(), "c", name)
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, key), append(kb, cb...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Only a hello autocert itself takes for a TLS-ALPN-01 validation (acme-tls/1
// alone) skips the bound: a client that adds acme-tls/1 to its protocols is
// a client like any other, whose wait autocert would make as long. get here
// stands in for autocert's (TestACMEHandshakesAreBoundedWhileTheCAIsSlow runs
// the real one): it hangs for slow.cutover.test unless asked for a token.
func TestACMEOnlyAValidationSkipsTheBound(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	served := &tls.Certificate{}
	w := newCertWaits(func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if len(h.SupportedProtos) != 1 || h.SupportedProtos[0] != acme.ALPNProto {
			<-hang
		}
		return served, nil
	})
	var wg sync.WaitGroup
	for range maxCertWaits {
		wg.Go(func() { w.certificate(&tls.ClientHelloInfo{ServerName: "slow.cutover.test"}, 20*time.Millisecond) })
	}
	wg.Wait()
	if _, err := w.certificate(&tls.ClientHelloInfo{ServerName: "Slow.Cutover.Test.", SupportedProtos: []string{"h2", acme.ALPNProto}}, time.Second); err == nil || !strings.Contains(err.Error(), "already wait") {
		t.Fatalf("a client offering acme-tls/1 among others, past the bound: %v, want refused at once", err)
	}
	if c, err := w.certificate(&tls.ClientHelloInfo{ServerName: "slow.cutover.test", SupportedProtos: []string{acme.ALPNProto}}, time.Second); c != served || err != nil {
		t.Fatalf("a TLS-ALPN-01 validation: %v %v, want its certificate", c, err)
	}
}
