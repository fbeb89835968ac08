package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

var (
	secret = []byte("It's a Secret to Everybody")
	sha1   = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	sha2   = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
)

func sign(body, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func githubRequest(event string, body []byte, signature string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	if signature != "" {
		r.Header.Set("X-Hub-Signature-256", signature)
	}
	return r
}

func pushBody(ref, before, after string, deleted bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref": ref, "before": before, "after": after, "created": false, "deleted": deleted, "forced": false,
		"repository":  map[string]any{"id": 1, "name": "bluemed", "full_name": "acme/bluemed"},
		"pusher":      map[string]any{"name": "octocat", "email": "octocat@example.com"},
		"sender":      map[string]any{"login": "octocat", "id": 1},
		"head_commit": map[string]any{"id": after, "message": "fix: health check"},
		"commits":     []any{},
	})
	return b
}

func prBody(action string) []byte {
	b, _ := json.Marshal(map[string]any{
		"action": action, "number": 7, "before": sha1, "after": sha2,
		"pull_request": map[string]any{
			"number": 7, "state": "open",
			"head": map[string]any{"ref": "feature/login", "sha": sha2, "repo": map[string]any{"full_name": "fork/bluemed"}},
			"base": map[string]any{"ref": "develop", "sha": sha1, "repo": map[string]any{"full_name": "acme/bluemed"}},
		},
		"repository": map[string]any{"full_name": "acme/bluemed"},
		"sender":     map[string]any{"login": "hubot"},
	})
	return b
}

func TestParseGitHubPush(t *testing.T) {
	body := pushBody("refs/heads/develop", sha1, sha2, false)
	got, err := ParseGitHub(githubRequest("push", body, sign(body, secret)), secret)
	if err != nil {
		t.Fatal(err)
	}
	want := Trigger{Kind: KindPush, Repo: "acme/bluemed", Branch: "develop", Commit: sha2, Before: sha1, Sender: "octocat"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseGitHubFormEncoded(t *testing.T) {
	// GitHub can send the JSON in a form field; the signature covers the form body.
	form := []byte("payload=" + url.QueryEscape(string(pushBody("refs/heads/main", zeroSHA, sha2, false))))
	r := githubRequest("push", form, sign(form, secret))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got, err := ParseGitHub(r, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Branch != "main" || got.Commit != sha2 || got.Before != "" {
		t.Errorf("got %+v", got)
	}
}

func TestParseGitHubPullRequest(t *testing.T) {
	for _, action := range []string{"opened", "synchronize", "reopened"} {
		body := prBody(action)
		got, err := ParseGitHub(githubRequest("pull_request", body, sign(body, secret)), secret)
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		want := Trigger{Kind: KindPullRequest, Repo: "acme/bluemed", Branch: "feature/login", Commit: sha2,
			Before: sha1, PRNumber: 7, PRAction: action, Sender: "hubot", Base: "develop"}
		if got != want {
			t.Errorf("%s: got %+v\nwant %+v", action, got, want)
		}
	}
}

func TestParseGitHubIgnored(t *testing.T) {
	cases := map[string]struct {
		event string
		body  []byte
	}{
		"tag push":       {"push", pushBody("refs/tags/v1.0.0", zeroSHA, sha2, false)},
		"branch deleted": {"push", pushBody("refs/heads/old", sha1, zeroSHA, true)},
		"notes ref":      {"push", pushBody("refs/notes/commits", sha1, sha2, false)},
		"pr closed":      {"pull_request", prBody("closed")},
		"pr labeled":     {"pull_request", prBody("labeled")},
		"ping":           {"ping", []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)},
		"issues":         {"issues", []byte(`{"action":"opened"}`)},
	}
	for name, c := range cases {
		_, err := ParseGitHub(githubRequest(c.event, c.body, sign(c.body, secret)), secret)
		var ie *IgnoredError
		if !errors.Is(err, ErrIgnored) || !errors.As(err, &ie) || ie.Reason == "" {
			t.Errorf("%s: err = %v, want an IgnoredError", name, err)
		}
	}
}

func TestParseGitHubUnauthorized(t *testing.T) {
	body := pushBody("refs/heads/develop", sha1, sha2, false)
	other := pushBody("refs/heads/main", sha1, sha2, false)
	sha1sig := func() string { m := hmac.New(sha256.New, secret); return "sha1=" + hex.EncodeToString(m.Sum(nil)) }()
	cases := map[string]struct {
		r      *http.Request
		secret []byte
	}{
		"unsigned":            {githubRequest("push", body, ""), secret},
		"wrong key":           {githubRequest("push", body, sign(body, []byte("guess"))), secret},
		"other body's sig":    {githubRequest("push", body, sign(other, secret)), secret},
		"not hex":             {githubRequest("push", body, "sha256=zz"), secret},
		"sha1 prefix":         {githubRequest("push", body, sha1sig), secret},
		"empty secret":        {githubRequest("push", body, sign(body, nil)), nil},
		"truncated signature": {githubRequest("push", body, sign(body, secret)[:20]), secret},
	}
	for name, c := range cases {
		_, err := ParseGitHub(c.r, c.secret)
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: err = %v, want ErrUnauthorized", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "sha256=") {
			t.Errorf("%s: error quotes the signature: %v", name, err)
		}
	}
}

func TestParseGitHubBadPayload(t *testing.T) {
	cases := map[string]*http.Request{}
	add := func(name, event string, body []byte) { cases[name] = githubRequest(event, body, sign(body, secret)) }
	add("not json", "push", []byte("{"))
	add("no event header", "", pushBody("refs/heads/develop", sha1, sha2, false))
	add("short after", "push", pushBody("refs/heads/develop", sha1, "abc", false))
	add("bad branch", "push", pushBody("refs/heads/-rf", sha1, sha2, false))
	body := pushBody("refs/heads/develop", sha1, sha2, false)
	r := githubRequest("push", body, sign(body, secret))
	r.Header.Set("Content-Type", "text/plain")
	cases["content type"] = r
	for name, r := range cases {
		_, err := ParseGitHub(r, secret)
		if !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: err = %v, want ErrBadPayload", name, err)
		}
	}
}

