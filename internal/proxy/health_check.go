package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Health check defaults for zero fields of HealthCheck.
const (
	defaultHealthPath      = "/"
	defaultHealthInterval  = 5 * time.Second
	defaultHealthTimeout   = 2 * time.Second
	defaultThreshold       = 2
	defaultSuccessCodes    = "200-399"
	defaultDeregisterDelay = 30 * time.Second
)

// healthConfig is a HealthCheck with defaults applied and codes parsed.
type healthConfig struct {
	path               string
	interval, timeout  time.Duration
	healthy, unhealthy int
	codes              codeRanges
}

func newHealthConfig(h HealthCheck) *healthConfig {
	c := &healthConfig{
		path:      h.Path,
		interval:  time.Duration(h.Interval),
		timeout:   time.Duration(h.Timeout),
		healthy:   h.HealthyThreshold,
		unhealthy: h.UnhealthyThreshold,
	}
	if c.path == "" {
		c.path = defaultHealthPath
	}
	if c.interval <= 0 {
		c.interval = defaultHealthInterval
	}
	if c.timeout <= 0 {
		c.timeout = min(defaultHealthTimeout, c.interval)
	}
	if c.healthy <= 0 {
		c.healthy = defaultThreshold
	}
	if c.unhealthy <= 0 {
		c.unhealthy = defaultThreshold
	}
	codes := h.SuccessCodes
	if codes == "" {
		codes = defaultSuccessCodes
	}
	var err error
	if c.codes, err = parseCodes(codes); err != nil { // Validate rejected it already
		c.codes, _ = parseCodes(defaultSuccessCodes)
	}
	return c
}

// codeRanges is a parsed success code list such as "200,204" or "200-299".
type codeRanges [][2]int

func parseCodes(s string) (codeRanges, error) {
	var out codeRanges
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("%q is not a status code list: write codes and ranges between 100 and 599 such as \"200\", \"200-299\" or \"200,204\"", s)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

func (c codeRanges) match(code int) bool {
	for _, r := range c {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}

// healthClient sends health checks on connections of their own, opened per
// check, so a check proves that new connections are accepted, and never
// competes with traffic for pooled ones. An answer head is bounded as the
// data plane bounds a target's (upReadBuffer: a larger one is a 502 there),
// not by Go's 10 MiB: a hostile target's huge heads, checked every interval,
// took the proxy's heap from 15 to 130 MiB.
var healthClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives:      true,
		DisableCompression:     true,
		DialContext:            (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxResponseHeaderBytes: upReadBuffer,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// checkOnce sends one health check to addr and returns why it failed, or
// "". A check the proxy could not make (no socket for it: see
// outOfResources) returns that error instead, and no verdict.
func checkOnce(ctx context.Context, addr string, c *healthConfig) (reason string, notMade error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.path, nil)
	if err != nil {
		return err.Error(), nil
	}
	req.Header.Set("User-Agent", "cutover-health-check/1")
	resp, err := healthClient.Do(req)
	if err != nil {
		switch {
		case outOfResources(err):
			return "", unwrapURLError(err)
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Sprintf("GET %s: no answer within %s", c.path, c.timeout), nil
		case isConnRefused(err):
			return fmt.Sprintf("GET %s: connection refused (nothing listens on %s)", c.path, addr), nil
		}
		return fmt.Sprintf("GET %s: %v", c.path, unwrapURLError(err)), nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !c.codes.match(resp.StatusCode) {
		return fmt.Sprintf("GET %s: status %d", c.path, resp.StatusCode), nil
	}
	return "", nil
}

// runHealthChecks checks t every interval of its group until ctx ends. The
// first check is immediate so new targets become healthy quickly.
func (t *target) runHealthChecks(ctx context.Context) {
	defer close(t.checksDone)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		c := t.group.health.Load()
		reason, notMade := checkOnce(ctx, t.addr, c)
		if ctx.Err() != nil {
			return
		}
		if notMade != nil {
			// The proxy's own shortage (a client holding thousands of
			// connections, say) is not the target's failure: its state
			// stays as it was until a check can be made.
			warnOutOfResources(t.log, "health check not made", notMade)
		} else {
			t.observe(reason, c)
		}
		timer.Reset(c.interval)
	}
}
