package webhook

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// HandlerConfig configures Handler. A route whose secret is empty is not
// served (404), so an unconfigured receiver can never be triggered.
type HandlerConfig struct {
	GitHubSecret  []byte // enables POST /webhooks/github
	GenericSecret string // enables POST /webhooks/generic
	// OnTrigger is called once per authentic trigger, synchronously, before
	// the answer is sent: it should only enqueue (GitHub gives up after 10s).
	// Returning an error that wraps ErrIgnored answers 202; any other error
	// answers 503 (the sender may retry).
	OnTrigger func(Trigger) error
	Logger    *slog.Logger
}

// Response is the JSON body of every answer.
type Response struct {
	Status  string `json:"status"` // "accepted", "ignored", "error"
	Message string `json:"message,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Commit  string `json:"commit,omitempty"`
}

// Handler serves POST /webhooks/github and POST /webhooks/generic, answering
// 200 (trigger accepted), 202 (ignored), 400 (bad payload), 401 (not
// authentic: nothing runs), 404 (route not configured) or 503 (OnTrigger
// failed). It never logs secrets, signatures or bodies.
func Handler(cfg HandlerConfig) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	route := func(name, path string, enabled bool, parse func(*http.Request) (Trigger, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if !enabled {
				reply(w, http.StatusNotFound, Response{Status: "error", Message: name + " webhooks are not enabled: configure a secret for them"})
				return
			}
			l := log.With("source", name, "remote", r.RemoteAddr)
			if id := r.Header.Get("X-GitHub-Delivery"); id != "" {
				l = l.With("delivery", id)
			}
			serveTrigger(w, r, l, parse, cfg.OnTrigger)
		})
	}
	route("github", "/webhooks/github", len(cfg.GitHubSecret) > 0, func(r *http.Request) (Trigger, error) {
		return ParseGitHub(r, cfg.GitHubSecret)
	})
	route("generic", "/webhooks/generic", cfg.GenericSecret != "", func(r *http.Request) (Trigger, error) {
		return ParseGeneric(r, cfg.GenericSecret)
	})
	return mux
}

func serveTrigger(w http.ResponseWriter, r *http.Request, log *slog.Logger, parse func(*http.Request) (Trigger, error), on func(Trigger) error) {
	t, err := parse(r)
	if err == nil && on != nil {
		if err = on(t); err != nil && !errors.Is(err, ErrIgnored) {
			log.Error("webhook trigger not started", "kind", t.Kind, "branch", t.Branch, "commit", t.Commit, "err", err)
			reply(w, http.StatusServiceUnavailable, Response{Status: "error", Message: "the trigger could not be started; retry later"})
			return
		}
	}
	switch {
	case err == nil:
		log.Info("webhook trigger accepted", "kind", t.Kind, "repo", t.Repo, "branch", t.Branch, "commit", t.Commit, "pr", t.PRNumber, "sender", t.Sender)
		reply(w, http.StatusOK, Response{Status: "accepted", Kind: t.Kind, Branch: t.Branch, Commit: t.Commit})
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