func genericRequest(secretHeader, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/generic", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if secretHeader != "" {
		r.Header.Set(GenericSecretHeader, secretHeader)
	}
	return r
}

func TestParseGeneric(t *testing.T) {
	got, err := ParseGeneric(genericRequest("s3cret", `{"branch":"develop","commit":"`+sha2+`"}`), "s3cret")
	if want := (Trigger{Kind: KindPush, Branch: "develop", Commit: sha2}); err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	got, err = ParseGeneric(genericRequest("s3cret", `{"kind":"pull_request","branch":"feature/x"}`), "s3cret")
	if err != nil || got.Kind != KindPullRequest || got.Commit != "" || got.Base != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
	got, err = ParseGeneric(genericRequest("s3cret", `{"kind":"pull_request","branch":"feature/x","base":"develop"}`), "s3cret")
	if err != nil || got.Base != "develop" {
		t.Fatalf("a pull request's base: got %+v, %v", got, err)
	}
	if _, err := ParseGeneric(genericRequest("s3cret", `{"kind":"pull_request","branch":"feature/x","base":"-x"}`), "s3cret"); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("a bad base branch: %v", err)
	}

	for name, r := range map[string]*http.Request{
		"wrong secret":   genericRequest("guess", `{"branch":"develop"}`),
		"no secret":      genericRequest("", `{"branch":"develop"}`),
		"secret prefix":  genericRequest("s3cre", `{"branch":"develop"}`),
		"secret + extra": genericRequest("s3cret!", `{"branch":"develop"}`),
	} {
		if _, err := ParseGeneric(r, "s3cret"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: err = %v, want ErrUnauthorized", name, err)
		}
	}
	if _, err := ParseGeneric(genericRequest("", `{"branch":"develop"}`), ""); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("empty configured secret: err = %v, want ErrUnauthorized", err)
	}

	for name, body := range map[string]string{
		"not json":      `branch=develop`,
		"no branch":     `{"commit":"` + sha2 + `"}`,
		"short commit":  `{"branch":"develop","commit":"abc123"}`,
		"unknown kind":  `{"branch":"develop","kind":"tag"}`,
		"unknown field": `{"branch":"develop","ref":"x"}`,
		"two objects":   `{"branch":"develop"}{"branch":"main"}`,
		"bad branch":    `{"branch":"a..b"}`,
	} {
		if _, err := ParseGeneric(genericRequest("s3cret", body), "s3cret"); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: err = %v, want ErrBadPayload", name, err)
		}
	}
}

