package dashboard

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

// Link is a one-time login link to a daemon's dashboard.
type Link struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
	// Answering says whether a daemon answered at the address; the link
	// also works if one starts there before it expires.
	Answering bool `json:"daemon_answering"`
}

// NewLink stores a one-time login link for who (usable once, until
// now+auth.LinkTTL) and returns its URL on the daemon at addr (HOST:PORT),
// over HTTPS when the daemon there serves TLS.
func NewLink(ctx context.Context, st *store.Store, who auth.Identity, addr string, now time.Time) (Link, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return Link{}, fmt.Errorf("--addr %q: give the daemon's HOST:PORT (as `cutover serve --addr`), e.g. 127.0.0.1:8790", addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1" // a daemon on every interface answers on loopback too
	}
	addr = net.JoinHostPort(host, port)
	scheme, answering := probe(ctx, addr)
	secret, err := auth.NewLoginLink(ctx, st, who, now)
	if err != nil {
		return Link{}, err
	}
	u := url.URL{Scheme: scheme, Host: addr, Path: "/login", RawQuery: url.Values{"link": {secret}}.Encode()}
	return Link{URL: u.String(), Expires: now.Add(auth.LinkTTL), Answering: answering}, nil
}

// probe asks the daemon's public health route over plain HTTP: a TLS
// daemon answers that with Go's 400 "Client sent an HTTP request to an
// HTTPS server".
func probe(ctx context.Context, addr string) (scheme string, answering bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "http", false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "HTTPS") {
		return "https", true
	}
	return "http", true
}
