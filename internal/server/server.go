// Package server is the cutover daemon (`cutover serve`): it hosts the
// pipeline engine with a durable queue of executions, the webhook receiver,
// branch polling and a small JSON API. The load balancer stays its own
// process (the data plane); the daemon only controls it.
//
// Contract: a trigger (webhook, API, poll) is a queued execution in the
// store before it is acknowledged (Enqueue); a delivery is accepted once.
// Queued executions run concurrently, one per stage (the engine's stage
// locks). On start, Run recovers the executions a dead daemon left (their
// processes ended, their workspaces removed, resumed from their stage),
// never one whose owner is alive. Run serves until ctx ends, then stops
// accepting work, lets running executions finish within Grace, cancels
// them after that (the store records them as cancelled), and returns;
// queued executions stay queued. A deployment interrupted that way is
// reconciled by the next command or start (OnStart).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/source"
	"github.com/cutoverdev/cutover/internal/store"
)

// Server is the daemon. Set the fields, then call Run once.
type Server struct {
	Config *config.Config
	Store  *store.Store
	Engine *pipeline.Engine
	// Releases are the release use cases (deploy, roll back, stop, approve,
	// ...) the API calls, acting as the caller's token; nil: a Manager of
	// Config and Store.
	Releases   *release.Manager
	Addr       string // API and webhooks, e.g. 127.0.0.1:8790
	Repo       string // the git repository executions check out
	ConfigPath string // cutover.yaml inside it
	Webhooks   http.Handler
	Dashboard  http.Handler                                                   // served at / (dashboard.go)
	Grace      time.Duration                                                  // how long a running execution may go on after a stop (default 30s)
	OnStart    func(ctx context.Context)                                      // reconcile deployments left by a killed controller
	Resolve    func(ctx context.Context, repo, branch string) (string, error) // default source.Resolve
	Log        *slog.Logger
	// Proxy is the load balancer whose target group counters /metrics
	// re-exports; nil leaves them out (cutover_proxy_up 0).
	Proxy *proxy.Client
	// Exposure (auth.go): names the API answers to besides its address, and
	// TLS, or a proxy in front that terminates it, for a non-loopback Addr.
	PublicHosts     []string
	TLSCert, TLSKey string
	BehindProxy     bool

	once    sync.Once
	mu      sync.Mutex
	follows auth.Streams  // followed logs open (api_executions.go)
	wake    chan struct{} // work reads the queue again
	addr    net.Addr
	ready   chan struct{}
	// runCtx is Run's context: deployments the API launched run on it, and
	// Run waits for them (background) before it returns.
	runCtx     context.Context
	background sync.WaitGroup
	mux        *http.ServeMux // the routes, for TestOpenAPIMatchesRoutes
}

func (s *Server) setDefaults() {
	s.once.Do(func() {
		if s.Log == nil {
			s.Log = slog.Default()
		}
		if s.Grace <= 0 {
			s.Grace = 30 * time.Second
		}
		if s.Resolve == nil {
			s.Resolve = source.Resolve
		}
		s.wake = make(chan struct{}, 1)
		s.runCtx = context.Background()
		// The daemon's cutover.yaml says which branch deploys which
		// environment, whatever a commit's own copy says.
		if s.Engine != nil && s.Engine.Trusted == nil {
			s.Engine.Trusted = s.Config
		}
	})
}

// idleTimeout is how long a connection may wait for its next request: the
// API, the dashboard and the webhooks are reached by anonymous clients, and
// a connection kept open without one holds a socket and a goroutine (the
// server's ReadHeaderTimeout counts only from a request's first byte).
var idleTimeout = 2 * time.Minute

// Ready is closed once the API listens; Address is valid after it.
func (s *Server) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	return s.ready
}

