package webhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// GenericSecretHeader carries the shared secret of a generic webhook.
const GenericSecretHeader = "X-Cutover-Secret"

// GenericDeliveryHeader carries a generic webhook's delivery id: a second
// request with the same id is a replay and runs nothing.
const GenericDeliveryHeader = "X-Cutover-Delivery"

// GenericRequest is the JSON body of a generic webhook.
type GenericRequest struct {
	Kind   string `json:"kind"`   // "push" (default) or "pull_request"
	Branch string `json:"branch"` // required
	Commit string `json:"commit"` // optional: empty means the branch's head
	Base   string `json:"base"`   // optional, pull_request: the base branch (default: the repository's default branch)
}

// ParseGeneric authenticates a generic webhook by the X-Cutover-Secret header,
// compared with secret in constant time, and reads its JSON body
// {"kind","branch","commit"} into a Trigger.
func ParseGeneric(r *http.Request, secret string) (Trigger, error) {
	if secret == "" || !secretEqual(r.Header.Get(GenericSecretHeader), secret) {
		return Trigger{}, ErrUnauthorized
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	var req GenericRequest
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Trigger{}, badPayload("body larger than 1 MiB")
		}
		return Trigger{}, badPayload("body must be JSON {\"kind\",\"branch\",\"commit\"}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Trigger{}, badPayload("body must hold one JSON object, found more after it")
	}
	switch req.Kind {
	case "":
		req.Kind = KindPush
	case KindPush, KindPullRequest:
	default:
		return Trigger{}, badPayload("kind %q is unknown: use %q or %q", req.Kind, KindPush, KindPullRequest)
	}
	if !validBranch(req.Branch) {
		return Trigger{}, badPayload("branch %q is not a valid branch name", req.Branch)
	}
	if req.Commit != "" && !validCommit(req.Commit) {
		return Trigger{}, badPayload("commit %q is not a full commit SHA (40 or 64 lowercase hex digits)", req.Commit)
	}
	if req.Base != "" && !validBranch(req.Base) {
		return Trigger{}, badPayload("base %q is not a valid branch name", req.Base)
	}
	return Trigger{Kind: req.Kind, Branch: req.Branch, Commit: req.Commit, Base: req.Base}, nil
}

// secretEqual compares hashes so that the time taken reveals neither the
// content nor the length of the secret.
func secretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
