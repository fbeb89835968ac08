package hook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/loopback"
)

const (
	maxBody     = 1 << 20 // read at most this much of a response to look for ExpectBody
	bodyExcerpt = 200     // bytes of the body shown in a Detail
)

func method(c config.HTTPCheck) string {
	if c.Method == "" {
		return http.MethodGet
	}
	return strings.ToUpper(c.Method)
}

// runHTTP sends one request (no retry: a hook fails fast) and checks the answer.
func runHTTP(ctx context.Context, c config.HTTPCheck, env Env, timeout time.Duration) (bool, string) {
	listener, base := c.Listener, env.TestURL
	if listener == "" {
		listener = config.ListenerTest
	}
	if listener == config.ListenerProduction {
		base = env.ProductionURL
	}
	m := method(c)
	if base == "" {
		return false, fmt.Sprintf("%s %s: the environment has no %s listener to send it to", m, c.Path, listener)
	}
	target := strings.TrimSuffix(base, "/") + c.Path
	if err := loopback.CheckURL(target); err != nil {
		return false, fmt.Sprintf("refusing %s %s: hooks send requests only to 127.0.0.1 (check the %s listener address)", m, target, listener)
	}

	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, m, target, nil)
	if err != nil {
		return false, fmt.Sprintf("%s %s: %v", m, target, err)
	}
	host := ""
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host, host = v, v
			continue
		}
		req.Header.Set(k, v)
	}
	var tlsCfg *tls.Config
	if listener == config.ListenerProduction && env.ProductionTLS != nil && req.URL.Scheme == "https" {
		cfg, name, err := env.ProductionTLS.clientConfig(host)
		if err != nil {
			return false, fmt.Sprintf("%s %s: %v", m, target, err)
		}
		tlsCfg = cfg
		if name != "" {
			target += " (" + name + ")"
			if host == "" {
				req.Host = name
				if p := req.URL.Port(); p != "" && p != "443" {
					req.Host = net.JoinHostPort(name, p)
				}
			}
		}
	}
	resp, err := client(tlsCfg).Do(req)
	if err != nil {
		return false, fmt.Sprintf("%s %s %s", m, target, failure(ctx, tctx, err, timeout))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return false, fmt.Sprintf("%s %s → %d; reading the body %s", m, target, resp.StatusCode, failure(ctx, tctx, err, timeout))
	}

	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	detail := fmt.Sprintf("%s %s → %d", m, target, resp.StatusCode)
	ok := resp.StatusCode == want
	if !ok {
		detail += fmt.Sprintf(" (want %d)", want)
	}
	problems := headerProblems(c.ExpectHeaders, resp.Header)
	if c.ExpectBody != "" && !strings.Contains(string(body), c.ExpectBody) {
		problems = append([]string{fmt.Sprintf("body does not contain %q", c.ExpectBody)}, problems...)
	}
	for _, p := range problems {
		detail += "; " + p
		ok = false
	}
	if ok {
		return true, detail
	}
	return false, detail + "; body: " + excerpt(body)
}

// headerProblems compares expected headers (names case-insensitive, exact values,
// "*" = present) with the response's, in name order.
func headerProblems(want map[string]string, got http.Header) []string {
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		values := got.Values(name)
		switch {
		case len(values) == 0:
			out = append(out, fmt.Sprintf("header %s missing", name))
		case want[name] == "*":
		default:
			found := false
			for _, v := range values {
				found = found || v == want[name]
			}
			if !found {
				out = append(out, fmt.Sprintf("header %s is %q (want %q)", name, strings.Join(values, ", "), want[name]))
			}
		}
	}
	return out
}

// client sends one request to a loopback address and nowhere else: no proxy from
// the environment, no redirects followed (the redirect status is the answer), and
// a dialer that refuses a name such as localhost resolving off the host. tlsCfg
// is the TLS of an https request (nil: the system's roots, the URL's host).
func client(tlsCfg *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       loopback.Dialer().DialContext,
			TLSClientConfig:   tlsCfg,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// failure words a transport error: a timeout, a cancellation, or the cause.
func failure(parent, tctx context.Context, err error, timeout time.Duration) string {
	switch {
	case parent.Err() != nil:
		return "was canceled: the deployment stopped"
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s", timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return "failed: " + err.Error()
}

// excerpt is the start of a body on one line, at most bodyExcerpt bytes.
func excerpt(body []byte) string {
	if len(body) == 0 {
		return "(empty)"
	}
	return oneLine(shorten(string(body), bodyExcerpt))
}
