package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// fakeEngine is a Docker engine that answers /build with an image ID and
// records the names in the build context it receives. It holds busybox (no
// ONBUILD triggers) and the images of onbuild; an image of registry (its
// ONBUILD triggers) is added when pulled. (A fake: the tests of the check's
// wiring need no real engine; TestUntrustedBuildOfABaseWithRemoteTrigger
// runs on the real one.)
type fakeEngine struct {
	mu       sync.Mutex
	builds   int
	names    []string            // the context's entries, of the last build
	onbuild  map[string][]string // local images and their ONBUILD triggers
	registry map[string][]string // what a pull finds
	pulls    []string            // the X-Registry-Auth header of each pull
	built    string              // the Dockerfile the last build named, as sent
}

func newFakeEngine(t *testing.T) (*Runtime, *fakeEngine) {
	t.Helper()
	fe := &fakeEngine{onbuild: map[string][]string{"busybox:latest": nil}, registry: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fe.mu.Lock()
		defer fe.mu.Unlock()
		path := req.URL.Path[strings.Index(req.URL.Path[1:], "/")+1:] // without the /v1.47
		switch {
		case strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json"):
			name := strings.TrimSuffix(strings.TrimPrefix(path, "/images/"), "/json")
			if !strings.Contains(name[strings.LastIndex(name, "/")+1:], ":") {
				name += ":latest"
			}
			triggers, ok := fe.onbuild[name]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"message":"No such image: %s"}`, name)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"Id": fakeID(name), "RepoTags": []string{name}, "Config": map[string]any{"OnBuild": triggers}})
		case path == "/images/create":
			name := strings.TrimPrefix(req.URL.Query().Get("fromImage"), "docker.io/") + ":" + req.URL.Query().Get("tag")
			fe.pulls = append(fe.pulls, req.Header.Get("X-Registry-Auth"))
			triggers, ok := fe.registry[name]
			if !ok {
				fmt.Fprintf(w, `{"error":"pull access denied for %s","errorDetail":{"message":"pull access denied for %s"}}`+"\n", name, name)
				return
			}
			fe.onbuild[name] = triggers
			io.WriteString(w, `{"status":"Downloaded newer image"}`+"\n")
		case strings.HasSuffix(path, "/build"):
			var names []string
			tr := tar.NewReader(req.Body)
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				names = append(names, h.Name)
				if h.Name == req.URL.Query().Get("dockerfile") {
					b, _ := io.ReadAll(tr)
					fe.built = string(b)
				}
			}
			fe.builds++
			fe.names = names
			io.WriteString(w, `{"stream":"Step 1/2 : FROM busybox\n"}`+"\n"+`{"aux":{"ID":"sha256:0123"}}`+"\n")
		default:
			http.Error(w, `{"message":"not in this fake engine"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithVersion("1.47"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Runtime{client: c, host: srv.URL, log: slog.Default()}, fe
}

// fakeID is the fake engine's ID of the image name.
func fakeID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (fe *fakeEngine) buildCount() int {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	return fe.builds
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A pull request made app/Dockerfile a link to ../real.df. The host follows
// it to the workspace's harmless real.df, outside the build context; the
// engine follows it inside the context (.. stops at its root) and builds
// app/real.df, which ADDs the cloud's metadata. The check must read what the
// engine builds, so a Dockerfile leading out of the context is refused.
func TestAttackDockerfileLinkChecksAnotherFile(t *testing.T) {
	ws := t.TempDir()
	ctxDir := filepath.Join(ws, "app")
	writeFiles(t, ws, map[string]string{
		"real.df":     "FROM busybox\nCOPY . /app\n",
		"app/real.df": "FROM busybox\nADD http://169.254.169.254/latest/meta-data/iam/ /creds\n",
	})
	if err := os.Symlink("../real.df", filepath.Join(ctxDir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	r, fe := newFakeEngine(t)
	_, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, Tags: []string{"atk:1"}, NoNetwork: true})
	want := "build app: Dockerfile app/Dockerfile is a link leading out of the build context (../real.df): an untrusted build takes a Dockerfile inside its context"
	if err == nil || err.Error() != want {
		t.Errorf("Build: %v, want %q", err, want)
	}
	if n := fe.buildCount(); n != 0 {
		t.Errorf("the engine was asked to build %d times, want 0", n)
	}

	// A directory on the Dockerfile's path leading out, and a custom name.
	writeFiles(t, ws, map[string]string{"out/df": "FROM busybox\n", "app/sub/df": "FROM busybox\nADD http://127.0.0.1:9/x /x\n"})
	if err := os.Symlink("../out", filepath.Join(ctxDir, "dir")); err != nil {
		t.Fatal(err)
	}
	_, err = r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, Dockerfile: "dir/df", NoNetwork: true})
	want = "build app: Dockerfile app/dir/df is reached through app/dir, a link leading out of the build context (../out)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Build: %v, want %q...", err, want)
	}
	if n := fe.buildCount(); n != 0 {
		t.Errorf("the engine was asked to build %d times, want 0", n)
	}

	// A trusted build is unchanged: it goes to the engine.
	if _, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, Tags: []string{"ok:1"}}); err != nil {
		t.Errorf("trusted Build: %v", err)
	}
	if n := fe.buildCount(); n != 1 {
		t.Errorf("the engine was asked to build %d times, want 1", n)
	}
}

