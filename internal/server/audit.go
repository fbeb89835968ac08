package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// adminRoutes are the audit log (read only: there is no route that changes
// or removes an entry) and token management. The guard lets only admin
// tokens through.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	s.environmentRoutes(mux)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s %s: the route takes %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Errorf("the API has no route %s %s", r.Method, r.URL.Path))
	})
	mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) {
		since, err := auth.ParseSince(r.URL.Query().Get("since"), time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since: %w", err))
			return
		}
		entries, err := s.Store.ListAudit(r.Context(), since, 1000)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, nonNil(entries))
	})
	mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.Store.ListTokens(r.Context(), false)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, nonNil(list))
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
			Role string `json:"role"`
		}
		if err := decodeBody(w, r, &req, false, `{"name": "...", "role": "viewer|deployer|approver|admin"}`); err != nil {
			writeBodyError(w, err)
			return
		}
		setAuditTarget(r, req.Name)
		t, err := auth.CreateToken(r.Context(), s.Store, identity(r), req.Name, req.Role)
		switch {
		case errors.Is(err, store.ErrConflict):
			writeError(w, http.StatusConflict, err)
		case err != nil:
			writeError(w, http.StatusBadRequest, err)
		default:
			writeJSON(w, http.StatusCreated, t)
		}
	})
	mux.HandleFunc("POST /v1/tokens/{name}/revoke", func(w http.ResponseWriter, r *http.Request) {
		if !noBody(w, r) {
			return
		}
		t, err := auth.RevokeToken(r.Context(), s.Store, r.PathValue("name"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, http.StatusOK, t)
		}
	})
}

// allowedMethods are the methods mux serves r's path with, other than by
// the catch-all: a request with another method gets 405.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := mux.Handler(probe); p != "" && p != "/v1/" {
			allow = append(allow, m)
		}
	}
	return allow
}

func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// decide approves or rejects as the caller's token: release.Manager's
// Approve and Reject apply the environment's approval rules (in one place,
// for the CLI too); a "by" in the body is ignored.
func (s *Server) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Comment string `json:"comment"`
			By      string `json:"by"` // ignored: the decider is the token's identity
		}
		if err := decodeBody(w, r, &req, true, `{"comment": "why (optional)"}`); err != nil {
			writeBodyError(w, err)
			return
		}
		m, decision := s.releases(r), release.Decision{Who: identity(r), Comment: req.Comment}
		decide := m.Reject
		if approve {
			decide = m.Approve
		}
		a, err := decide(r.Context(), r.PathValue("id"), decision)
		switch {
		case errors.Is(err, pipeline.ErrNotAllowed):
			writeError(w, http.StatusForbidden, err)
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusConflict, err)
		default:
			writeJSON(w, http.StatusOK, a)
		}
	}
}
