package registry

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func withPushCredential(t *testing.T, cred string) {
	t.Helper()
	old := pushAs
	pushAs = cred
	t.Cleanup(func() { pushAs = old })
}

// Pushing needs the credential cutover holds: none, a wrong one, another
// user, or a registry started without one, refuse it. Reads stay open.
func TestPushNeedsTheCredential(t *testing.T) {
	r := startRegistry(t, t.TempDir())
	digest := mustPushImage(t, r.Addr(), "shop/app", "v1")

	for _, cred := range []string{"", "wrong", testCredential + "x"} {
		withPushCredential(t, cred)
		if _, err := pushImage(r.Addr(), "shop/app", "evil"); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("push with credential %q: %v, want 401", cred, err)
		}
	}
	withPushCredential(t, testCredential)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.Addr()+"/v2/shop/app/blobs/uploads/", nil)
	req.SetBasicAuth("someone", testCredential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("push as another user: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// The tag refused above does not exist; the one pushed is read without credentials.
	if _, err := ManifestDigest(context.Background(), r.Addr(), "shop/app", "evil"); err == nil {
		t.Fatal("a refused push left a tag behind")
	}
	if got, err := ManifestDigest(context.Background(), r.Addr(), "shop/app", "v1"); err != nil || got != digest {
		t.Fatalf("anonymous read: %s, %v", got, err)
	}
	// The base endpoint challenges anonymous clients (so the engine sends its
	// credential) and accepts the right one.
	for cred, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, testCredential: http.StatusOK} {
		if code := send(t, http.MethodGet, "http://"+r.Addr()+"/v2/", cred); code != want {
			t.Fatalf("GET /v2/ with %q: %d, want %d", cred, code, want)
		}
	}

	// Without a credential configured, nobody can push.
	ro, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(context.Background())
	if _, err := pushImage(ro.Addr(), "shop/app", "v1"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push to a registry without a credential: %v", err)
	}
}

func deleteManifest(t *testing.T, addr, repo, digest, cred string) int {
	t.Helper()
	return send(t, http.MethodDelete, "http://"+addr+"/v2/"+repo+"/manifests/"+digest, cred)
}

// send sends a request without a body, as user Username with cred unless
// it is empty, and returns the status.
func send(t *testing.T, method, url, cred string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if cred != "" {
		req.SetBasicAuth(Username, cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Deletes are off by default, even with the credential; when enabled they
// still need it.
func TestDeletesAreOffUnlessEnabled(t *testing.T) {
	r := startRegistry(t, t.TempDir())
	digest := mustPushImage(t, r.Addr(), "shop/app", "v1")
	for _, cred := range []string{"", testCredential} {
		if code := deleteManifest(t, r.Addr(), "shop/app", digest, cred); code != http.StatusMethodNotAllowed {
			t.Fatalf("delete (credential %q) with deletes off: %d", cred, code)
		}
	}
	if got, err := ManifestDigest(context.Background(), r.Addr(), "shop/app", "v1"); err != nil || got != digest {
		t.Fatalf("after refused deletes: %s, %v", got, err)
	}

	on, err := Start(context.Background(), Options{Dir: t.TempDir(), Credential: testCredential, AllowDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	defer on.Close(context.Background())
	digest = mustPushImage(t, on.Addr(), "shop/app", "v1")
	if code := deleteManifest(t, on.Addr(), "shop/app", digest, ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous delete with deletes on: %d", code)
	}
	if code := deleteManifest(t, on.Addr(), "shop/app", digest, testCredential); code != http.StatusAccepted {
		t.Fatalf("delete with the credential: %d", code)
	}
}

func TestLoadCredentialIsPrivateAndStable(t *testing.T) {
	home := t.TempDir()
	a, err := LoadCredential(home)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, CredentialFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file: %v %v", fi.Mode(), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := LoadCredential(home)
	if err != nil || a != b || len(a) < 32 {
		t.Fatalf("second load: %q vs %q (%v)", a, b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("a credential file readable by others was not narrowed: %v", fi.Mode())
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredential(home); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("a truncated credential: %v", err)
	}
}
