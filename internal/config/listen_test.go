package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const listenBase = "version: 1\nproject: p\nservices:\n  web: { image: web:1, port: 80, route: { path_prefix: / } }\nenvironments:\n  production:\n"

func TestListenAddressDefaultsToLoopback(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(listenBase+"    listen: { port: 9000 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Environments["production"].Listen
	if l.Address != "127.0.0.1" || l.ProductionAddr() != "127.0.0.1:9000" || l.TestAddr() != "127.0.0.1:9001" {
		t.Fatalf("listen %+v: production %s test %s", l, l.ProductionAddr(), l.TestAddr())
	}
	if l.ProductionURL() != "http://127.0.0.1:9000" || l.TestURL() != "http://127.0.0.1:9001" {
		t.Fatalf("urls %s %s", l.ProductionURL(), l.TestURL())
	}
}

func TestListenAddressAndAnyPort(t *testing.T) {
	for _, tc := range []struct{ addr, prod, local string }{
		{"0.0.0.0", "0.0.0.0:443", "http://127.0.0.1:443"},
		{"::", "[::]:443", "http://127.0.0.1:443"},
		{"192.0.2.10", "192.0.2.10:443", "http://192.0.2.10:443"},
		{"::1", "[::1]:443", "http://[::1]:443"},
	} {
		c, err := Parse("cutover.yaml", []byte(listenBase+"    listen: { address: \""+tc.addr+"\", port: 443, test_port: 1 }\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.addr, err)
		}
		l := c.Environments["production"].Listen
		if l.ProductionAddr() != tc.prod || l.ProductionURL() != tc.local {
			t.Errorf("%s: production %s, url %s; want %s, %s", tc.addr, l.ProductionAddr(), l.ProductionURL(), tc.prod, tc.local)
		}
		// The test listener never faces users.
		if l.TestAddr() != "127.0.0.1:1" {
			t.Errorf("%s: test listener on %s, want 127.0.0.1:1", tc.addr, l.TestAddr())
		}
	}
}

func TestListenAddressRefusedWithFileAndLine(t *testing.T) {
	for addr, want := range map[string]string{
		"localhost":      `cutover.yaml:8:7: environments.production.listen.address: "localhost" is not an IP address`,
		"0.0.0.0:80":     `cutover.yaml:8:7: environments.production.listen.address: "0.0.0.0:80" is not an IP address`,
		"fe80::1%eth0":   `environments.production.listen.address: "fe80::1%eth0" has a zone`,
		"224.0.0.1":      `environments.production.listen.address: "224.0.0.1" is a multicast address`,
		"10.0.0.256":     `"10.0.0.256" is not an IP address`,
		"127.0.0.1 ":     `"127.0.0.1 " is not an IP address`,
		"http://0.0.0.0": `is not an IP address`,
	} {
		y := listenBase + "    listen:\n      address: \"" + addr + "\"\n      port: 70000\n"
		_, err := Parse("cutover.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("address %q: want %q in:\n%v", addr, want, err)
		}
		// Every problem in one run: the port too.
		if err == nil || !strings.Contains(err.Error(), "environments.production.listen.port: 70000 is out of range") {
			t.Errorf("address %q: the bad port is not reported too:\n%v", addr, err)
		}
	}
}

// writePair writes a fresh self-signed certificate and its key to dir.
func writePair(t *testing.T, dir, prefix string) (certFile, keyFile string, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"app.cutover.test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	certFile, keyFile = filepath.Join(dir, prefix+".pem"), filepath.Join(dir, prefix+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, keyPEM
}

func TestListenTLSFromFiles(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "certs"), 0o700)
	_, keyA, _ := writePair(t, filepath.Join(dir, "certs"), "a")
	_, _, keyB := writePair(t, filepath.Join(dir, "certs"), "b")
	parse := func(listen string) (*Config, error) {
		return ParseDir(filepath.Join(dir, "cutover.yaml"), dir, []byte(listenBase+listen))
	}
	c, err := parse("    listen:\n      address: 0.0.0.0\n      port: 443\n      http_redirect_port: 80\n      tls: { cert_file: certs/a.pem, key_file: " + keyA + " }\n")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Environments["production"].Listen
	if l.ProductionURL() != "https://127.0.0.1:443" || l.RedirectAddr() != "0.0.0.0:80" || c.TLSPath(l.TLS.CertFile) != filepath.Join(dir, "certs", "a.pem") || c.TLSPath(l.TLS.KeyFile) != keyA {
		t.Fatalf("listen %+v: url %s redirect %s cert %s", l, l.ProductionURL(), l.RedirectAddr(), c.TLSPath(l.TLS.CertFile))
	}

	if b := l.Bound(); len(b) != 3 || b[0] != (BoundAddr{"port", "0.0.0.0:443"}) || b[1] != (BoundAddr{"test_port", "127.0.0.1:444"}) || b[2] != (BoundAddr{"http_redirect_port", "0.0.0.0:80"}) {
		t.Fatalf("bound %+v", b)
	}
	for name, tc := range map[string]struct{ listen, want string }{
		"mismatched pair": {"    listen:\n      tls: { cert_file: certs/a.pem, key_file: certs/b.key }\n",
			"cutover.yaml:8:7: environments.production.listen.tls: cannot use cert_file " + filepath.Join(dir, "certs/a.pem") + " with key_file " + filepath.Join(dir, "certs/b.key") + ": tls: private key does not match public key"},
		"missing key": {"    listen:\n      tls:\n        cert_file: certs/a.pem\n        key_file: certs/nope.key\n",
			"cutover.yaml:10:9: environments.production.listen.tls.key_file: cannot read " + filepath.Join(dir, "certs/nope.key") + ": no such file or directory"},
		"key only":         {"    listen: { tls: { key_file: certs/a.key } }\n", "environments.production.listen.tls: give both cert_file and key_file"},
		"redirect no tls":  {"    listen: { http_redirect_port: 80 }\n", "environments.production.listen.http_redirect_port: redirects to https, but the listener has no tls"},
		"redirect on port": {"    listen: { port: 443, http_redirect_port: 443, tls: { cert_file: certs/a.pem, key_file: certs/a.key } }\n", "environments.production.listen.http_redirect_port: port 443 is also used by environments.production.listen.port"},
		"redirect range":   {"    listen: { http_redirect_port: 70000, tls: { cert_file: certs/a.pem, key_file: certs/a.key } }\n", "environments.production.listen.http_redirect_port: 70000 is out of range"},
	} {
		_, err := parse(tc.listen)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want %q in:\n%v", name, tc.want, err)
		}
		if err != nil && strings.Contains(err.Error(), strings.Split(string(keyB), "\n")[1]) {
			t.Errorf("%s: the error shows a private key", name)
		}
	}
}

