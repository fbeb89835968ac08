package webhook

import (
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-github/v84/github"
)

const zeroSHA = "0000000000000000000000000000000000000000"

// ParseGitHub authenticates a GitHub webhook delivery by its
// X-Hub-Signature-256 header (HMAC-SHA256 of the body with secret, computed
// while the body streams in: readSigned) and turns it into a Trigger:
//
//   - push to refs/heads/B → Trigger{Kind: push, Branch: B, Commit: after, Before: before};
//     tag pushes and branch deletions → ErrIgnored.
//   - pull_request opened, synchronize or reopened → Trigger{Kind: pull_request,
//     Branch: head ref, Commit: head SHA, PRNumber, PRAction}; Repo is the base
//     repository (a fork's head commit is fetchable there as refs/pull/N/head);
//     other actions → ErrIgnored.
//   - ping and every other event type → ErrIgnored.
//
// The older SHA-1 header alone is refused: it is weaker and GitHub always
// sends the SHA-256 one.
func ParseGitHub(r *http.Request, secret []byte) (Trigger, error) {
	if len(secret) == 0 {
		// go-github accepts unsigned payloads when the secret is empty; we don't.
		return Trigger{}, ErrUnauthorized
	}
	if !strings.HasPrefix(r.Header.Get(github.SHA256SignatureHeader), "sha256=") {
		return Trigger{}, ErrUnauthorized
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (ct != "application/json" && ct != "application/x-www-form-urlencoded") {
		return Trigger{}, badPayload("Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	body, err := readSigned(r, secret, r.Header.Get(github.SHA256SignatureHeader))
	if err != nil {
		return Trigger{}, err
	}
	payload := body
	if ct == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return Trigger{}, badPayload("form body: %v", err)
		}
		payload = []byte(form.Get("payload"))
	}

	event := github.WebHookType(r)
	switch event {
	case "":
		return Trigger{}, badPayload("X-GitHub-Event header is missing")
	case "push", "pull_request":
	default:
		return Trigger{}, ignored("GitHub event %q does not start a pipeline", event)
	}
	parsed, err := github.ParseWebHook(event, payload)
	if err != nil {
		return Trigger{}, badPayload("%s event is not valid JSON: %v", event, err)
	}
	switch ev := parsed.(type) {
	case *github.PushEvent:
		return fromPush(ev)
	case *github.PullRequestEvent:
		return fromPullRequest(ev)
	}
	return Trigger{}, ignored("GitHub event %q does not start a pipeline", event)
}

func fromPush(ev *github.PushEvent) (Trigger, error) {
	ref := ev.GetRef()
	switch {
	case strings.HasPrefix(ref, "refs/tags/"):
		return Trigger{}, ignored("tag push %s", strings.TrimPrefix(ref, "refs/tags/"))
	case !strings.HasPrefix(ref, "refs/heads/"):
		if ref == "" {
			return Trigger{}, badPayload("push event has no ref")
		}
		return Trigger{}, ignored("push to %s, which is not a branch", ref)
	}
	branch := strings.TrimPrefix(ref, "refs/heads/")
	if ev.GetDeleted() || ev.GetAfter() == zeroSHA {
		return Trigger{}, ignored("branch %s was deleted", branch)
	}
	if !validBranch(branch) {
		return Trigger{}, badPayload("push ref %q is not a valid branch name", ref)
	}
	if !validCommit(ev.GetAfter()) {
		return Trigger{}, badPayload("push event's \"after\" is not a commit SHA")
	}
	before := ev.GetBefore()
	if before == zeroSHA || !validCommit(before) {
		before = "" // a new branch has no previous head
	}
	sender := ev.GetSender().GetLogin()
	if sender == "" {
		sender = ev.GetPusher().GetName()
	}
	return Trigger{
		Kind: KindPush, Repo: ev.GetRepo().GetFullName(), Branch: branch,
		Commit: ev.GetAfter(), Before: before, Sender: sender,
	}, nil
}

func fromPullRequest(ev *github.PullRequestEvent) (Trigger, error) {
	action := ev.GetAction()
	switch action {
	case "opened", "synchronize", "reopened":
	case "":
		return Trigger{}, badPayload("pull_request event has no action")
	default:
		return Trigger{}, ignored("pull request action %q", action)
	}
	pr := ev.GetPullRequest()
	head := pr.GetHead()
	if !validBranch(head.GetRef()) {
		return Trigger{}, badPayload("pull request head ref %q is not a valid branch name", head.GetRef())
	}
	if !validCommit(head.GetSHA()) {
		return Trigger{}, badPayload("pull request head sha is not a commit SHA")
	}
	number := ev.GetNumber()
	if number == 0 {
		number = pr.GetNumber()
	}
	if number <= 0 {
		return Trigger{}, badPayload("pull_request event has no number")
	}
	before := ev.GetBefore()
	if !validCommit(before) {
		before = ""
	}
	repo := ev.GetRepo().GetFullName()
	if repo == "" {
		repo = pr.GetBase().GetRepo().GetFullName()
	}
	return Trigger{
		Kind: KindPullRequest, Repo: repo, Branch: head.GetRef(), Commit: head.GetSHA(),
		Before: before, PRNumber: number, PRAction: action, Sender: ev.GetSender().GetLogin(), Base: pr.GetBase().GetRef(),
	}, nil
}
