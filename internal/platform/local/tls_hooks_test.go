package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// certPair writes a self-signed certificate for names, and its key, to
// dir/prefix.pem and dir/prefix.key.
func certPair(t *testing.T, dir, prefix string, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), DNSNames: names,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, prefix+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Lifecycle hooks against a production listener that serves HTTPS with a
// self-signed certificate from files, through the real proxy with the
// routes the platform gives it: the hook asks for the certificate's name
// (SNI and Host), trusts the certificate the listener was told to serve,
// and nothing else.
func TestHooksReachATLSProductionListener(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "certs"), 0o700)
	certPair(t, filepath.Join(dir, "certs"), "site", "shop.test", "www.shop.test")
	certPair(t, filepath.Join(dir, "certs"), "other", "shop.test") // same name, another key: not the served one
	port, testPort := testenv.FreePort(t), testenv.FreePort(t)
	y := fmt.Sprintf(`version: 1
project: shop
services:
  web:
    image: web:1
    port: 80
    health: { path: /, interval: 1s }
    route: { path_prefix: / }
environments:
  prod:
    listen: { port: %d, test_port: %d, tls: { cert_file: certs/site.pem, key_file: certs/site.key } }
`, port, testPort)
	cfg, err := config.ParseDir(filepath.Join(dir, "cutover.yaml"), dir, []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web host=%s proto=%s", r.Host, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer web.Close()
	webPort := web.Listener.Addr().(*net.TCPAddr).Port

	p := proxy.New(proxy.Options{})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	}()
	st := routes(cfg, "prod", nil, colorSet{Color: Blue, Tasks: map[string][]taskAddr{"web": {{"w1", webPort}}}}, 100)
	if err := p.Apply(context.Background(), st); err != nil {
		t.Fatal(err)
	}

	l := cfg.Environments["prod"].Listen
	env := hook.Env{TestURL: l.TestURL(), ProductionURL: l.ProductionURL(), ProductionTLS: hook.ListenerTLS(cfg, l)}
	if !strings.HasPrefix(env.ProductionURL, "https://127.0.0.1:") || env.ProductionTLS.ServerName != "shop.test" {
		t.Fatalf("production URL %s, TLS %+v", env.ProductionURL, env.ProductionTLS)
	}
	check := func(c config.HTTPCheck) hook.Result {
		return hook.Run(context.Background(), "AfterAllowTraffic", config.Hook{HTTP: &c, Timeout: config.Duration(3 * time.Second)}, env)
	}
	prod := config.HTTPCheck{Listener: config.ListenerProduction, Path: "/", ExpectBody: fmt.Sprintf("web host=shop.test:%d proto=https", port)}
	var r hook.Result
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) { // until the target is healthy
		if r = check(prod); r.OK || time.Now().After(deadline) {
			break
		}
	}
	if !r.OK || !strings.Contains(r.Detail, "(shop.test) → 200") {
		t.Fatalf("production hook over TLS: %+v", r)
	}
	// A Host header names the site asked for: another name of the certificate passes.
	www := prod
	www.Headers, www.ExpectBody = map[string]string{"Host": "www.shop.test"}, "web host=www.shop.test proto=https"
	if r := check(www); !r.OK {
		t.Fatalf("Host www.shop.test: %+v", r)
	}
	// The test listener stays plain HTTP on 127.0.0.1.
	if r := check(config.HTTPCheck{Listener: config.ListenerTest, Path: "/", ExpectBody: "proto=http"}); !r.OK || !strings.HasPrefix(r.Detail, "GET http://127.0.0.1:") {
		t.Fatalf("test listener: %+v", r)
	}

	// Attacks: a name the certificate is not for, a certificate other than
	// the one configured, and the system's roots alone: each fails, saying why.
	evil := prod
	evil.Headers = map[string]string{"Host": "evil.test"}
	if r := check(evil); r.OK || !strings.Contains(r.Detail, "evil.test") || !strings.Contains(r.Detail, "certificate") {
		t.Errorf("Host evil.test: %+v", r)
	}
	env.ProductionTLS = &hook.TLS{ServerName: "shop.test", CertFile: filepath.Join(dir, "certs", "other.pem")}
	if r := check(prod); r.OK || !strings.Contains(r.Detail, "certificate signed by unknown authority") {
		t.Errorf("trusting another certificate of the same name: %+v", r)
	}
	env.ProductionTLS = &hook.TLS{ServerName: "shop.test"}
	if r := check(prod); r.OK || !strings.Contains(r.Detail, "unknown authority") {
		t.Errorf("the system's roots alone: %+v", r)
	}
	env.ProductionTLS = &hook.TLS{CertFile: filepath.Join(dir, "certs", "missing.pem")}
	if r := check(prod); r.OK || !strings.Contains(r.Detail, "missing.pem") {
		t.Errorf("an unreadable certificate file: %+v", r)
	}
	// Command hooks get the https URL and the name to ask for.
	env.ProductionTLS = hook.ListenerTLS(cfg, l)
	cmd := hook.Run(context.Background(), "AfterAllowTraffic", config.Hook{Command: []string{"sh", "-c", `test "$CUTOVER_PRODUCTION_URL" = "https://127.0.0.1:` + fmt.Sprint(port) + `" && test "$CUTOVER_PRODUCTION_SERVER_NAME" = shop.test`}, Timeout: config.Duration(3 * time.Second)}, env)
	if !cmd.OK {
		t.Errorf("command hook environment: %+v", cmd)
	}
}
