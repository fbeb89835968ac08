package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v84/github"
)

// Commit status states, as GitHub's commit status API names them.
const (
	StatusPending = "pending"
	StatusSuccess = "success"
	StatusFailure = "failure"
	StatusError   = "error"
)

// CommitStatusOptions configure a CommitStatus reporter.
type CommitStatusOptions struct {
	Repository string // owner/name
	APIURL     string // "" = https://api.github.com/; GitHub Enterprise: https://HOST/api/v3/
	Token      string // a token allowed to write commit statuses (repo:status)
	Context    string // the status's name on the commit, e.g. "cutover"
	TargetURL  string // optional link for the status (e.g. the execution's page)
	HTTPClient *http.Client
	Logger     *slog.Logger
	Attempts   int           // tries per status; 0 = 3
	Backoff    time.Duration // before the second try, doubling; 0 = 500ms
}

// CommitStatus reports an execution's state on its commit through GitHub's
// commit status API, so that branch protection can require it.
//
// Contract: Report queues a status and returns at once; statuses of one
// reporter are sent in the order they were reported, each retried a few
// times (5xx, 429, network errors), and a later status is not overtaken by
// an earlier one still retrying. Failures are logged, never returned: a
// status never fails or blocks a pipeline. Close sends what is queued within
// its context and stops the reporter; call it once.
type CommitStatus struct {
	o      CommitStatusOptions
	client *github.Client
	owner  string
	repo   string
	log    *slog.Logger

	queue chan statusJob
	done  chan struct{}
	once  sync.Once
}

type statusJob struct {
	sha, state, description string
}

// NewCommitStatus checks the options and starts the reporter.
func NewCommitStatus(o CommitStatusOptions) (*CommitStatus, error) {
	owner, repo, ok := strings.Cut(o.Repository, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return nil, fmt.Errorf("repository %q is not owner/name (write the GitHub repository, e.g. acme/shop)", o.Repository)
	}
	if o.Token == "" {
		return nil, errors.New("no token to write commit statuses with")
	}
	if o.Context == "" {
		o.Context = "cutover"
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	client := github.NewClient(hc).WithAuthToken(o.Token)
	if o.APIURL != "" {
		base := strings.TrimSuffix(o.APIURL, "/") + "/"
		var err error
		if client, err = client.WithEnterpriseURLs(base, base); err != nil {
			return nil, fmt.Errorf("api_url %q: %v", o.APIURL, err)
		}
		// WithEnterpriseURLs appends api/v3/ when the URL lacks it; an API
		// base given in full (a proxy, a test server) is taken as it is.
		if u, err := client.BaseURL.Parse(base); err == nil {
			client.BaseURL = u
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &CommitStatus{o: o, client: client, owner: owner, repo: repo,
		log:   log.With("component", "commit-status", "repository", o.Repository),
		queue: make(chan statusJob, 64), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

// Report queues state for commit sha; description is shortened to GitHub's 140 characters.
func (c *CommitStatus) Report(sha, state, description string) {
	if r := []rune(description); len(r) > 140 {
		description = string(r[:139]) + "…"
	}
	select {
	case c.queue <- statusJob{sha: sha, state: state, description: description}:
	default:
		c.log.Warn("commit status dropped: too many queued", "state", state)
	}
}

// Close sends what is queued (until ctx ends) and stops the reporter.
func (c *CommitStatus) Close(ctx context.Context) {
	c.once.Do(func() { close(c.queue) })
	select {
	case <-c.done:
	case <-ctx.Done():
		c.log.Warn("commit statuses still unsent when the execution ended")
	}
}

func (c *CommitStatus) loop() {
	defer close(c.done)
	for j := range c.queue {
		c.send(j)
	}
}

func (c *CommitStatus) send(j statusJob) {
	st := github.RepoStatus{State: &j.state, Description: &j.description, Context: &c.o.Context}
	if c.o.TargetURL != "" {
		st.TargetURL = &c.o.TargetURL
	}
	wait := c.o.Backoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, resp, err := c.client.Repositories.CreateStatus(ctx, c.owner, c.repo, j.sha, st)
		cancel()
		if err == nil {
			return
		}
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		retry := code == 0 || code == http.StatusTooManyRequests || code >= 500
		if !retry || attempt >= c.o.Attempts {
			c.log.Warn("commit status not reported", "state", j.state, "commit", j.sha, "status_code", code, "err", redactToken(err.Error(), c.o.Token))
			return
		}
		time.Sleep(wait)
		wait *= 2
	}
}

func redactToken(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "***")
}
