package hook

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"

	"github.com/cutoverdev/cutover/internal/config"
)

// TLS is how hooks reach a production listener that serves HTTPS. They
// still dial 127.0.0.1, but ask for the site's host name, as a user's
// browser does: it is the SNI the proxy picks the certificate by (an ACME
// listener serves none without it), the Host the routes see (unless the
// hook sets a Host header, whose name is then asked for instead), and the
// name the certificate must be valid for. The certificate is verified,
// never accepted blindly: against the system's roots, the listener's own
// certificate file (what the proxy was told to serve, so a self-signed one
// passes and any other certificate fails), and CAFiles.
type TLS struct {
	ServerName string   // the first ACME domain, or the first DNS name of CertFile's certificate; "" = the listener's IP
	CertFile   string   // the listener's certificate chain (tls.cert_file), absolute
	CAFiles    []string // more trusted CA certificates (tls.acme.ca_root), absolute
}

// ListenerTLS is the TLS hooks use on listener l of cfg, nil when its
// production listener serves plain HTTP. Relative paths are resolved as
// the proxy resolves them (config.TLSPath).
func ListenerTLS(cfg *config.Config, l config.Listen) *TLS {
	if l.TLS == nil {
		return nil
	}
	if a := l.TLS.ACME; a != nil {
		t := &TLS{}
		if len(a.Domains) > 0 {
			t.ServerName = a.Domains[0]
		}
		if a.CARoot != "" {
			t.CAFiles = []string{cfg.TLSPath(a.CARoot)}
		}
		return t
	}
	t := &TLS{CertFile: cfg.TLSPath(l.TLS.CertFile)}
	if certs, err := readCerts(t.CertFile); err == nil && len(certs[0].DNSNames) > 0 {
		t.ServerName = certs[0].DNSNames[0] // unreadable, the hook says so when it runs
	}
	return t
}

// clientConfig is the client TLS of a request whose Host header, if the
// hook set one, is host; it returns the name asked for ("" for the
// listener's IP). A file that cannot be read is an error naming it.
func (t *TLS) clientConfig(host string) (*tls.Config, string, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	name := t.ServerName
	files := t.CAFiles
	if t.CertFile != "" {
		files = append([]string{t.CertFile}, files...)
	}
	for _, f := range files {
		certs, err := readCerts(f)
		if err != nil {
			return nil, "", err
		}
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	if host != "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		name = host
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: name}, name, nil
}

// readCerts reads the PEM certificates of file f.
func readCerts(f string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read the certificates to trust: %v", err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", f)
	}
	return out, nil
}