// TestHandler drives the real handler over HTTP on 127.0.0.1.
func TestHandler(t *testing.T) {
	var (
		mu       sync.Mutex
		got      []Trigger
		failNext error
	)
	logs := &testenv.Buffer{}
	srv := httptest.NewServer(Handler(HandlerConfig{
		GitHubSecret: secret, GenericSecret: "generic-s3cret",
		OnTrigger: func(tr Trigger) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, tr)
			err := failNext
			failNext = nil
			return err
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}))
	t.Cleanup(srv.Close)

	post := func(path string, hdr map[string]string, body []byte) (int, Response) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r Response
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s answered %d with non-JSON %q", path, resp.StatusCode, b)
		}
		return resp.StatusCode, r
	}
	gh := func(event string, body []byte, sig string) map[string]string {
		return map[string]string{"X-GitHub-Event": event, "X-Hub-Signature-256": sig, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
	}
	calls := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	push := pushBody("refs/heads/develop", sha1, sha2, false)
	forgedSig := sign(push, []byte("attacker"))
	steps := []struct {
		name   string
		path   string
		hdr    map[string]string
		body   []byte
		code   int
		status string
		calls  int
	}{
		{"valid push", "/webhooks/github", gh("push", push, sign(push, secret)), push, 200, "accepted", 1},
		{"forged", "/webhooks/github", gh("push", push, forgedSig), push, 401, "error", 1},
		{"unsigned", "/webhooks/github", gh("push", push, ""), push, 401, "error", 1},
		{"pr synchronize", "/webhooks/github", gh("pull_request", prBody("synchronize"), sign(prBody("synchronize"), secret)), prBody("synchronize"), 200, "accepted", 2},
		{"tag", "/webhooks/github", gh("push", pushBody("refs/tags/v1", zeroSHA, sha2, false), sign(pushBody("refs/tags/v1", zeroSHA, sha2, false), secret)), pushBody("refs/tags/v1", zeroSHA, sha2, false), 202, "ignored", 2},
		{"bad json", "/webhooks/github", gh("push", []byte("{"), sign([]byte("{"), secret)), []byte("{"), 400, "error", 2},
		{"generic", "/webhooks/generic", map[string]string{GenericSecretHeader: "generic-s3cret"}, []byte(`{"branch":"main"}`), 200, "accepted", 3},
		{"generic wrong secret", "/webhooks/generic", map[string]string{GenericSecretHeader: "nope"}, []byte(`{"branch":"main"}`), 401, "error", 3},
	}
	for _, s := range steps {
		code, resp := post(s.path, s.hdr, s.body)
		if code != s.code || resp.Status != s.status || calls() != s.calls {
			t.Errorf("%s: %d %+v after %d OnTrigger calls; want %d %q after %d", s.name, code, resp, calls(), s.code, s.status, s.calls)
		}
	}
	mu.Lock()
	if got[0] != (Trigger{Kind: KindPush, Repo: "acme/bluemed", Branch: "develop", Commit: sha2, Before: sha1, Sender: "octocat",
		Source: "github", Delivery: sign(push, secret)}) ||
		got[1].Kind != KindPullRequest || got[2].Branch != "main" || got[2].Source != "generic" || got[2].Delivery != "" {
		t.Errorf("triggers = %+v", got)
	}
	failNext = fmt.Errorf("daemon is shutting down")
	mu.Unlock()
	if code, _ := post("/webhooks/github", gh("push", push, sign(push, secret)), push); code != http.StatusServiceUnavailable {
		t.Errorf("OnTrigger failure answered %d, want 503", code)
	}
	mu.Lock()
	failNext = fmt.Errorf("no pipeline for branch: %w", ErrIgnored)
	mu.Unlock()
	if code, _ := post("/webhooks/github", gh("push", push, sign(push, secret)), push); code != http.StatusAccepted {
		t.Errorf("OnTrigger ErrIgnored answered %d, want 202", code)
	}

	// GET is not a webhook.
	resp, err := srv.Client().Get(srv.URL + "/webhooks/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET answered %d, want 405", resp.StatusCode)
	}

	out := logs.String()
	for _, leak := range []string{string(secret), "generic-s3cret", sign(push, secret), forgedSig, "sha256="} {
		if strings.Contains(out, leak) {
			t.Errorf("log contains %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "webhook refused") || !strings.Contains(out, "delivery=72d3162e") || !strings.Contains(out, "source=github") {
		t.Errorf("log lacks the refusal:\n%s", out)
	}
}

func TestHandlerRouteDisabled(t *testing.T) {
	srv := httptest.NewServer(Handler(HandlerConfig{GenericSecret: "x", OnTrigger: func(Trigger) error {
		t.Error("OnTrigger called on a disabled route")
		return nil
	}}))
	t.Cleanup(srv.Close)
	body := pushBody("refs/heads/develop", sha1, sha2, false)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", sign(body, nil)) // what an empty secret would accept
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("disabled route answered %d, want 404", resp.StatusCode)
	}
}

