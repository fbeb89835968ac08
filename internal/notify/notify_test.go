package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// recorder is a webhook endpoint on 127.0.0.1 that answers with the statuses
// in script (then 200) and keeps what it received.
type recorder struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	times   []time.Time
	script  []func(w http.ResponseWriter)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	i := len(rec.bodies)
	rec.bodies = append(rec.bodies, b)
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.times = append(rec.times, time.Now())
	var f func(http.ResponseWriter)
	if i < len(rec.script) {
		f = rec.script[i]
	}
	rec.mu.Unlock()
	if f != nil {
		f(w)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.bodies)
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { http.Error(w, http.StatusText(code), code) }
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

func newNotifier(t *testing.T, targets []Target, l *testenv.Buffer) *Notifier {
	t.Helper()
	if l == nil {
		l = &testenv.Buffer{}
	}
	n := New(targets, Options{
		Logger:  slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Timeout: 5 * time.Second,
	})
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func closeN(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

var sample = Event{
	Kind: ExecutionFailed, Execution: "ex-42", Project: "bluemed",
	Commit: "0123456789abcdef0123456789abcdef01234567", Branch: "develop",
	Status: "failed", Message: "unit tests failed in backend <lint>", URL: "http://127.0.0.1:9/x/ex-42",
	Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
}

func TestSlackPayload(t *testing.T) {
	rec := &recorder{}
	n := newNotifier(t, []Target{{Name: "team", Kind: KindSlack, URL: serve(t, rec) + "/services/T/B/x"}}, nil)
	n.Notify(context.Background(), sample)
	closeN(t, n)

	if rec.count() != 1 {
		t.Fatalf("got %d requests, want 1", rec.count())
	}
	if ct := rec.headers[0].Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var m struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type, Text string
			} `json:"text"`
			Elements []struct{ Type, Text string } `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(rec.bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Execution failed", "*bluemed*", "`develop`", "`0123456789ab`", "ex-42", "&lt;lint&gt;", "<http://127.0.0.1:9/x/ex-42|Open>"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text %q lacks %q", m.Text, want)
		}
	}
	if len(m.Blocks) != 2 || m.Blocks[0].Type != "section" || m.Blocks[0].Text.Type != "mrkdwn" || m.Blocks[0].Text.Text != m.Text {
		t.Errorf("section block = %+v", m.Blocks)
	}
	if len(m.Blocks) == 2 && (m.Blocks[1].Type != "context" || !strings.Contains(m.Blocks[1].Elements[0].Text, "2026-05-01T12:00:00Z")) {
		t.Errorf("context block = %+v", m.Blocks[1])
	}
}

func TestWebhookPayload(t *testing.T) {
	rec := &recorder{}
	n := newNotifier(t, []Target{{Name: "monday", Kind: KindWebhook, URL: serve(t, rec) + "/hook?token=s3cret",
		Headers: map[string]string{"Authorization": "Bearer abc"}}}, nil)
	n.Notify(context.Background(), sample)
	closeN(t, n)

	if rec.count() != 1 {
		t.Fatalf("got %d requests, want 1", rec.count())
	}
	if h := rec.headers[0].Get("Authorization"); h != "Bearer abc" {
		t.Errorf("Authorization = %q", h)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"event": "execution.failed", "execution": "ex-42", "pipeline": "bluemed",
		"commit": sample.Commit, "branch": "develop", "status": "failed",
		"message": sample.Message, "url": sample.URL, "time": "2026-05-01T12:00:00Z",
	}
	if len(m) != len(want) {
		t.Errorf("keys = %v, want %v", keys(m), keys(want))
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestEventFiltering(t *testing.T) {
	all, onlyFailed := &recorder{}, &recorder{}
	n := newNotifier(t, []Target{
		{Name: "all", Kind: KindWebhook, URL: serve(t, all)},
		{Name: "failures", Kind: KindWebhook, URL: serve(t, onlyFailed), Events: []string{ExecutionFailed, DeploymentRolledBack}},
	}, nil)
	for _, k := range Kinds {
		ev := sample
		ev.Kind = k
		n.Notify(context.Background(), ev)
	}
	closeN(t, n)

	if all.count() != len(Kinds) {
		t.Errorf("unfiltered target got %d events, want %d", all.count(), len(Kinds))
	}
	var got []string
	for _, b := range onlyFailed.bodies {
		var p Payload
		_ = json.Unmarshal(b, &p)
		got = append(got, p.Event)
	}
	if want := []string{ExecutionFailed, DeploymentRolledBack}; !slices.Equal(got, want) {
		t.Errorf("filtered target got %v, want %v (in order)", got, want)
	}
}

func TestRetryAfterTwo503(t *testing.T) {
	rec := &recorder{script: []func(http.ResponseWriter){status(503), status(503)}}
	l := &testenv.Buffer{}
	n := newNotifier(t, []Target{{Name: "flaky", Kind: KindWebhook, URL: serve(t, rec)}}, l)
	n.Notify(context.Background(), sample)
	closeN(t, n)

	if rec.count() != 3 {
		t.Fatalf("got %d attempts, want 3", rec.count())
	}
	if !strings.Contains(l.String(), "notification sent") || !strings.Contains(l.String(), "attempts=3") {
		t.Errorf("log does not show success after 3 attempts:\n%s", l)
	}
}

func TestNoRetryOn400(t *testing.T) {
	rec := &recorder{script: []func(http.ResponseWriter){status(400)}}
	l := &testenv.Buffer{}
	n := newNotifier(t, []Target{{Name: "broken", Kind: KindSlack, URL: serve(t, rec)}}, l)
	n.Notify(context.Background(), sample)
	closeN(t, n)

	if rec.count() != 1 {
		t.Fatalf("got %d attempts, want 1", rec.count())
	}
	if !strings.Contains(l.String(), "notification not delivered") || !strings.Contains(l.String(), "HTTP 400") {
		t.Errorf("log lacks the refusal:\n%s", l)
	}
}

func TestGivesUpAfterRetries(t *testing.T) {
	rec := &recorder{script: slices.Repeat([]func(http.ResponseWriter){status(502)}, 10)}
	n := newNotifier(t, []Target{{Name: "down", Kind: KindWebhook, URL: serve(t, rec)}}, nil)
	n.Notify(context.Background(), sample)
	closeN(t, n)
	if rec.count() != 6 { // first attempt + 5 retries (the default)
		t.Fatalf("got %d attempts, want 6", rec.count())
	}
}

func Test429HonoursRetryAfter(t *testing.T) {
	rec := &recorder{script: []func(http.ResponseWriter){func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}}}
	l := &testenv.Buffer{}
	n := New([]Target{{Name: "limited", Kind: KindWebhook, URL: serve(t, rec)}}, Options{
		Logger:  slog.New(slog.NewTextHandler(l, nil)),
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Second,
	})
	n.Notify(context.Background(), sample)
	closeN(t, n)

	if rec.count() != 2 {
		t.Fatalf("got %d attempts, want 2", rec.count())
	}
	// A lower bound only: the retry must not come before the server allowed it.
	if gap := rec.times[1].Sub(rec.times[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, before Retry-After: 1", gap)
	}
}

func TestDeadURLNeitherBlocksNorLeaks(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there: connection refused
	secretURL := "http://" + addr + "/services/T0001/B0001/XyZsecretTOKEN?sig=abc123"

	l := &testenv.Buffer{}
	n := newNotifier(t, []Target{
		{Name: "dead-slack", Kind: KindSlack, URL: secretURL},
		{Name: "dead-hook", Kind: KindWebhook, URL: secretURL},
	}, l)
	n.Notify(context.Background(), sample) // must return although nothing answers
	closeN(t, n)

	out := l.String()
	if !strings.Contains(out, "notification not delivered") || !strings.Contains(out, "target=dead-slack") || !strings.Contains(out, "target=dead-hook") {
		t.Fatalf("no give-up line naming the targets:\n%s", out)
	}
	if !strings.Contains(out, "attempts=6") || !strings.Contains(out, "connection refused") {
		t.Errorf("give-up line does not say why or how often:\n%s", out)
	}
	for _, secret := range []string{secretURL, "XyZsecretTOKEN", "sig=abc123", "/services/", addr} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

// blocker holds each request until released (or the client gives up).
type blocker struct {
	entered chan struct{}
	release chan struct{}
	served  chan struct{}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Reading the body lets the server notice a client that hangs up, which
	// cancels r.Context().
	_, _ = io.ReadAll(r.Body)
	b.entered <- struct{}{}
	select {
	case <-b.release:
		close(b.served)
	case <-r.Context().Done():
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	b := &blocker{entered: make(chan struct{}, 1), release: make(chan struct{}), served: make(chan struct{})}
	n := newNotifier(t, []Target{{Name: "slow", Kind: KindWebhook, URL: serve(t, b)}}, nil)

	n.Notify(context.Background(), sample) // returns while the server holds the request
	<-b.entered

	closed := make(chan error, 1)
	go func() { closed <- n.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a delivery was in flight", err)
	default:
	}
	close(b.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-b.served:
	default:
		t.Fatal("Close returned before the delivery completed")
	}
	n.Notify(context.Background(), sample) // after Close: dropped, no panic
}

func TestCloseBoundedByContext(t *testing.T) {
	b := &blocker{entered: make(chan struct{}, 1), release: make(chan struct{}), served: make(chan struct{})}
	n := newNotifier(t, []Target{{Name: "stuck", Kind: KindWebhook, URL: serve(t, b)}}, nil)
	n.Notify(context.Background(), sample)
	<-b.entered

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want deadline exceeded", err)
	}
}

func TestNilNotifier(t *testing.T) {
	var n *Notifier
	n.Notify(context.Background(), sample)
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestValidateHidesURL(t *testing.T) {
	secret := "ftp://hooks.example/T/B/secretpart"
	bad := []Target{
		{Kind: KindSlack, URL: "http://127.0.0.1/x"},
		{Name: "a", Kind: "teams", URL: "http://127.0.0.1/x"},
		{Name: "b", Kind: KindSlack, URL: secret},
		{Name: "c", Kind: KindWebhook, URL: "http://127.0.0.1/x", Events: []string{"execution.finished"}},
	}
	for _, tg := range bad {
		err := tg.Validate()
		if err == nil {
			t.Errorf("%+v: no error", tg)
			continue
		}
		if strings.Contains(err.Error(), "secretpart") {
			t.Errorf("error reveals the URL: %v", err)
		}
	}
	if err := (Target{Name: "ok", Kind: KindSlack, URL: "https://hooks.example/T/B/x"}).Validate(); err != nil {
		t.Errorf("valid target: %v", err)
	}

	// New skips the invalid target and still serves the valid one.
	rec := &recorder{}
	n := newNotifier(t, append(bad, Target{Name: "good", Kind: KindWebhook, URL: serve(t, rec)}), nil)
	n.Notify(context.Background(), sample)
	closeN(t, n)
	if rec.count() != 1 {
		t.Errorf("valid target got %d events, want 1", rec.count())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Fri, 01 May 2026 12:00:10 GMT": 10 * time.Second,
		"Fri, 01 May 2026 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	n := &Notifier{opt: Options{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for attempt, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		for range 20 {
			if d := n.backoff(attempt); d < base/2 || d > base {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
}
