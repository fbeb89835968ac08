package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// zeros is a body of n bytes that allocates nothing per read, so the
// memory a request costs is the receiver's, not the sender's.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// A forged webhook of 30 MB is refused having cost the daemon a small,
// fixed amount of memory: with a Content-Length over GitHub's limit it is
// refused before anything is read; streamed without one (chunked) it is
// hashed as it arrives and never held in memory. Nothing is triggered.
func TestForgedLargeWebhookIsRefusedWithoutBufferingIt(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(Handler(HandlerConfig{GitHubSecret: secret, OnTrigger: func(Trigger) error {
		calls.Add(1)
		return nil
	}}))
	t.Cleanup(srv.Close)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where a large body waits for its signature

	send := func(size int64, chunked bool) (int, uint64) {
		t.Helper()
		var body io.Reader = &zeros{n: size}
		if chunked {
			body = io.MultiReader(body) // hides the length: Transfer-Encoding chunked
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github", body)
		if !chunked {
			req.ContentLength = size
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sign([]byte("something else"), secret))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		resp, err := srv.Client().Do(req)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("sending %d bytes (chunked %v): %v", size, chunked, err)
		}
		resp.Body.Close()
		return resp.StatusCode, after.TotalAlloc - before.TotalAlloc
	}
	const limit = 4 << 20 // both ends of the request together, far below the body
	for _, c := range []struct {
		name    string
		size    int64
		chunked bool
		want    int
	}{
		{"30 MB with its Content-Length", 30 << 20, false, http.StatusRequestEntityTooLarge},
		{"30 MB chunked", 30 << 20, true, http.StatusRequestEntityTooLarge},
		{"20 MB chunked, under the limit, forged", 20 << 20, true, http.StatusUnauthorized},
	} {
		code, allocated := send(c.size, c.chunked)
		t.Logf("%s: %d, %d KiB allocated in this process", c.name, code, allocated>>10)
		if code != c.want {
			t.Errorf("%s: answered %d, want %d", c.name, code, c.want)
		}
		if allocated > limit {
			t.Errorf("%s: the request cost %d bytes of allocations; a forged body must not be buffered in memory", c.name, allocated)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("a forged request triggered %d runs", calls.Load())
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "cutover-webhook-*")); len(left) > 0 {
		t.Fatalf("spilled bodies left on disk: %v", left)
	}
}

// A large authentic body (over the in-memory part) is read back whole
// after its signature checks out.
func TestLargeSignedBodyIsReadBackWhole(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	padding := strings.Repeat(" ", 3*inMemory)
	body := append(pushBody("refs/heads/develop", sha1, sha2, false)[:1], []byte(padding)...)
	body = append(body, pushBody("refs/heads/develop", sha1, sha2, false)[1:]...)
	got, err := ParseGitHub(githubRequest("push", body, sign(body, secret)), secret)
	if err != nil || got.Branch != "develop" || got.Commit != sha2 {
		t.Fatalf("a %d-byte signed push: %+v %v", len(body), got, err)
	}
	// One byte changed beyond the in-memory part: refused.
	forged := bytes.Clone(body)
	forged[2*inMemory] = '\t'
	if _, err := ParseGitHub(githubRequest("push", forged, sign(body, secret)), secret); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a body changed past the first %d bytes: %v, want ErrUnauthorized", inMemory, err)
	}
}

// A replayed delivery (same X-GitHub-Delivery) is answered 200 "duplicate"
// when OnTrigger says so, and the id reaches OnTrigger only once the
// signature is checked.
func TestReplayedDeliveryAnswersDuplicate(t *testing.T) {
	seen := map[string]bool{}
	srv := httptest.NewServer(Handler(HandlerConfig{GitHubSecret: secret, OnTrigger: func(tr Trigger) error {
		key := tr.Source + "/" + tr.Delivery
		if seen[key] {
			return fmt.Errorf("%w: %s", ErrDuplicate, key)
		}
		seen[key] = true
		return nil
	}}))
	t.Cleanup(srv.Close)
	push := pushBody("refs/heads/develop", sha1, sha2, false)
	post := func(sig string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github", bytes.NewReader(push))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "d-1")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(sign(push, []byte("attacker"))); code != http.StatusUnauthorized || len(seen) != 0 {
		t.Fatalf("a forged request with a delivery id: %d, recorded %v", code, seen)
	}
	if code, body := post(sign(push, secret)); code != http.StatusOK || !strings.Contains(body, `"accepted"`) {
		t.Fatalf("first delivery: %d %s", code, body)
	}
	if code, body := post(sign(push, secret)); code != http.StatusOK || !strings.Contains(body, `"duplicate"`) {
		t.Fatalf("replayed delivery: %d %s", code, body)
	}
}
