package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
		var req struct{ Name, Role string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, errors.New(`body must be {"name": "...", "role": "viewer|deployer|approver|admin"}`))
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
		var req struct{ Comment string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, errors.New(`body must be JSON: {"comment": "why (optional)"}`))
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
