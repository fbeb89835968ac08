// Package webhook turns webhook requests from Git hosts into pipeline
// triggers: GitHub `push` and `pull_request` events signed with
// X-Hub-Signature-256, and a generic webhook authenticated by a shared secret.
//
// Contract:
//
//   - ParseGitHub and ParseGeneric read and consume the request body; they are
//     pure otherwise and safe for concurrent use.
//   - They return a Trigger, or an error that errors.Is one of ErrUnauthorized
//     (missing or forged signature or secret: answer 401 and run nothing),
//     ErrIgnored (authentic, but nothing to run: answer 202) or ErrBadPayload
//     (authentic but malformed: answer 400). Authentication is always checked
//     before the body is interpreted.
//   - An empty secret authenticates nothing: every request is ErrUnauthorized.
//   - No error text contains a secret or a signature.
//
// Handler wraps both parsers in an http.Handler for the daemon.
package webhook

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Trigger kinds.
const (
	KindPush        = "push"
	KindPullRequest = "pull_request"
)

// Trigger is a request to run the pipeline for one commit.
type Trigger struct {
	Kind     string // KindPush or KindPullRequest
	Repo     string // "owner/name" when the host says so
	Branch   string // branch pushed, or the pull request's head branch
	Commit   string // full commit SHA to check out; may be empty for a generic trigger (branch head)
	Before   string // previous head of the branch, when known
	PRNumber int
	Base     string // a pull request's base branch, whose pipeline definition it runs
	PRAction string // opened, synchronize, reopened
	Sender   string // login of whoever caused the event
	// Source ("github", "generic") and Delivery (a GitHub delivery's
	// signature, "sha256=<its body's HMAC>", or X-Cutover-Delivery of a
	// generic webhook, which may be empty) identify the delivery, so a
	// replay is recognised and runs nothing.
	Source   string
	Delivery string
}

var (
	// ErrUnauthorized means the request is not proven to come from the
	// configured sender. Answer 401; run nothing.
	ErrUnauthorized = errors.New("webhook signature or secret missing or wrong")
	// ErrIgnored means the request is authentic but asks for nothing to run
	// (a tag push, a deleted branch, a closed pull request, a ping).
	ErrIgnored = errors.New("nothing to run")
	// ErrBadPayload means the request is authentic but cannot be understood.
	ErrBadPayload = errors.New("bad webhook payload")
	// ErrDuplicate (from OnTrigger) means the delivery was accepted before:
	// answer 200 and run nothing new.
	ErrDuplicate = errors.New("duplicate delivery")
)

// IgnoredError says why an authentic event runs nothing. It matches ErrIgnored
// with errors.Is.
type IgnoredError struct{ Reason string }

func (e *IgnoredError) Error() string        { return "nothing to run: " + e.Reason }
func (e *IgnoredError) Is(target error) bool { return target == ErrIgnored }

func ignored(format string, a ...any) error {
	return &IgnoredError{Reason: fmt.Sprintf(format, a...)}
}

func badPayload(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPayload, fmt.Sprintf(format, a...))
}

// maxBody bounds what is read from a request: GitHub caps payloads at 25 MB.
const maxBody = 25 << 20

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`) // SHA-1 or SHA-256 object names

func validCommit(s string) bool { return shaRE.MatchString(s) }

// validBranch keeps what git check-ref-format would refuse, and anything that
// could be mistaken for an option, out of the pipeline.
func validBranch(s string) bool {
	if s == "" || len(s) > 255 || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "/") ||
		strings.HasSuffix(s, "/") || strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") ||
		strings.Contains(s, "..") || strings.Contains(s, "//") || strings.Contains(s, "@{") {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}