// Attack (disk and goroutines): a delivery is read whole before its
// signature can be checked, a body over 64 KiB into a temporary file, and
// nothing bounded how many were read at once or for how long: anyone could
// trickle a thousand 25 MB bodies and fill the disk. Past MaxSpilling (or
// MaxSpillingPerClient) a large delivery is refused at once (503), a small
// one is still taken, and a body not read within BodyTimeout ends its
// delivery; then large deliveries are read again.
func TestAttackTrickledDeliveriesAreBounded(t *testing.T) {
	var accepted atomic.Int32
	srv := httptest.NewServer(Handler(HandlerConfig{GitHubSecret: secret, MaxSpilling: 2, MaxSpillingPerClient: 2, BodyTimeout: 500 * time.Millisecond,
		OnTrigger: func(Trigger) error { accepted.Add(1); return nil }}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	var slow []net.Conn
	for range 2 { // 70 KB sent of 100 KB: on disk, waiting for the rest
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=%s\r\nContent-Length: 100000\r\n\r\n{\"ref\":\"%s", strings.Repeat("0", 64), strings.Repeat("x", 70000))
		slow = append(slow, c)
	}
	time.Sleep(150 * time.Millisecond) // both are on disk
	push := pushBody("refs/heads/main", strings.Repeat("1", 40), strings.Repeat("2", 40), false)
	large := append(bytes.TrimSuffix(bytes.TrimSpace(push), []byte("}")), []byte(`,"padding":"`+strings.Repeat("x", 70000)+`"}`)...)
	deliver := func(body []byte) int { return deliverPush(t, srv.URL, body) }
	start := time.Now()
	if code := deliver(large); code != http.StatusServiceUnavailable || time.Since(start) > 300*time.Millisecond {
		t.Fatalf("a large delivery while two trickle on disk: %d after %s, want 503 at once", code, time.Since(start))
	}
	if code := deliver(push); code != http.StatusOK || accepted.Load() != 1 {
		t.Fatalf("a small delivery while two trickle on disk: %d, want 200", code)
	}
	for i, c := range slow {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(c)
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 400") {
			t.Errorf("trickled delivery %d after the body timeout: %q, want 400 or the connection cut", i, b)
		}
	}
	if code := deliver(large); code != http.StatusOK || accepted.Load() != 2 {
		t.Fatalf("a large delivery once the trickled ones ended: %d (%d accepted), want 200", code, accepted.Load())
	}
}

// Attack (found by a review of the bound above): when every delivery took
// a slot, 32 anonymous connections trickling a few bytes each held GitHub's
// signed deliveries off (503), and GitHub does not deliver again on its
// own. Bodies held in memory take no slot.
func TestAttackAnonymousTricklesDoNotHoldSignedDeliveriesOff(t *testing.T) {
	var accepted atomic.Int32
	srv := httptest.NewServer(Handler(HandlerConfig{GitHubSecret: secret, OnTrigger: func(Trigger) error { accepted.Add(1); return nil }}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for i := range 2 * DefaultMaxSpilling {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"+
			"X-Hub-Signature-256: sha256=%064d\r\nContent-Length: 1000\r\n\r\n{", i)
	}
	time.Sleep(200 * time.Millisecond)
	push := pushBody("refs/heads/main", strings.Repeat("1", 40), strings.Repeat("2", 40), false)
	if code := deliverPush(t, srv.URL, push); code != http.StatusOK || accepted.Load() != 1 {
		t.Fatalf("a signed delivery answered %d (%d accepted) while %d anonymous connections trickle", code, accepted.Load(), 2*DefaultMaxSpilling)
	}
}

// deliverPush posts body to base's GitHub route as GitHub sends a push,
// signed with secret, and returns the answer's status.
func deliverPush(t *testing.T, base string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", sign(body, secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
