package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	checkTimeout  = 10 * time.Second // one request
	checkAttempts = 5                // connection errors are retried: a service without healthcheck may not listen yet
	checkBackoff  = time.Second
	maxBody       = 1 << 20
)

// runChecks runs the checks one after the other and records each outcome.
// Only connection errors are retried; a wrong answer fails at once.
func (r *run) runChecks(ctx context.Context) error {
	hc := &http.Client{
		Timeout: checkTimeout,
		// A redirect is an answer to check, and may point off this machine.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	var failed []string
	for _, c := range r.o.Checks {
		if c.Path == "" {
			c.Path = "/"
		}
		if c.ExpectStatus == 0 {
			c.ExpectStatus = http.StatusOK
		}
		res := r.check(ctx, hc, c)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.mu.Lock()
		r.checks = append(r.checks, res)
		r.mu.Unlock()
		verdict := "ok"
		if !res.OK {
			verdict = "FAILED"
			failed = append(failed, fmt.Sprintf("%s %s on %d: %s", c.Service, c.Path, c.ContainerPort, res.Detail))
		}
		r.progress("check %s GET %s on %d: %s: %s", c.Service, c.Path, c.ContainerPort, verdict, res.Detail)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: %w: %d of %d failed: %s", r.what(), ErrChecksFailed, len(failed), len(r.o.Checks), strings.Join(failed, "; "))
	}
	return nil
}

func (r *run) check(ctx context.Context, hc *http.Client, c Check) CheckResult {
	res := CheckResult{Check: c}
	r.mu.Lock()
	port := r.services[c.Service].hostPorts[c.ContainerPort]
	r.mu.Unlock()
	if port == 0 {
		res.Detail = fmt.Sprintf("container port %d is not published (the service did not start)", c.ContainerPort)
		return res
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + c.Path
	var (
		resp *http.Response
		body []byte
		err  error
	)
	for attempt := 1; ; attempt++ {
		resp, body, err = get(ctx, hc, url)
		if err == nil || attempt == checkAttempts || ctx.Err() != nil {
			break
		}
		r.log.Debug("integration check: retrying", "url", url, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(checkBackoff):
		}
	}
	if err != nil {
		res.Detail = fmt.Sprintf("GET %s: %s", url, err)
		return res
	}
	res.Detail, res.OK = verdict(c, resp, body)
	res.Detail = fmt.Sprintf("GET %s: %s", url, res.Detail)
	return res
}

func get(ctx context.Context, hc *http.Client, url string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) && uerr.Unwrap() != nil {
			err = uerr.Unwrap() // drop the method and URL: the detail names them
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the body: %w", err)
	}
	return resp, body, nil
}

// verdict compares an answer with what the check expects and describes it.
func verdict(c Check, resp *http.Response, body []byte) (string, bool) {
	if resp.StatusCode != c.ExpectStatus {
		return fmt.Sprintf("status %d, want %d%s", resp.StatusCode, c.ExpectStatus, excerpt(body)), false
	}
	if c.ExpectBody != "" && !strings.Contains(string(body), c.ExpectBody) {
		return fmt.Sprintf("status %d, but the body does not contain %q%s", resp.StatusCode, c.ExpectBody, excerpt(body)), false
	}
	for _, name := range slices.Sorted(maps.Keys(c.ExpectHeaders)) {
		want := c.ExpectHeaders[name]
		if got := resp.Header.Get(name); got != want {
			return fmt.Sprintf("status %d, but header %s is %q, want %q", resp.StatusCode, name, got, want), false
		}
	}
	return fmt.Sprintf("status %d", resp.StatusCode), true
}

func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return ""
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return fmt.Sprintf(" (body: %s)", s)
}
