package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// The ACME tests run Pebble (github.com/letsencrypt/pebble), Let's
// Encrypt's ACME test server, on 127.0.0.1: a real ACME CA with a real
// protocol, only with no DNS. PEBBLE_VA_ALWAYS_VALID makes it accept every
// challenge without connecting to the domain (there is no DNS for
// app.cutover.test here), so the proxy's TLS-ALPN-01 and HTTP-01 answers
// are not what decides; everything else (account, order, CSR, chain,
// renewal) is the real exchange.

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
	directory string         // ACME directory URL
	caRoot    string         // PEM file trusted for Pebble's own HTTPS
	root      *x509.CertPool // the CA Pebble issues under (from its management API)
	inter     *x509.Certificate
}

// startPebble runs Pebble on free 127.0.0.1 ports, issuing certificates
// valid for validity, and stops it at the end of the test.
func startPebble(t *testing.T, validity time.Duration) *pebble {
	t.Helper()
	bin := pebbleBinary(t)
	dir := t.TempDir()
	certFile, keyFile, httpsPool := selfSigned(t, dir, "pebble-https", "127.0.0.1", "localhost")
	acmeAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": acmeAddr, "managementListenAddress": mgmtAddr,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": 5002, "tlsPort": 5001, // unused: every challenge is valid
		"keyAlgorithm": "ecdsa",
		"profiles":     map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_WFE_NONCEREJECT=0")
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
	p := &pebble{directory: "https://" + acmeAddr + "/dir", caRoot: certFile}
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
	p.root = x509.NewCertPool()
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
	peb := startPebble(t, 30*time.Second)
	home := t.TempDir()
	c, _ := startRun(t, home)
	ctx := context.Background()
	addr, redirAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	web := TargetGroup{Name: "prod/web", Health: fastHealth, Targets: []Target{{ID: "w", Addr: echoProto(t)}}}
	prod := oneRouteNamed("prod/production", addr, "prod/web")
	// Renewed 24s before the end of a 30s certificate: 6s (minus up to 2.4s of jitter) after issue.
	prod.TLS = &TLS{ACME: &ACME{Email: "ops@cutover.test", Domains: []string{"app.cutover.test"}, Directory: peb.directory, CARoot: peb.caRoot, RenewBefore: Duration(24 * time.Second)}}
	st := State{Listeners: []Listener{prod, {Name: "prod/redirect", Addr: redirAddr, RedirectTo: "prod/production"}}, TargetGroups: []TargetGroup{web}}
	if err := c.PutScope(ctx, "prod", st); err != nil {
		t.Fatal(err)
	}

	// Obtained in the background after the change: poll with handshakes only.
	url := "https://app.cutover.test:" + port + "/"
	client := httpsClient(addr, "app.cutover.test", peb.root)
	deadline := time.Now().Add(30 * time.Second)
	var res *http.Response
	for {
		var err error
		res, err = client.Get(url)
		if err == nil && res.StatusCode == 200 {
			break
		}
		if err == nil {
			res.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from pebble after 30s: %v %v", err, res)
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	chain := res.TLS.PeerCertificates
	if string(body) != "proto=https" || len(chain) < 2 || !chain[1].Equal(peb.inter) || chain[0].DNSNames[0] != "app.cutover.test" {
		t.Fatalf("served %q, chain %d certificates (intermediate from pebble: %v)", body, len(chain), len(chain) > 1 && chain[1].Equal(peb.inter))
	}
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
