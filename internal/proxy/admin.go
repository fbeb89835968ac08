package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is what GET /v1/health answers: the proxy is up, and which one.
type Health struct {
	PID        int       `json:"pid"`
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Uptime     Duration  `json:"uptime"`
	Generation uint64    `json:"generation"` // of the routing state
}

// WeightChange replaces the forward list of one rule, found by listener
// name and its host and path prefix: POST /v1/weights.
type WeightChange struct {
	Listener   string           `json:"listener"`
	Host       string           `json:"host,omitempty"`
	PathPrefix string           `json:"path_prefix,omitempty"`
	Forward    []WeightedTarget `json:"forward"`
}

// stateReply is the body of GET /v1/state.
type stateReply struct {
	Generation uint64 `json:"generation"`
	State      State  `json:"state"`
}

type genReply struct {
	Generation uint64 `json:"generation"`
}

type errorReply struct {
	Error string `json:"error"`
}

// apiError carries the HTTP status of a refused change.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// admin serves the admin API. Changes are serialised by mu; each one is
// applied to the engine, then persisted, then acknowledged. If applying
// fails nothing is persisted; if persisting fails the engine is put back.
type admin struct {
	p        *Proxy
	path     string // state.json
	version  string
	started  time.Time
	gatherer prometheus.Gatherer
	pprof    bool // serve net/http/pprof under /debug/pprof/ (PprofEnv)

	mu      sync.Mutex
	saved   saved
	retired bool // handing over to the next proxy: no more changes here
}

// errHandingOver answers a change that comes while the proxy hands over
// to the next one; the client retries it there.
const errHandingOver = "the proxy is handing over to a new one (cutover proxy restart): retry"

// retire refuses changes from now on (on), once the one in progress is
// saved, or takes them again (off: a restart that failed).
func (a *admin) retire(on bool) {
	a.mu.Lock()
	a.retired = on
	a.mu.Unlock()
}

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		gen := a.saved.Generation
		a.mu.Unlock()
		reply(w, http.StatusOK, Health{PID: os.Getpid(), Version: a.version, Started: a.started,
			Uptime: Duration(time.Since(a.started).Round(time.Second)), Generation: gen})
	})
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		s := a.saved
		a.mu.Unlock()
		w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(s.Generation, 10)))
		reply(w, http.StatusOK, stateReply(s))
	})
	mux.HandleFunc("PUT /v1/state", func(w http.ResponseWriter, r *http.Request) {
		var s State
		if err := decodeJSON(r.Body, &s); err != nil {
			replyError(w, &apiError{http.StatusBadRequest, "PUT /v1/state: " + err.Error()})
			return
		}
		a.change(w, r, func(State) (State, error) { return s, nil })
	})
	mux.HandleFunc("PUT /v1/scopes/{scope}", func(w http.ResponseWriter, r *http.Request) {
		scope := r.PathValue("scope")
		var part State
		if err := decodeJSON(r.Body, &part); err != nil {
			replyError(w, &apiError{http.StatusBadRequest, "PUT /v1/scopes/" + scope + ": " + err.Error()})
			return
		}
		a.change(w, r, func(cur State) (State, error) { return cur.WithScope(scope, part) })
	})
	mux.HandleFunc("POST /v1/weights", func(w http.ResponseWriter, r *http.Request) {
		var wc WeightChange
		if err := decodeJSON(r.Body, &wc); err != nil {
			replyError(w, &apiError{http.StatusBadRequest, "POST /v1/weights: " + err.Error()})
			return
		}
		a.change(w, r, func(cur State) (State, error) { return cur.WithWeights(wc) })
	})
	mux.HandleFunc("GET /v1/targets", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, a.p.Targets())
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, a.p.Stats())
	})
	if a.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.gatherer, promhttp.HandlerOpts{}))
	}
	if a.pprof {
		// Profiling is opt-in and only on the admin socket, never on a listener.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// change applies mutate to the current state. An If-Match header with a
// generation makes it conditional: 409 when another change came first.
func (a *admin) change(w http.ResponseWriter, r *http.Request, mutate func(State) (State, error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.retired {
		replyError(w, &apiError{http.StatusServiceUnavailable, errHandingOver})
		return
	}
	if m := r.Header.Get("If-Match"); m != "" {
		want, err := strconv.ParseUint(strings.Trim(m, `"`), 10, 64)
		if err != nil {
			replyError(w, &apiError{http.StatusBadRequest, fmt.Sprintf("If-Match %q: want a state generation number", m)})
			return
		}
		if want != a.saved.Generation {
			replyError(w, &apiError{http.StatusConflict, fmt.Sprintf("the proxy state changed (generation %d, you had %d): read it again and retry", a.saved.Generation, want)})
			return
		}
	}
	next, err := mutate(a.saved.State)
	if err != nil {
		replyError(w, err)
		return
	}
	gen, err := a.commit(r.Context(), next)
	if err != nil {
		replyError(w, err)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(gen, 10)))
	reply(w, http.StatusOK, genReply{gen})
}

// commit applies next, persists it and returns its generation. Called with a.mu held.
func (a *admin) commit(ctx context.Context, next State) (uint64, error) {
	if err := a.p.Apply(ctx, next); err != nil {
		return 0, &apiError{http.StatusBadRequest, err.Error()}
	}
	s := saved{Generation: a.saved.Generation + 1, State: next}
	if err := saveState(a.path, s); err != nil {
		if rerr := a.p.Apply(context.WithoutCancel(ctx), a.saved.State); rerr != nil {
			a.p.log.Error("restoring the previous routes after a failed save", "err", rerr)
		}
		return 0, &apiError{http.StatusInternalServerError, fmt.Sprintf("saving %s: %v (the change was not made)", a.path, err)}
	}
	a.saved = s
	return s.Generation, nil
}

// WithWeights returns s with the forward list of the rule named by wc replaced.
func (s State) WithWeights(wc WeightChange) (State, error) {
	out := State{TargetGroups: s.TargetGroups, Listeners: make([]Listener, len(s.Listeners))}
	copy(out.Listeners, s.Listeners)
	for i, l := range out.Listeners {
		if l.Name != wc.Listener {
			continue
		}
		rules := make([]Rule, len(l.Rules))
		copy(rules, l.Rules)
		for j, r := range rules {
			if strings.EqualFold(r.Host, wc.Host) && r.PathPrefix == wc.PathPrefix {
				rules[j].Forward = wc.Forward
				out.Listeners[i].Rules = rules
				return out, nil
			}
		}
		return State{}, &apiError{http.StatusNotFound, fmt.Sprintf("listener %q has no rule for host %q and path prefix %q", wc.Listener, wc.Host, wc.PathPrefix)}
	}
	return State{}, &apiError{http.StatusNotFound, fmt.Sprintf("no listener named %q", wc.Listener)}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func replyError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	var ae *apiError
	if errors.As(err, &ae) {
		status = ae.status
	}
	reply(w, status, errorReply{err.Error()})
}