// Address is where the API listens.
func (s *Server) Address() string { return s.addr.String() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.setDefaults()
	if err := s.checkExposure(); err != nil {
		return err
	}
	s.runCtx = ctx
	defer s.background.Wait()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("cutover serve: cannot listen on %s: %v (pick another address with --addr)", s.Addr, err)
	}
	s.addr = ln.Addr()
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout}
	go func() { _ = s.serve(srv, ln) }()
	s.Ready()
	close(s.ready)
	s.Log.Info("cutover serve listening", "addr", s.addr.String())

	if s.OnStart != nil {
		s.OnStart(ctx)
	}
	s.resumeInterrupted(ctx)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.poll(ctx) }()
	go func() { defer wg.Done(); s.schedule(ctx) }()
	s.work(ctx)

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	return nil
}

// routes is the JSON API and the webhook receiver. Every /v1 route needs an
// entry in routePolicies (auth.go): who may call it, how it is audited.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.Webhooks != nil {
		mux.Handle("/webhooks/", s.Webhooks)
	}
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		q, _ := s.Store.FindExecutions(r.Context(), store.ExecutionFilter{Project: s.Config.Project, Status: store.ExecutionQueued})
		queued := len(q)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "project": s.Config.Project, "queued": queued})
	})
	mux.HandleFunc("GET /v1/executions", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.Store.ListExecutions(r.Context(), s.Config.Project, 50)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, nonNil(list))
	})
	mux.HandleFunc("GET /v1/executions/{id}", func(w http.ResponseWriter, r *http.Request) {
		x, ok := s.execution(w, r) // 404 for another project's
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, x)
	})
	mux.HandleFunc("POST /v1/executions", func(w http.ResponseWriter, r *http.Request) {
		const shape = `{"branch": "...", "commit": "optional sha"}`
		var req struct {
			Branch string `json:"branch"`
			Commit string `json:"commit"`
		}
		if err := decodeBody(w, r, &req, false, shape); err != nil {
			writeBodyError(w, err)
			return
		} else if req.Branch == "" {
			missingField(w, "branch", shape)
			return
		}
		if req.Commit == "" {
			c, err := s.Resolve(r.Context(), s.Repo, req.Branch)
			if errors.Is(err, source.ErrNotFound) {
				writeError(w, http.StatusNotFound, err) // no such branch in the repository
				return
			} else if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			req.Commit = c
		}
		if err := pipeline.Admit(r.Context(), pipeline.Trigger{Kind: pipeline.TriggerManual, Repo: s.Repo, Branch: req.Branch, Commit: req.Commit}); err != nil {
			writeError(w, http.StatusConflict, err) // a branch runs only commits on it
			return
		}
		setAuditTarget(r, req.Branch+" "+req.Commit)
		id, err := s.Enqueue(r.Context(), pipeline.Trigger{Kind: pipeline.TriggerManual, Branch: req.Branch, Commit: req.Commit, Author: identity(r).Name}, store.Delivery{})
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"queued": req.Commit, "execution": id})
	})
	mux.HandleFunc("POST /v1/executions/{id}/approve", s.decide(true))
	mux.HandleFunc("POST /v1/executions/{id}/reject", s.decide(false))
	mux.HandleFunc("POST /v1/executions/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		if !noBody(w, r) {
			return
		}
		x, err := s.releases(r).Cancel(r.Context(), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, err)
			return
		} else if err != nil {
			writeError(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"cancel": x.ID})
	})
	s.adminRoutes(mux)
	s.apiEnvironmentRoutes(mux)
	s.apiExecutionRoutes(mux)
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	mux.Handle("GET /metrics", s.metricsHandler())
	s.mux = mux
	return s.guard(mux)
}

// releases is the release use cases acting as the request's caller.
func (s *Server) releases(r *http.Request) *release.Manager {
	s.mu.Lock()
	if s.Releases == nil {
		s.Releases = &release.Manager{Config: s.Config, Store: s.Store, Log: s.Log}
	}
	m := s.Releases
	s.mu.Unlock()
	return m.As(identity(r).Name + " (api)")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": strings.TrimSpace(err.Error())})
}
