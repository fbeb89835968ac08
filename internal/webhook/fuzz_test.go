package webhook

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzParseGitHub feeds random bodies, signatures, event names and content
// types to ParseGitHub. It must never panic, must never accept a request whose
// signature is not the HMAC of its body, and must only return triggers that
// are safe to run. With sign set, the body is correctly signed, so the fuzzer
// also explores the payload parsing behind the signature check.
func FuzzParseGitHub(f *testing.F) {
	f.Add(pushBody("refs/heads/develop", sha1, sha2, false), "", "push", "application/json", true)
	f.Add(pushBody("refs/tags/v1", zeroSHA, sha2, false), "", "push", "application/json", true)
	f.Add(prBody("synchronize"), "", "pull_request", "application/json", true)
	f.Add(prBody("opened"), "sha256=00", "pull_request", "application/json", false)
	f.Add([]byte("payload=%7B%7D"), "", "push", "application/x-www-form-urlencoded", true)
	f.Add([]byte("{"), "sha1=zz", "ping", "text/plain; charset=utf-8", false)

	f.Fuzz(func(t *testing.T, body []byte, sig, event, contentType string, signIt bool) {
		if signIt {
			sig = sign(body, secret)
		}
		r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("X-GitHub-Event", event)
		r.Header.Set("X-Hub-Signature-256", sig)

		tr, err := ParseGitHub(r, secret)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) && !errors.Is(err, ErrIgnored) && !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		if sig != sign(body, secret) {
			t.Fatalf("accepted a request whose signature %q is not the body's HMAC", sig)
		}
		if tr.Kind != KindPush && tr.Kind != KindPullRequest {
			t.Fatalf("trigger kind %q", tr.Kind)
		}
		if !validBranch(tr.Branch) || !validCommit(tr.Commit) {
			t.Fatalf("trigger with unsafe branch %q or commit %q", tr.Branch, tr.Commit)
		}
	})
}

// FuzzParseGeneric feeds random bodies and secrets to ParseGeneric: it must
// never panic, never accept a wrong secret, and only return safe triggers.
func FuzzParseGeneric(f *testing.F) {
	f.Add([]byte(`{"branch":"main"}`), "s3cret")
	f.Add([]byte(`{"kind":"pull_request","branch":"feature/x","commit":"`+sha1+`"}`), "s3cret")
	f.Add([]byte(`{"branch":"main"} {}`), "s3cret")
	f.Add([]byte(`{"branch":"-x","commit":"HEAD"}`), "wrong")
	f.Add([]byte(`[`), "")

	f.Fuzz(func(t *testing.T, body []byte, given string) {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/generic", bytes.NewReader(body))
		r.Header.Set(GenericSecretHeader, given)
		tr, err := ParseGeneric(r, "s3cret")
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) && !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		if given != "s3cret" {
			t.Fatalf("accepted secret %q", given)
		}
		if (tr.Kind != KindPush && tr.Kind != KindPullRequest) || !validBranch(tr.Branch) || (tr.Commit != "" && !validCommit(tr.Commit)) {
			t.Fatalf("unsafe trigger %+v", tr)
		}
	})
}