func TestListenTLSFromACME(t *testing.T) {
	dir := t.TempDir()
	ca, _, _ := writePair(t, dir, "pebble")
	parse := func(listen string) (*Config, error) {
		return ParseDir(filepath.Join(dir, "cutover.yaml"), dir, []byte(listenBase+listen))
	}
	c, err := parse("    listen:\n      address: 0.0.0.0\n      port: 443\n      http_redirect_port: 80\n      tls:\n        acme: { email: ops@example.com, domains: [app.example.com, www.example.com], directory: \"https://127.0.0.1:14000/dir\", ca_root: pebble.pem, renew_before: 720h }\n")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Environments["production"].Listen.TLS.ACME
	if a == nil || len(a.Domains) != 2 || c.TLSPath(a.CARoot) != ca || a.RenewBefore.Std() != 720*time.Hour {
		t.Fatalf("acme %+v", a)
	}
	if _, err := parse("    listen: { tls: { acme: { domains: [app.example.com] } } }\n"); err != nil {
		t.Fatalf("only domains (Let's Encrypt): %v", err)
	}
	_, err = parse("    listen:\n      tls:\n        cert_file: pebble.pem\n        acme:\n          email: nobody\n          domains: [\"*.example.com\", \"app.example.com:443\", localhost, App.Example.com]\n          directory: http://127.0.0.1:14000/dir\n          ca_root: pebble.key\n          renew_before: -1h\n")
	for _, want := range []string{
		"cutover.yaml:8:7: environments.production.listen.tls: give either acme or cert_file and key_file, not both",
		`cutover.yaml:12:21: environments.production.listen.tls.acme.domains[0]: "*.example.com" is not a host name`,
		`environments.production.listen.tls.acme.domains[1]: "app.example.com:443" is not a host name`,
		`environments.production.listen.tls.acme.domains[2]: "localhost" is not a host name`,
		`environments.production.listen.tls.acme.domains[3]: "App.Example.com" is not a host name`,
		`cutover.yaml:11:11: environments.production.listen.tls.acme.email: "nobody" is not an email address`,
		`environments.production.listen.tls.acme.directory: "http://127.0.0.1:14000/dir" is not an https URL`,
		"environments.production.listen.tls.acme.ca_root: " + filepath.Join(dir, "pebble.key") + " holds no PEM certificate",
		`environments.production.listen.tls.acme.renew_before: "-1h" is negative`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
	if _, err := parse("    listen: { tls: { acme: { email: a@b.c } } }\n"); err == nil || !strings.Contains(err.Error(), "environments.production.listen.tls.acme.domains: missing") {
		t.Errorf("no domains: %v", err)
	}
}