// A Dockerfile that is a link inside the context is followed as the engine
// follows it: its target is checked, and built when it passes.
func TestUntrustedDockerfileLinkInsideContext(t *testing.T) {
	for _, tc := range []struct {
		name, df, want string // want: the error's start; "" builds
	}{
		{"ADD of a URL refused", "FROM busybox\nADD http://127.0.0.1:9/x /x\n", "build app: app/Dockerfile line 2: ADD http://127.0.0.1:9/x fetches from the network"},
		{"COPY built", "FROM busybox\nCOPY . /app\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir := filepath.Join(t.TempDir(), "app")
			writeFiles(t, ctxDir, map[string]string{"sub/df": tc.df, "main.go": "package main\n"})
			if err := os.Symlink("sub/df", filepath.Join(ctxDir, "Dockerfile")); err != nil {
				t.Fatal(err)
			}
			r, fe := newFakeEngine(t)
			img, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, Tags: []string{"t:1"}, NoNetwork: true})
			if tc.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("Build: %v, want %q...", err, tc.want)
				}
				if n := fe.buildCount(); n != 0 {
					t.Errorf("the engine was asked to build %d times, want 0", n)
				}
				return
			}
			if err != nil || img.ID != "sha256:0123" {
				t.Fatalf("Build: %+v, %v; want the fake engine's image", img, err)
			}
			if n := fe.buildCount(); n != 1 {
				t.Errorf("the engine was asked to build %d times, want 1", n)
			}
		})
	}
}

// When the Dockerfile the engine is told to build is missing from the
// context it receives, it builds "dockerfile" instead. A link to a file that
// .dockerignore leaves out is such a Dockerfile: the host reads its target,
// the engine builds the lower-case file. That one is checked too.
func TestAttackLowercaseDockerfileFallback(t *testing.T) {
	ctxDir := filepath.Join(t.TempDir(), "app")
	writeFiles(t, ctxDir, map[string]string{
		"sub/df":        "FROM busybox\nCOPY . /app\n",
		".dockerignore": "sub/df\n",
		"dockerfile":    "FROM busybox\nADD http://169.254.169.254/latest/meta-data/ /m\n",
	})
	if err := os.Symlink("sub/df", filepath.Join(ctxDir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	r, fe := newFakeEngine(t)
	_, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, NoNetwork: true})
	want := "build app: app/dockerfile line 2: ADD http://169.254.169.254/latest/meta-data/ fetches from the network"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Build: %v, want %q...", err, want)
	}
	if n := fe.buildCount(); n != 0 {
		t.Errorf("the engine was asked to build %d times, want 0", n)
	}
}

