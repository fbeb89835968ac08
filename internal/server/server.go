// Package server is the cutover daemon (`cutover serve`): it hosts the
// pipeline engine with a queue of executions, the webhook receiver, branch
// polling and a small JSON API. The load balancer stays its own process
// (the data plane); the daemon only controls it.
//
// Contract: Run serves until ctx ends, then stops accepting work, lets a
// running execution finish within Grace, cancels it after that (the store
// records it as cancelled), and returns. A deployment interrupted that way
// is reconciled by the next command or start (OnStart).
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

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/source"
	"github.com/cutoverdev/cutover/internal/store"
)

// Server is the daemon. Set the fields, then call Run once.
type Server struct {
	Config     *config.Config
	Store      *store.Store
	Engine     *pipeline.Engine
	Addr       string // API and webhooks, e.g. 127.0.0.1:8790
	Repo       string // the git repository executions check out
	ConfigPath string // cutover.yaml inside it
	Webhooks   http.Handler
	Grace      time.Duration                                                  // how long a running execution may go on after a stop (default 30s)
	OnStart    func(ctx context.Context)                                      // reconcile deployments left by a killed controller
	Resolve    func(ctx context.Context, repo, branch string) (string, error) // default source.Resolve
	Log        *slog.Logger
	// Exposure (auth.go): names the API answers to besides its address, and
	// TLS, or a proxy in front that terminates it, for a non-loopback Addr.
	PublicHosts     []string
	TLSCert, TLSKey string
	BehindProxy     bool

	mu      sync.Mutex
	queue   []pipeline.Trigger
	wake    chan struct{}
	running string // execution id
	addr    net.Addr
	ready   chan struct{}
}

// Enqueue adds a trigger. In superseded mode a queued trigger of the same
// branch is replaced, and an execution of that branch waiting at an
// approval is superseded (cancelled with that reason).
func (s *Server) Enqueue(ctx context.Context, t pipeline.Trigger) {
	t.Project, t.Repo = s.Config.Project, s.Repo
	if t.ConfigPath == "" {
		t.ConfigPath = s.ConfigPath
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Config.EffectivePipeline().Mode != config.ModeQueued {
		kept := s.queue[:0]
		for _, q := range s.queue {
			if q.Branch == t.Branch && q.Kind == t.Kind {
				s.Log.Info("superseded a queued execution", "branch", q.Branch, "commit", q.Commit, "by", t.Commit)
				continue
			}
			kept = append(kept, q)
		}
		s.queue = kept
		s.supersedeWaiting(ctx, t)
	}
	s.queue = append(s.queue, t)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Server) supersedeWaiting(ctx context.Context, t pipeline.Trigger) {
	active, err := s.Store.ActiveExecutions(ctx, s.Config.Project)
	if err != nil {
		return
	}
	for _, x := range active {
		if x.Status == store.ExecutionWaiting && x.Branch == t.Branch {
			_, _ = s.Store.AppendEvent(ctx, store.Event{Project: x.Project, Environment: pipeline.EventScope(x.ID),
				Kind: pipeline.CancelEvent, Message: pipeline.SupersededPrefix + " " + shortSHA(t.Commit)})
		}
	}
}

func shortSHA(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

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
	if err := s.checkExposure(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("cutover serve: cannot listen on %s: %v (pick another address with --addr)", s.Addr, err)
	}
	s.addr = ln.Addr()
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.serve(srv, ln) }()
	s.Ready()
	close(s.ready)
	s.Log.Info("cutover serve listening", "addr", s.addr.String())

	if s.OnStart != nil {
		s.OnStart(ctx)
	}
	s.resumeInterrupted(ctx)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.poll(ctx) }()
	s.work(ctx)

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	return nil
}

// work runs queued triggers one at a time until ctx ends; a running
// execution then gets Grace to finish before it is cancelled.
func (s *Server) work(ctx context.Context) {
	for {
		s.mu.Lock()
		var t *pipeline.Trigger
		if len(s.queue) > 0 {
			q := s.queue[0]
			s.queue = s.queue[1:]
			t = &q
		}
		s.mu.Unlock()
		if t == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			x, err := s.Engine.Run(runCtx, *t)
			if err != nil {
				s.Log.Warn("execution did not run", "branch", t.Branch, "commit", t.Commit, "err", err)
				return
			}
			s.Log.Info("execution finished", "execution", x.ID, "status", x.Status)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.Log.Info("stopping: letting the running execution finish", "grace", s.Grace)
			select {
			case <-done:
			case <-time.After(s.Grace):
				cancel()
				<-done
			}
			cancel()
			return
		}
		cancel()
	}
}

