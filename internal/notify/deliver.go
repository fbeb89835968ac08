package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The retry loop is written here rather than taken from a retrying HTTP client
// because those log and wrap errors with the request URL, which is a secret.

// attemptResult says what one POST did and whether it is worth repeating.
type attemptResult struct {
	status     int           // 0 when no response came
	err        error         // redacted: never holds the URL
	retry      bool          // transient: worth another attempt
	retryAfter time.Duration // from a 429's Retry-After, 0 if none
}

func (n *Notifier) deliver(t Target, ev Event) {
	log := n.opt.Logger.With("target", t.Name, "event", ev.Kind, "execution", ev.Execution)
	payload, err := body(t.Kind, ev)
	if err != nil {
		log.Warn("notification not sent: cannot encode", "err", err)
		return
	}
	for attempt := 0; ; attempt++ {
		r := n.post(t, payload)
		if r.err == nil {
			log.Debug("notification sent", "status", r.status, "attempts", attempt+1)
			return
		}
		if !r.retry || attempt >= n.opt.Retries {
			log.Warn("notification not delivered", "attempts", attempt+1, "err", r.err)
			return
		}
		wait := n.backoff(attempt)
		if r.retryAfter > 0 {
			if r.retryAfter > n.opt.MaxBackoff {
				log.Warn("notification not delivered: target asks to wait too long", "retry_after", r.retryAfter, "attempts", attempt+1)
				return
			}
			wait = max(wait, r.retryAfter)
		}
		log.Debug("notification attempt failed; retrying", "attempt", attempt+1, "in", wait, "err", r.err)
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			log.Warn("notification abandoned at close", "attempts", attempt+1, "err", r.err)
			return
		}
	}
}

// backoff is Backoff·2^attempt, capped, with "equal jitter": half fixed, half
// random, so that retries spread out but never come back immediately.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.opt.Backoff
	for range attempt {
		d *= 2
		if d >= n.opt.MaxBackoff {
			d = n.opt.MaxBackoff
			break
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

func (n *Notifier) post(t Target, payload []byte) attemptResult {
	ctx, cancel := context.WithTimeout(n.ctx, n.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(payload))
	if err != nil {
		return attemptResult{err: redact(err, t.URL)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover-notify")
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	resp, err := n.opt.Client.Do(req)
	if err != nil {
		// Network errors, timeouts and resets are transient; a Close that
		// gave up is not worth retrying.
		return attemptResult{err: redact(err, t.URL), retry: n.ctx.Err() == nil}
	}
	defer resp.Body.Close()
	// Read a little of the body: Slack explains refusals there ("invalid_token"),
	// and draining lets the connection be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))

	r := attemptResult{status: resp.StatusCode}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return r
	case resp.StatusCode == http.StatusTooManyRequests:
		r.retry = true
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case resp.StatusCode >= 500:
		r.retry = true
	}
	msg := strings.TrimSpace(string(snippet))
	if msg != "" {
		msg = ": " + redactString(msg, t.URL)
	}
	r.err = fmt.Errorf("HTTP %d%s", resp.StatusCode, msg)
	return r
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact turns an error from net/http, whose text holds the request URL, into
// one that does not. The underlying cause (refused, timeout, DNS) is kept.
func redact(err error, rawURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out"
	}
	return errors.New(redactString(msg, rawURL))
}

// redactString removes the URL, and its host, from s: what remains still says
// what went wrong ("connection refused") but not where the secret points.
// A target's answer may quote the URL in another form than it was sent (a
// JSON body escapes its slashes, "hooks\/T0\/B0\/TOKEN"; a message names the
// token alone), so every part of the path and every query value long enough
// to be a secret is replaced too, escaped and decoded, longest first.
func redactString(s, rawURL string) string {
	if rawURL == "" {
		return s
	}
	s = strings.ReplaceAll(s, rawURL, "[url]")
	u, err := url.Parse(rawURL)
	if err != nil {
		return s
	}
	parts := []string{u.RawQuery, u.EscapedPath(), u.Path, u.Host, u.Hostname(), u.User.String()}
	for _, p := range []string{u.EscapedPath(), u.Path} {
		parts = append(parts, strings.ReplaceAll(p, "/", `\/`))
		parts = append(parts, strings.Split(p, "/")...)
	}
	for k, vs := range u.Query() {
		parts = append(parts, k)
		parts = append(parts, vs...)
	}
	for _, kv := range strings.Split(u.RawQuery, "&") {
		_, v, _ := strings.Cut(kv, "=")
		parts = append(parts, v)
	}
	if p, ok := u.User.Password(); ok {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) })
	for _, part := range parts {
		if len(part) >= 4 {
			s = strings.ReplaceAll(s, part, "[redacted]")
		}
	}
	return s
}