// A pull request's Dockerfile has no ADD of its own, but builds FROM an
// image whose ONBUILD trigger ADDs a URL: the classic builder runs the
// trigger, fetching the URL on the engine's network. The base image's
// triggers are checked before the build, whether the engine holds the image,
// pulls it, or the FROM names it through an argument the pull request sets.
func TestAttackBaseImageTriggerAddsAURL(t *testing.T) {
	r, fe := newFakeEngine(t)
	fe.onbuild["team/base:1"] = []string{"RUN make", "ADD http://169.254.169.254/latest/meta-data/ /m"}
	fe.onbuild["team/quiet:1"] = []string{"COPY . /src"}
	// Read together, the first would continue into the second (the builder
	// reads each alone).
	fe.onbuild["team/join:1"] = []string{"USER 1 \\", "ADD http://127.0.0.1:9/x /x"}
	fe.registry["evil/base:latest"] = []string{"ADD [\"h\\u0074tp://127.0.0.1:9/x\", \"/x\"]"}
	fe.registry["team/clean:2"] = []string{"COPY . /src", "ADD --frobnicate a /b"}
	for _, tc := range []struct {
		name, df string
		args     map[string]string
		want     string // the error's start; "" builds
	}{
		{"held by the engine", "FROM team/base:1\nCOPY . /app\n", nil,
			"build app: app/Dockerfile line 1: FROM team/base:1: its ONBUILD trigger ADD http://169.254.169.254/latest/meta-data/ fetches from the network"},
		{"pulled", "FROM busybox AS b\nFROM evil/base\n", nil,
			"build app: app/Dockerfile line 2: FROM evil/base: its ONBUILD trigger ADD http://127.0.0.1:9/x fetches from the network"},
		{"named by a build argument", "ARG BASE=busybox\nFROM ${BASE}\n", map[string]string{"BASE": "team/base:1"},
			"build app: app/Dockerfile line 2: FROM team/base:1: its ONBUILD trigger"},
		{"named by an argument's default", "ARG BASE=team/base:1\nFROM $BASE AS x\n", nil,
			"build app: app/Dockerfile line 2: FROM team/base:1: its ONBUILD trigger"},
		{"a trigger that cannot be read", "FROM team/clean:2\n", nil,
			"build app: app/Dockerfile line 1: FROM team/clean:2: its ONBUILD trigger ADD --frobnicate a /b: the builder cannot read it: dockerfile parse error on line 2: unknown flag: --frobnicate"},
		{"triggers read one by one", "FROM team/join:1\n", nil,
			"build app: app/Dockerfile line 1: FROM team/join:1: its ONBUILD trigger ADD http://127.0.0.1:9/x fetches from the network"},
		{"missing everywhere", "FROM nowhere/none:1\n", nil,
			"build app: app/Dockerfile line 1: FROM nowhere/none:1: reading the base image's ONBUILD triggers: pull access denied"},
		{"harmless triggers build", "FROM team/quiet:1\nCOPY . /app\n", nil, ""},
		{"an earlier stage is no image", "FROM busybox AS base\nFROM BASE\n", nil, ""},
		{"scratch builds", "FROM scratch\nCOPY . /app\n", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir := filepath.Join(t.TempDir(), "app")
			writeFiles(t, ctxDir, map[string]string{"Dockerfile": tc.df})
			before := fe.buildCount()
			_, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, BuildArgs: tc.args, NoNetwork: true})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Build: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("Build: %v, want %q...", err, tc.want)
			}
			if n := fe.buildCount() - before; (tc.want == "") != (n == 1) {
				t.Errorf("the engine was asked to build %d times", n)
			}
		})
	}
	for _, auth := range fe.pulls {
		if auth != "" {
			t.Errorf("a base image was pulled with credentials %q; the builder pulls it with none", auth)
		}
	}
}

// The engine is sent the canonical form of what was checked (its base
// pinned by the ID checked), under its own name, in place of a file of that
// name the pull request put in the context.
func TestUntrustedBuildIsSentTheCanonicalForm(t *testing.T) {
	r, fe := newFakeEngine(t)
	ctxDir := filepath.Join(t.TempDir(), "app")
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile":        "# syntax=docker/dockerfile:1\r\nFROM busybox\r\n# comment \\\r\nCOPY a \\\r\n  /a\r\n",
		"a":                 "a\n",
		untrustedDockerfile: "FROM busybox\nADD http://127.0.0.1:9/x /x\n",
	})
	if _, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir, NoNetwork: true}); err != nil {
		t.Fatal(err)
	}
	if want := "FROM " + fakeID("busybox:latest") + "\nCOPY a   /a\n"; fe.built != want {
		t.Errorf("the engine was sent %q, want %q", fe.built, want)
	}
	if n := strings.Count(strings.Join(fe.names, "\n"), untrustedDockerfile); n != 1 {
		t.Errorf("%d entries named %s in %v", n, untrustedDockerfile, fe.names)
	}
	// A trusted build is sent its Dockerfile as written.
	if _, err := r.Build(context.Background(), BuildRequest{ContextDir: ctxDir}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fe.built, "# syntax=") {
		t.Errorf("a trusted build was sent %q", fe.built)
	}
}
