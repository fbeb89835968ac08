package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func startRegistry(t *testing.T, dir string) *Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Start(ctx, Options{Dir: dir, Credential: testCredential})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// testCredential is the push credential of the registries these tests start.
const testCredential = "test-credential-0123456789abcdefghijklmnop"

// pushAs is the password pushes send (none when empty): tests that attack
// the registry change it.
var pushAs = testCredential

func do(req *http.Request) (*http.Response, error) {
	if pushAs != "" {
		req.SetBasicAuth(Username, pushAs)
	}
	return http.DefaultClient.Do(req)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushBlob uploads b to repo through the registry API (start an upload,
// then finish it with the whole content) and returns its digest.
func pushBlob(addr, repo string, b []byte) (string, error) {
	d := digestOf(b)
	start, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := do(start)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	if !loc.IsAbs() {
		loc = (&url.URL{Scheme: "http", Host: addr}).ResolveReference(loc)
	}
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("finish upload: %s %s", resp.Status, body)
	}
	return d, nil
}

// pushImage stores a minimal OCI image (one config, one layer) as repo:tag
// and returns the manifest's digest, computed here from its bytes.
func pushImage(addr, repo, tag string) (string, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not really a tar, the registry does not look inside")
	configDigest, err := pushBlob(addr, repo, config)
	if err != nil {
		return "", err
	}
	layerDigest, err := pushBlob(addr, repo, layer)
	if err != nil {
		return "", err
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m, _ := json.Marshal(struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{
		SchemaVersion: 2,
		MediaType:     "application/vnd.oci.image.manifest.v1+json",
		Config:        desc{"application/vnd.oci.image.config.v1+json", configDigest, len(config)},
		Layers:        []desc{{"application/vnd.oci.image.layer.v1.tar", layerDigest, len(layer)}},
	})
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("put manifest: %s %s", resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digestOf(m) {
		return "", fmt.Errorf("registry says digest %s, manifest bytes hash to %s", got, digestOf(m))
	}
	return digestOf(m), nil
}

func mustPushImage(t *testing.T, addr, repo, tag string) string {
	t.Helper()
	d, err := pushImage(addr, repo, tag)
	if err != nil {
		t.Fatalf("push %s/%s:%s: %v", addr, repo, tag, err)
	}
	return d
}

func TestPushDigestAndRestart(t *testing.T) {
	dir := t.TempDir()
	r := startRegistry(t, dir)
	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") || strings.HasSuffix(r.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want 127.0.0.1:<port>", r.Addr())
	}
	if got, want := r.Ref("cutover-test/hello", "v1"), r.Addr()+"/cutover-test/hello:v1"; got != want {
		t.Fatalf("Ref = %q, want %q", got, want)
	}

	// The API root answers as a v2 registry to cutover's credential (and
	// challenges a client without one: auth_test.go).
	root, _ := http.NewRequest(http.MethodGet, "http://"+r.Addr()+"/v2/", nil)
	resp, err := do(root)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("GET /v2/: %s, api version %q", resp.Status, resp.Header.Get("Docker-Distribution-API-Version"))
	}

	ctx := context.Background()
	want := mustPushImage(t, r.Addr(), "cutover-test/hello", "sha-abc")
	got, err := ManifestDigest(ctx, r.Addr(), "cutover-test/hello", "sha-abc")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ManifestDigest = %s, want %s", got, want)
	}

	_, err = ManifestDigest(ctx, r.Addr(), "cutover-test/hello", "nope")
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "cutover-test/hello:nope") {
		t.Fatalf("missing tag: err = %v, want a not-found error naming the reference", err)
	}

	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ManifestDigest(ctx, r.Addr(), "cutover-test/hello", "sha-abc"); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("after Close: err = %v, want cannot reach", err)
	}

	// A new registry on the same directory serves what was pushed before.
	r2 := startRegistry(t, dir)
	got, err = ManifestDigest(ctx, r2.Addr(), "cutover-test/hello", "sha-abc")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got != want {
		t.Fatalf("after restart: digest %s, want %s", got, want)
	}
}

func TestSameAddrAfterRestart(t *testing.T) {
	dir := t.TempDir()
	r := startRegistry(t, dir)
	addr := r.Addr()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The port is free again at once: image references keep working.
	r2, err := Start(context.Background(), Options{Dir: dir, Addr: addr})
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	defer r2.Close(context.Background())
	if r2.Addr() != addr {
		t.Fatalf("Addr = %s, want %s", r2.Addr(), addr)
	}

	// The address is taken while r2 runs: a clear error, not a panic.
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), Addr: addr})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("second registry on %s: err = %v, want an error naming the address", addr, err)
	}
}

func TestConcurrentPushes(t *testing.T) {
	r := startRegistry(t, t.TempDir())
	var wg sync.WaitGroup
	digests := make([]string, 4)
	errs := make([]error, 4)
	for i := range digests {
		wg.Go(func() {
			digests[i], errs[i] = pushImage(r.Addr(), fmt.Sprintf("proj/svc%d", i), "latest")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("push svc%d: %v", i, err)
		}
	}
	for i, want := range digests {
		got, err := ManifestDigest(context.Background(), r.Addr(), fmt.Sprintf("proj/svc%d", i), "latest")
		if err != nil || got != want {
			t.Fatalf("svc%d: %s, %v; want %s", i, got, err, want)
		}
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:5000", ":5000", "[::]:5000", "192.168.1.10:5000", "example.com:5000", "127.0.0.1", "127.0.0.1:99999"} {
		_, err := Start(context.Background(), Options{Dir: t.TempDir(), Addr: addr})
		if err == nil {
			t.Errorf("Start(%q) succeeded, want an error", addr)
			continue
		}
		if !strings.Contains(err.Error(), addr) || strings.Count(err.Error(), "\n") > 1 {
			t.Errorf("Start(%q): %q, want one or two lines naming the address", addr, err)
		}
	}
	if _, err := ManifestDigest(context.Background(), "10.0.0.1:5000", "a", "b"); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("ManifestDigest on 10.0.0.1: %v, want a not-loopback error", err)
	}
}

func TestStartLocalhost(t *testing.T) {
	r, err := Start(context.Background(), Options{Dir: t.TempDir(), Addr: "localhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %s, want 127.0.0.1:PORT", r.Addr())
	}
}

func TestStartBadDir(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Fatalf("no Dir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Dir: filepath.Join(file, "registry")})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("Dir under a file: %v, want an error naming the path", err)
	}
}

func TestManifestDigestBadRef(t *testing.T) {
	_, err := ManifestDigest(context.Background(), "127.0.0.1:1", "Bad Repo", "x")
	if err == nil || !strings.Contains(err.Error(), "not a valid image reference") {
		t.Fatalf("err = %v", err)
	}
}

// The registry's routine logs reach the slog logger given in Options at
// Debug, and never the process's stderr through logrus.
func TestLogsGoToSlog(t *testing.T) {
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := Start(context.Background(), Options{Dir: t.TempDir(), Logger: log, Credential: testCredential})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	mustPushImage(t, r.Addr(), "logs/test", "v1")
	ManifestDigest(context.Background(), r.Addr(), "logs/test", "missing")
	out := buf.String()
	if !strings.Contains(out, "component=registry") || !strings.Contains(out, "response completed") {
		t.Fatalf("registry logs not routed to slog:\n%s", out)
	}
	if strings.Contains(out, "level=ERROR") {
		t.Fatalf("a client 404 was logged as an error:\n%s", out)
	}
}
