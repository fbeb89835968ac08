package docker

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// On the real engine: a base image whose ONBUILD trigger ADDs a URL on
// 127.0.0.1. A trusted build FROM it fetches the URL (the classic builder
// runs the trigger on the engine's network: the attack is real); an
// untrusted build FROM it is refused before the engine sees it, and the URL
// is not fetched.
func TestUntrustedBuildOfABaseWithRemoteTrigger(t *testing.T) {
	rt := newRuntime(t)
	url, hits := fetchCounter(t)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tag := onbuildImage(ctx, t, rt, "FROM scratch\nONBUILD ADD "+url+" /fetched\n")
	if n := hits.Load(); n != 0 {
		t.Fatalf("building the base image fetched the URL %d times; its trigger runs only in a build FROM it", n)
	}

	child := writeContext(t, map[string]string{"Dockerfile": "FROM " + tag + "\n"})
	_, err := rt.Build(ctx, BuildRequest{ContextDir: child, NoNetwork: true})
	want := "line 1: FROM " + tag + ": its ONBUILD trigger ADD " + url + " fetches from the network"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("untrusted Build: %v, want an error with %q", err, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the untrusted build fetched the URL %d times", n)
	}

	img, err := rt.Build(ctx, BuildRequest{ContextDir: child, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err != nil {
		t.Fatalf("trusted Build: %v", err)
	}
	rt.RemoveImage(ctx, img.ID)
	if n := hits.Load(); n != 1 {
		t.Errorf("the trusted build fetched the URL %d times, want 1 (the trigger did not run: the test shows nothing)", n)
	}
}

// A heredoc hides an ADD from a parser that reads heredocs, but an engine
// whose classic builder predates them (this machine's 20.10) reads its lines
// as instructions. The check reads the Dockerfile both ways.
func TestUntrustedBuildHeredocHidingAnAdd(t *testing.T) {
	rt := newRuntime(t)
	url, hits := fetchCounter(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY <<CMD /x\nADD " + url + " /fetched\nCMD\n",
		"<<CMD":      "a file named as the heredoc's start, for an engine that reads no heredocs\n",
	})
	_, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true})
	want := "line 3: ADD " + url + " fetches from the network"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("untrusted Build: %v, want an error with %q", err, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the untrusted build fetched the URL %d times", n)
	}
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		rt.RemoveImage(ctx, img.ID)
	}
	t.Logf("trusted build of the same Dockerfile on this engine: %v; URL fetched %d times", err, hits.Load())
}

// fetchCounter serves a URL on 127.0.0.1 and counts its fetches.
func fetchCounter(t *testing.T) (string, *atomic.Int32) {
	hits := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintln(w, "fetched")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/secret", hits
}

// An untrusted build sends the engine the canonical form of its Dockerfile
// (untrustedDockerfile), whatever .dockerignore says: a file with CRLF line
// ends, comments and continuations builds on the real engine.
func TestUntrustedBuildSendsTheCanonicalDockerfile(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out strings.Builder
	dir := writeContext(t, map[string]string{
		"Dockerfile":        "# syntax=docker/dockerfile:1\r\nFROM scratch\r\n# a comment \\\r\nCOPY a \\\r\n  # inside\r\n  /a\r\n",
		"a":                 "a\n",
		".dockerignore":     "Dockerfile\n.cutover-untrusted.Dockerfile\n",
		untrustedDockerfile: "FROM scratch\nADD http://127.0.0.1:9/x /x\n",
	})
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Output: &out, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err != nil {
		t.Fatalf("untrusted Build: %v\n%s", err, out.String())
	}
	rt.RemoveImage(ctx, img.ID)
	if !strings.Contains(out.String(), ": COPY a   /a") {
		t.Errorf("the engine did not build the canonical Dockerfile:\n%s", out.String())
	}
}

// onbuildImage builds a trusted image of dockerfile for a test, removed when it
// ends, and returns its tag.
func onbuildImage(ctx context.Context, t *testing.T, rt *Runtime, dockerfile string) string {
	t.Helper()
	tag := "cutover-test/onbuild:" + randomHex(6)
	base, err := rt.Build(ctx, BuildRequest{
		ContextDir: writeContext(t, map[string]string{"Dockerfile": dockerfile}),
		Tags:       []string{tag},
		Labels:     map[string]string{"dev.cutover.test": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rt.RemoveImage(ctx, base.ID)
	})
	return tag
}
