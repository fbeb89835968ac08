package ecr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cutoverdev/cutover/internal/registry"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestPushToRegistry pushes with the same code path as to ECR, but to the
// embedded distribution registry: moto does not serve the registry (Docker
// v2) API, so ECR's own tag immutability is not exercised here; the check
// Push makes before writing is.
func TestPushToRegistry(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := t.Context()
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	const cred = "ecr-stand-in-credential-0123456789abcdef"
	reg, err := registry.Start(ctx, registry.Options{Dir: t.TempDir(), Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(context.Background()) })

	c, err := New(nil, Options{Docker: rt.EngineClient(), Authenticator: &authn.Basic{Username: registry.Username, Password: cred}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	repo := reg.Addr() + "/bluemed/backend"
	first := buildTinyImage(t, rt)
	digest, err := c.Push(ctx, first, repo, []string{"build-1", "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		t.Fatalf("digest %q", digest)
	}
	for _, tag := range []string{"build-1", "latest"} {
		got, err := registry.ManifestDigest(ctx, reg.Addr(), "bluemed/backend", tag)
		if err != nil || got != digest {
			t.Errorf("registry has %s:%s = %q, %v; want %s", repo, tag, got, err, digest)
		}
	}

	// Same image, same tags: nothing to do.
	again, err := c.Push(ctx, first, repo, []string{"build-1"})
	if err != nil || again != digest {
		t.Fatalf("re-push = %q, %v", again, err)
	}
	// Another image under an existing tag: refused, naming the tag.
	second := buildTinyImage(t, rt)
	_, err = c.Push(ctx, second, repo, []string{"build-1"})
	if err == nil || !strings.Contains(err.Error(), repo+":build-1 already holds "+digest) {
		t.Fatalf("push over an immutable tag: %v", err)
	}
	// A missing local image is a plain error.
	if _, err := c.Push(ctx, "cutover-test/absent:nope", repo, []string{"x"}); err == nil || !strings.Contains(err.Error(), "cannot read local image cutover-test/absent:nope") {
		t.Fatalf("missing image: %v", err)
	}
}

// buildTinyImage builds FROM scratch with one unique file and returns its
// ID; the image is removed when t ends.
func buildTinyImage(t *testing.T, rt *docker.Runtime) string {
	t.Helper()
	dir := t.TempDir()
	var b [8]byte
	_, _ = rand.Read(b[:])
	for name, body := range map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /\n",
		"hello.txt":  "hello " + hex.EncodeToString(b[:]) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := rt.Build(t.Context(), docker.BuildRequest{ContextDir: dir})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = rt.RemoveImage(ctx, img.ID)
	})
	return img.ID
}
