package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v84/github"
)

// HandlerConfig configures Handler. A route whose secret is empty is not
// served (404), so an unconfigured receiver can never be triggered.
type HandlerConfig struct {
	GitHubSecret  []byte // enables POST /webhooks/github
	GenericSecret string // enables POST /webhooks/generic
	// OnTrigger is called once per authentic trigger, synchronously, before
	// the answer is sent: it should only persist and enqueue (GitHub gives
	// up after 10s); the trigger carries its Source and Delivery id for
	// deduplication. Returning an error that wraps ErrIgnored answers 202,
	// ErrDuplicate 200 "duplicate" (a replay: nothing new runs); any other
	// error answers 503 (the sender may retry).
	OnTrigger func(Trigger) error
	Logger    *slog.Logger
	// MaxSpilling bounds the deliveries whose bodies wait in a temporary
	// file at once, all clients together (DefaultMaxSpilling when 0), and
	// MaxSpillingPerClient those of one client address
	// (DefaultMaxSpillingPerClient); past either, a delivery is answered
	// 503. BodyTimeout bounds the reading of one (DefaultBodyTimeout).
	MaxSpilling, MaxSpillingPerClient int
	BodyTimeout                       time.Duration
}

// DefaultMaxSpilling bounds the delivery bodies kept on disk at once. A
// delivery is read before anyone knows whether it is authentic (the
// signature covers the whole body), and a body over 64 KiB waits in a
// temporary file until it is: without a bound, anyone could trickle a
// thousand 25 MB bodies and fill the disk (25 GB). 32 bodies are 800 MB at
// most. Bodies held in memory (64 KiB each, as GitHub's usually are) take
// no slot: anonymous tricklers cannot hold GitHub's small deliveries off.
const DefaultMaxSpilling = 32

// DefaultMaxSpillingPerClient bounds those of one client address, so that
// one host cannot take every slot.
const DefaultMaxSpillingPerClient = 4

// DefaultBodyTimeout bounds the reading of one delivery: GitHub sends a
// payload (25 MB at most) in one go.
const DefaultBodyTimeout = time.Minute

// ErrBusy means too many delivery bodies are kept on disk already (503).
var ErrBusy = errors.New("too many large deliveries in progress; retry later")

// spillSlots counts the bodies kept on disk, in all and per client address.
type spillSlots struct {
	mu        sync.Mutex
	max, each int
	total     int
	clients   map[string]int
}

type spillKey struct{}

// take counts a body of the client at remote, or reports that a bound is
// reached.
func (s *spillSlots) take(remote string) (release func(), ok bool) {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.max || s.clients[ip] >= s.each {
		return nil, false
	}
	s.total++
	s.clients[ip]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total--
		if s.clients[ip]--; s.clients[ip] <= 0 {
			delete(s.clients, ip)
		}
	}, true
}

