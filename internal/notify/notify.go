// Package notify tells people about pipeline events: an execution started,
// failed or succeeded, an approval is needed, a deployment was rolled back.
//
// Two kinds of target are supported: a Slack-compatible incoming webhook
// (Kind "slack", POST {"text": ..., "blocks": [...]}) and a generic JSON
// webhook (Kind "webhook", POST the event as a JSON object, see Payload).
//
// Contract:
//
//   - New starts one delivery worker per valid target; call Close once when
//     done, to wait for deliveries still in flight.
//   - Notify is safe for concurrent use and never blocks longer than putting
//     the event on each target's queue. Delivery happens in the background,
//     in order per target. A full queue drops the event (logged).
//   - A failing target never fails the caller: Notify returns nothing.
//     5xx, 429 and network errors are retried with capped exponential backoff
//     and jitter (429 honours Retry-After); other 4xx and 3xx are not retried.
//   - A target's URL is a secret: it appears in no log line and no error.
//     Logs name the target by its Name.
//   - A nil *Notifier is valid and does nothing, so a pipeline without
//     notification targets needs no special case.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Event kinds.
const (
	ExecutionStarted     = "execution.started"
	ExecutionFailed      = "execution.failed"
	ExecutionSucceeded   = "execution.succeeded"
	ApprovalNeeded       = "approval.needed"
	DeploymentRolledBack = "deployment.rolled_back"
)

// Kinds lists every event kind, for validating a target's Events.
var Kinds = []string{ExecutionStarted, ExecutionFailed, ExecutionSucceeded, ApprovalNeeded, DeploymentRolledBack}

// Target kinds.
const (
	KindSlack   = "slack"
	KindWebhook = "webhook"
)

// Event is one thing that happened in a pipeline.
type Event struct {
	Kind      string // one of the event kind constants
	Execution string // execution id
	Project   string // project (pipeline) name
	Commit    string
	Branch    string
	Status    string // e.g. "running", "failed", "succeeded", "waiting"
	Message   string // one human line: what happened, what to do
	URL       string // where to look (execution page, approval page); optional
	Time      time.Time
}

// Target is one place notifications go to.
type Target struct {
	Name    string   // shown in logs instead of the URL
	Kind    string   // KindSlack or KindWebhook
	URL     string   // a secret: never logged
	Events  []string // event kinds to send; empty means all
	Headers map[string]string
}

// Validate checks a target without revealing its URL in the error.
func (t Target) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("notification target: name is empty: give every target a name, it is what logs show")
	}
	if t.Kind != KindSlack && t.Kind != KindWebhook {
		return fmt.Errorf("notification target %q: kind %q is unknown: use %q or %q", t.Name, t.Kind, KindSlack, KindWebhook)
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("notification target %q: url is not an http(s) URL: check the secret that holds it", t.Name)
	}
	for _, k := range t.Events {
		if !slices.Contains(Kinds, k) {
			return fmt.Errorf("notification target %q: event %q is unknown: use one of %v", t.Name, k, Kinds)
		}
	}
	return nil
}

func (t Target) wants(kind string) bool {
	return len(t.Events) == 0 || slices.Contains(t.Events, kind)
}

// Options tune delivery. Zero values take the defaults.
type Options struct {
	Logger     *slog.Logger
	Retries    int           // retries after the first attempt; default 5, negative for none
	Backoff    time.Duration // first retry delay, doubled each time; default 500ms
	MaxBackoff time.Duration // cap on one delay (Retry-After included); default 30s
	Timeout    time.Duration // per attempt; default 10s
	Client     *http.Client  // default: a client that does not follow redirects
	QueueSize  int           // events waiting per target; default 64
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Retries == 0 {
		o.Retries = 5
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Client == nil {
		// A redirect would carry neither the POST body nor, possibly, the
		// secret path's intent; treat it as a failure instead.
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	return o
}

// Notifier delivers events to targets in the background.
type Notifier struct {
	opt     Options
	workers []*worker
	ctx     context.Context // cancelled when Close gives up waiting
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

type worker struct {
	target Target
	queue  chan Event
}

// New returns a Notifier for targets. Invalid targets are logged (by name) and
// skipped, so a typo in one target does not silence the others; call
// Target.Validate when loading configuration to report them to the user.
func New(targets []Target, o Options) *Notifier {
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{opt: o, ctx: ctx, cancel: cancel}
	for _, t := range targets {
		if err := t.Validate(); err != nil {
			o.Logger.Warn("notification target skipped", "target", t.Name, "err", err)
			continue
		}
		w := &worker{target: t, queue: make(chan Event, o.QueueSize)}
		n.workers = append(n.workers, w)
		n.wg.Add(1)
		go n.run(w)
	}
	return n
}

// Notify queues ev for every target that wants its kind. It never blocks on
// the network and never fails; a zero ev.Time is set to now. After Close it
// does nothing.
func (n *Notifier) Notify(ctx context.Context, ev Event) {
	if n == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.opt.Logger.Debug("notification after close dropped", "event", ev.Kind, "execution", ev.Execution)
		return
	}
	for _, w := range n.workers {
		if !w.target.wants(ev.Kind) {
			continue
		}
		select {
		case w.queue <- ev:
		default:
			n.opt.Logger.WarnContext(ctx, "notification dropped: queue full", "target", w.target.Name, "event", ev.Kind, "execution", ev.Execution)
		}
	}
}

// Close stops accepting events and waits until queued deliveries are done or
// ctx ends; then it abandons the rest and returns ctx's error. Calling Close
// again only waits again.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, w := range n.workers {
			close(w.queue)
		}
	}
	n.mu.Unlock()

	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel() // abort retries and requests in flight
		<-done
		return ctx.Err()
	}
}

func (n *Notifier) run(w *worker) {
	defer n.wg.Done()
	for ev := range w.queue {
		if n.ctx.Err() != nil {
			continue // abandoned by Close: drain without sending
		}
		n.deliver(w.target, ev)
	}
}
