package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/registry"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// buildTinyImage builds FROM scratch with one unique text file, so it needs
// no base image, and removes the image (every tag, by ID) when t ends.
func buildTinyImage(t *testing.T, rt *Runtime) Image {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /\n",
		"hello.txt":  "hello " + randomHex(8) + "\n", // unique: a fresh image ID per run
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := rt.Build(t.Context(), BuildRequest{ContextDir: dir})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() { removeImage(t, rt, img.ID) })
	return img
}

func removeImage(t *testing.T, rt *Runtime, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rt.RemoveImage(ctx, id); err != nil {
		t.Errorf("remove image %s: %v", id, err)
	}
}

// registryCredential is the push credential of the registries these tests start.
const registryCredential = "push-credential-0123456789abcdefghijkl"

// startRegistry starts an embedded registry and gives rt its credential, as
// cutover does.
func startRegistry(t *testing.T, rt *Runtime, dir, addr string) *registry.Registry {
	t.Helper()
	reg, err := registry.Start(t.Context(), registry.Options{Dir: dir, Addr: addr, Credential: registryCredential})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(context.Background()) })
	rt.UseRegistryCredential(reg.Addr(), registry.Username, registryCredential)
	return reg
}

// Through the engine too, a push without cutover's credential, or with a
// wrong one, is refused and stores nothing.
func TestPushWithoutTheCredentialIsRefused(t *testing.T) {
	rt := newRuntime(t)
	ctx := t.Context()
	reg, err := registry.Start(ctx, registry.Options{Dir: t.TempDir(), Credential: registryCredential})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close(context.Background())
	img := buildTinyImage(t, rt)
	ref := reg.Ref("cutover-test/intruder", "v1")
	if err := rt.Tag(ctx, img.ID, ref); err != nil {
		t.Fatal(err)
	}
	for _, cred := range []string{"", "wrong-credential"} {
		if cred != "" {
			rt.UseRegistryCredential(reg.Addr(), registry.Username, cred)
		}
		if _, err := rt.Push(ctx, ref); err == nil {
			t.Fatalf("push with credential %q succeeded", cred)
		} else {
			t.Logf("credential %q: %v", cred, err)
		}
	}
	if _, err := registry.ManifestDigest(ctx, reg.Addr(), "cutover-test/intruder", "v1"); err == nil {
		t.Fatal("a refused push stored the image")
	}
	rt.UseRegistryCredential(reg.Addr(), registry.Username, registryCredential)
	if _, err := rt.Push(ctx, ref); err != nil {
		t.Fatalf("push with cutover's credential: %v", err)
	}
}

func TestPushToEmbeddedRegistry(t *testing.T) {
	rt := newRuntime(t)
	ctx := t.Context()
	regDir := t.TempDir()
	reg := startRegistry(t, rt, regDir, "")
	img := buildTinyImage(t, rt)

	repo := "cutover-test/hello"
	sha, latest := reg.Ref(repo, "sha-abc"), reg.Ref(repo, "latest")
	for _, ref := range []string{sha, latest} {
		if err := rt.Tag(ctx, img.ID, ref); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Tag(ctx, img.ID, sha); err != nil {
		t.Fatalf("tagging again: %v", err)
	}

	digest, err := rt.Push(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		t.Fatalf("Push returned %q, want sha256:<64 hex>", digest)
	}
	again, err := rt.Push(ctx, latest)
	if err != nil {
		t.Fatal(err)
	}
	if again != digest {
		t.Fatalf("same image pushed as :latest got digest %s, :sha-abc got %s", again, digest)
	}
	for _, tag := range []string{"sha-abc", "latest"} {
		got, err := registry.ManifestDigest(ctx, reg.Addr(), repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		if got != digest {
			t.Fatalf("registry has %s:%s at %s, Push said %s", repo, tag, got, digest)
		}
	}

	// Forget the image locally, then get it back by digest: the same image.
	removeImage(t, rt, img.ID)
	if _, err := rt.ImageID(ctx, sha); err == nil {
		t.Fatalf("%s still present after removal", sha)
	}
	byDigest := reg.Addr() + "/" + repo + "@" + digest
	id, err := rt.Pull(ctx, byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if id != img.ID {
		t.Fatalf("pulled %s as image %s, built %s", byDigest, id, img.ID)
	}

	// Restart on the same directory and address: the image is still served.
	addr := reg.Addr()
	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	reg = startRegistry(t, rt, regDir, addr)
	got, err := registry.ManifestDigest(ctx, reg.Addr(), repo, "sha-abc")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got != digest {
		t.Fatalf("after restart: digest %s, want %s", got, digest)
	}
	removeImage(t, rt, img.ID)
	if id, err := rt.Pull(ctx, sha); err != nil || id != img.ID {
		t.Fatalf("pull %s after restart: %s, %v; want %s", sha, id, err, img.ID)
	}

	unknown := reg.Ref(repo, "never-pushed")
	_, err = rt.Pull(ctx, unknown)
	if err == nil || !strings.Contains(err.Error(), unknown) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("pull of a tag never pushed: %v, want one line naming %s", err, unknown)
	}
	t.Logf("unknown tag: %v", err)
}

func TestPushErrors(t *testing.T) {
	rt := newRuntime(t)
	ctx := t.Context()
	img := buildTinyImage(t, rt)

	// A registry address where nothing listens: a port that was free a moment ago.
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ref := dead + "/cutover-test/nowhere:v1"
	if err := rt.Tag(ctx, img.ID, ref); err != nil {
		t.Fatal(err)
	}
	_, err := rt.Push(ctx, ref)
	if err == nil {
		t.Fatalf("push to %s succeeded with no registry there", dead)
	}
	if msg := err.Error(); !strings.Contains(msg, ref) || strings.Contains(msg, "\n") {
		t.Fatalf("push to a dead registry: %q, want one line naming %s", msg, ref)
	}
	t.Logf("dead registry: %v", err)

	missing := dead + "/cutover-test/never-tagged:v1"
	_, err = rt.Push(ctx, missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("push of an untagged ref: %v, want an error naming %s", err, missing)
	}
	t.Logf("untagged: %v", err)
	err = rt.Tag(ctx, "sha256:"+strings.Repeat("0", 64), ref)
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("tag of a missing image: %v", err)
	}
	t.Logf("missing image: %v", err)
	for _, bad := range []string{"Upper/Case:v1", "127.0.0.1:5000/x@sha256:" + strings.Repeat("a", 64)} {
		err := rt.Tag(ctx, img.ID, bad)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Tag(%q): %v, want an error naming it", bad, err)
		}
		t.Logf("bad ref: %v", err)
		if _, err := rt.Push(ctx, bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Push(%q): %v, want an error naming it", bad, err)
		}
	}
}