// Response is the JSON body of every answer.
type Response struct {
	Status  string `json:"status"` // "accepted", "duplicate", "ignored", "error"
	Message string `json:"message,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Commit  string `json:"commit,omitempty"`
}

// Handler serves POST /webhooks/github and POST /webhooks/generic, answering
// 200 (trigger accepted, or a duplicate delivery), 202 (ignored), 400 (bad
// payload), 401 (not authentic: nothing runs), 404 (route not configured),
// 413 (over 25 MB) or 503 (OnTrigger failed). It never logs secrets,
// signatures or bodies.
func Handler(cfg HandlerConfig) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	slots := &spillSlots{max: cmp.Or(cfg.MaxSpilling, DefaultMaxSpilling), each: cmp.Or(cfg.MaxSpillingPerClient, DefaultMaxSpillingPerClient), clients: map[string]int{}}
	bodyTimeout := cmp.Or(cfg.BodyTimeout, DefaultBodyTimeout)
	mux := http.NewServeMux()
	// key is what identifies a delivery, so that a replay runs nothing.
	route := func(name, path, deliveryHeader string, enabled bool, key func(r *http.Request) string, parse func(*http.Request) (Trigger, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if !enabled {
				reply(w, http.StatusNotFound, Response{Status: "error", Message: name + " webhooks are not enabled: configure a secret for them"})
				return
			}
			l := log.With("source", name, "remote", r.RemoteAddr)
			r = r.WithContext(context.WithValue(r.Context(), spillKey{}, slots))
			// The body is read within bodyTimeout of now; past it, reads fail
			// and the delivery is answered 400 (or the connection cut).
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
			delivery := r.Header.Get(deliveryHeader)
			if len(delivery) > 200 {
				reply(w, http.StatusBadRequest, Response{Status: "error", Message: deliveryHeader + " is longer than 200 characters"})
				return
			}
			if delivery != "" {
				l = l.With("delivery", delivery)
			}
			serveTrigger(w, r, l, func(r *http.Request) (Trigger, error) {
				t, err := parse(r)
				t.Source, t.Delivery = name, key(r)
				return t, err
			}, cfg.OnTrigger)
		})
	}
	// A GitHub delivery is its body's MAC, which its signature proves:
	// X-GitHub-Delivery is not signed, and a captured delivery resent
	// without it or with another ran again (and superseded the execution
	// waiting at its approval). GitHub's own redelivery sends the same body.
	// hex.DecodeString takes either case: the key is lowercased.
	route("github", "/webhooks/github", "X-GitHub-Delivery", len(cfg.GitHubSecret) > 0, func(r *http.Request) string {
		return strings.ToLower(r.Header.Get(github.SHA256SignatureHeader))
	}, func(r *http.Request) (Trigger, error) {
		return ParseGitHub(r, cfg.GitHubSecret)
	})
	// A generic webhook's caller holds the secret: its delivery id is its own.
	route("generic", "/webhooks/generic", GenericDeliveryHeader, cfg.GenericSecret != "", func(r *http.Request) string {
		return r.Header.Get(GenericDeliveryHeader)
	}, func(r *http.Request) (Trigger, error) {
		return ParseGeneric(r, cfg.GenericSecret)
	})
	return mux
}

func serveTrigger(w http.ResponseWriter, r *http.Request, log *slog.Logger, parse func(*http.Request) (Trigger, error), on func(Trigger) error) {
	t, err := parse(r)
	if err == nil && on != nil {
		if err = on(t); err != nil && !errors.Is(err, ErrIgnored) && !errors.Is(err, ErrDuplicate) {
			log.Error("webhook trigger not started", "kind", t.Kind, "branch", t.Branch, "commit", t.Commit, "err", err)
			reply(w, http.StatusServiceUnavailable, Response{Status: "error", Message: "the trigger could not be started; retry later"})
			return
		}
	}
	switch {
	case err == nil:
		log.Info("webhook trigger accepted", "kind", t.Kind, "repo", t.Repo, "branch", t.Branch, "commit", t.Commit, "pr", t.PRNumber, "sender", t.Sender)
		reply(w, http.StatusOK, Response{Status: "accepted", Kind: t.Kind, Branch: t.Branch, Commit: t.Commit})
	case errors.Is(err, ErrDuplicate):
		log.Info("webhook delivery already accepted: nothing new runs", "kind", t.Kind, "branch", t.Branch, "commit", t.Commit)
		reply(w, http.StatusOK, Response{Status: "duplicate", Message: "this delivery was already accepted", Kind: t.Kind, Branch: t.Branch, Commit: t.Commit})
	case errors.Is(err, ErrBusy):
		log.Warn("webhook refused: too many large deliveries being read at once")
		w.Header().Set("Retry-After", "10")
		w.Header().Set("Connection", "close")
		reply(w, http.StatusServiceUnavailable, Response{Status: "error", Message: err.Error()})
	case errors.Is(err, ErrTooLarge):
		log.Warn("webhook refused: body too large")
		reply(w, http.StatusRequestEntityTooLarge, Response{Status: "error", Message: err.Error()})
	case errors.Is(err, ErrUnauthorized):
		log.Warn("webhook refused: signature or secret missing or wrong")
		reply(w, http.StatusUnauthorized, Response{Status: "error", Message: "unauthorized: signature or secret missing or wrong"})
	case errors.Is(err, ErrIgnored):
		log.Info("webhook ignored", "reason", err)
		reply(w, http.StatusAccepted, Response{Status: "ignored", Message: err.Error()})
	default:
		log.Warn("webhook refused: bad payload", "err", err)
		reply(w, http.StatusBadRequest, Response{Status: "error", Message: err.Error()})
	}
}

func reply(w http.ResponseWriter, code int, resp Response) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}
