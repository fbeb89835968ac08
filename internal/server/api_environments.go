package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// launchWait is how long a deploy request waits for its deployment to be
// recorded (or to fail) before it answers; the deployment then goes on in
// the daemon.
const launchWait = 30 * time.Second

// environmentView is GET /v1/environments/{env}: the environment's release
// status and its history.
type environmentView struct {
	release.Status
	History release.History `json:"history"`
}

// apiEnvironmentRoutes serves the environments' reads and the redeploy of
// a stored revision. Every decision is release.Manager's; these handlers
// only check the request's shape and map errors to status codes.
func (s *Server) apiEnvironmentRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/environments", func(w http.ResponseWriter, r *http.Request) {
		out := []release.Status{}
		for _, env := range s.Config.EnvironmentNames() {
			st, err := s.releases(r).Status(r.Context(), env)
			if err != nil {
				writeReleaseError(w, err)
				return
			}
			out = append(out, st...)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/environments/{env}", func(w http.ResponseWriter, r *http.Request) {
		env, ok := s.environment(w, r)
		if !ok {
			return
		}
		st, err := s.releases(r).Status(r.Context(), env)
		if err != nil {
			writeReleaseError(w, err)
			return
		}
		if len(st) == 0 {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("no status for environment %q", env))
			return
		}
		h, err := s.releases(r).History(r.Context(), env, 20)
		if err != nil {
			writeReleaseError(w, err)
			return
		}
		h.Deployments, h.Revisions = nonNil(h.Deployments), nonNil(h.Revisions)
		writeJSON(w, http.StatusOK, environmentView{Status: st[0], History: h})
	})
	const deployShape = `{"revision": "a stored revision of the environment (see GET /v1/environments/{env})"}`
	mux.HandleFunc("POST /v1/environments/{env}/deploy", func(w http.ResponseWriter, r *http.Request) {
		env, ok := s.environment(w, r)
		if !ok {
			return
		}
		var req struct {
			Revision string `json:"revision"`
		}
		if err := decodeBody(w, r, &req, false, deployShape); err != nil {
			writeBodyError(w, err)
			return
		}
		if req.Revision == "" {
			missingField(w, "revision", deployShape)
			return
		}
		setAuditTarget(r, env+" "+req.Revision)
		// A revision that does not exist is a 404 here; whether it may
		// be deployed to env is the Manager's decision (400 if not).
		if rev, err := s.Store.GetRevision(r.Context(), req.Revision); errors.Is(err, store.ErrNotFound) || err == nil && rev.Project != s.Config.Project {
			writeError(w, http.StatusNotFound, fmt.Errorf("no revision %q; the revisions of %s are listed by GET /v1/environments/%s", req.Revision, env, env))
			return
		} else if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		m := s.releases(r)
		s.launch(w, r, env, func(ctx context.Context) (store.Deployment, error) {
			return m.Deploy(ctx, env, release.DeployOptions{Revision: req.Revision, Command: "cutover serve (api)"})
		})
	})
}

// environment is the {env} of r when the project has it; else it answers 404.
func (s *Server) environment(w http.ResponseWriter, r *http.Request) (string, bool) {
	env := r.PathValue("env")
	setAuditTarget(r, env)
	if _, ok := s.Config.Environments[env]; !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no environment named %q; the project's environments are listed by GET /v1/environments", env))
		return "", false
	}
	return env, true
}

// launch runs a deploying use case in the daemon, beyond the request (on
// the daemon's context, under the environment's lease the use case takes).
// It answers 202 with the deployment once the controller has recorded it,
// or the use case's own answer if it ends first: 200 with the deployment
// (succeeded or failed), or its error.
func (s *Server) launch(w http.ResponseWriter, r *http.Request, env string, run func(ctx context.Context) (store.Deployment, error)) {
	began := time.Now().Add(-time.Second) // the store's clock granularity
	prev, _ := s.Store.ActiveDeployment(r.Context(), s.Config.Project, env)
	type result struct {
		d   store.Deployment
		err error
	}
	done := make(chan result, 1)
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		d, err := run(s.runCtx)
		if err != nil {
			s.Log.Warn("deployment requested through the API ended", "environment", env, "err", err)
		}
		done <- result{d, err}
	}()
	deadline := time.After(launchWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			var failed release.DeploymentFailed
			switch {
			case errors.As(res.err, &failed):
				writeJSON(w, http.StatusOK, failed.Deployment)
			case res.err != nil:
				writeReleaseError(w, res.err)
			default:
				writeJSON(w, http.StatusOK, res.d)
			}
			return
		case <-tick.C:
			d, err := s.Store.ActiveDeployment(r.Context(), s.Config.Project, env)
			if err == nil && d.ID != prev.ID && !d.CreatedAt.Before(began) {
				w.Header().Set("Location", "/v1/environments/"+env)
				writeJSON(w, http.StatusAccepted, d)
				return
			}
		case <-deadline:
			writeError(w, http.StatusGatewayTimeout, fmt.Errorf("the deployment of %s has not started within %s; it goes on in the daemon: see GET /v1/environments/%s", env, launchWait, env))
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeReleaseError maps a release use case's error to its status code.
func writeReleaseError(w http.ResponseWriter, err error) {
	var usage release.UsageError
	switch {
	case errors.As(err, &usage):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, store.ErrLeaseHeld), errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}