// resumeInterrupted restarts executions a previous daemon left running or
// waiting: from the stage they were in, reusing the images they built.
func (s *Server) resumeInterrupted(ctx context.Context) {
	active, err := s.Store.ActiveExecutions(ctx, s.Config.Project)
	if err != nil {
		return
	}
	for _, x := range active {
		var stages []pipeline.StageState
		_ = json.Unmarshal(x.Stages, &stages)
		from := ""
		for _, st := range stages {
			if st.Status == pipeline.StatusRunning || st.Status == pipeline.StatusWaiting || st.Status == pipeline.StatusPending {
				from = st.Name
				break
			}
		}
		x.Status, x.Error = store.ExecutionFailed, "interrupted: the daemon stopped while it ran; resumed as a new execution"
		if _, err := s.Store.UpdateExecution(ctx, x, x.Generation); err != nil {
			continue
		}
		var vars map[string]string
		_ = json.Unmarshal(x.Variables, &vars)
		var t pipeline.Trigger
		_ = json.Unmarshal([]byte(vars[pipeline.TriggerVar]), &t)
		t.Kind, t.RetryOf, t.FromStage = pipeline.TriggerRetry, x.ID, from
		s.Log.Info("resuming an interrupted execution", "execution", x.ID, "stage", from)
		s.Enqueue(ctx, t)
	}
}

// poll watches the environments' branches for new commits.
func (s *Server) poll(ctx context.Context) {
	p := s.Config.EffectivePipeline()
	if p.Source == nil || p.Source.Poll.Std() <= 0 {
		return
	}
	seen := map[string]string{}
	t := time.NewTicker(p.Source.Poll.Std())
	defer t.Stop()
	for {
		for _, name := range s.Config.EnvironmentNames() {
			branch := s.Config.Environments[name].Branch
			if branch == "" {
				continue
			}
			commit, err := s.Resolve(ctx, s.Repo, branch)
			if err != nil {
				s.Log.Warn("polling", "branch", branch, "err", err)
				continue
			}
			if prev, ok := seen[branch]; ok && prev != commit {
				s.Enqueue(ctx, pipeline.Trigger{Kind: pipeline.TriggerPoll, Branch: branch, Commit: commit})
			}
			seen[branch] = commit
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// routes is the JSON API and the webhook receiver. Every /v1 route needs an
// entry in routePolicies (auth.go): who may call it, how it is audited.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.Webhooks != nil {
		mux.Handle("/webhooks/", s.Webhooks)
	}
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		queued := len(s.queue)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "project": s.Config.Project, "queued": queued})
	})
	mux.HandleFunc("GET /v1/executions", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.Store.ListExecutions(r.Context(), s.Config.Project, 50)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/executions/{id}", func(w http.ResponseWriter, r *http.Request) {
		x, err := s.Store.GetExecution(r.Context(), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, err)
			return
		} else if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, x)
	})
	mux.HandleFunc("POST /v1/executions", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Branch, Commit string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Branch == "" {
			writeError(w, http.StatusBadRequest, errors.New(`body must be {"branch": "...", "commit": "optional sha"}`))
			return
		}
		if req.Commit == "" {
			c, err := s.Resolve(r.Context(), s.Repo, req.Branch)
			if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			req.Commit = c
		}
		setAuditTarget(r, req.Branch+" "+req.Commit)
		s.Enqueue(r.Context(), pipeline.Trigger{Kind: pipeline.TriggerManual, Branch: req.Branch, Commit: req.Commit, Author: identity(r).Name})
		writeJSON(w, http.StatusAccepted, map[string]string{"queued": req.Commit})
	})
	mux.HandleFunc("POST /v1/executions/{id}/approve", s.decide(true))
	mux.HandleFunc("POST /v1/executions/{id}/reject", s.decide(false))
	mux.HandleFunc("POST /v1/executions/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		x, err := s.Store.GetExecution(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		if _, err := s.Store.AppendEvent(r.Context(), store.Event{Project: x.Project, Environment: pipeline.EventScope(x.ID), Kind: pipeline.CancelEvent, Message: identity(r).Name + " (api)"}); err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"cancel": x.ID})
	})
	s.adminRoutes(mux)
	return s.guard(mux)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": strings.TrimSpace(err.Error())})
}
