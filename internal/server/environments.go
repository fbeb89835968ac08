package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// environmentRequests are the requests a deployer may send to the running
// deployment of an environment, as `cutover stop|continue|rollback|promote`
// do: through the event log its controller polls (release.Manager.Request).
var environmentRequests = map[string]string{
	"stop": deploy.RequestStop, "continue": deploy.RequestContinue, "rollback": deploy.RequestRollback, "promote": deploy.RequestPromote,
}

// environmentRoutes serves POST /v1/environments/{env}/stop|continue|rollback|promote.
//
// A rollback with nothing in progress, or with {"to": "REVISION"}, deploys
// the previous (or that) revision again through release.Manager.Rollback
// and answers when the deployment has ended: 200 with the deployment when
// it succeeded, 409 with it when it did not.
func (s *Server) environmentRoutes(mux *http.ServeMux) {
	for name, kind := range environmentRequests {
		mux.HandleFunc("POST /v1/environments/{env}/"+name, func(w http.ResponseWriter, r *http.Request) {
			env := r.PathValue("env")
			setAuditTarget(r, env)
			if _, ok := s.Config.Environments[env]; !ok {
				writeError(w, http.StatusNotFound, fmt.Errorf("no environment named %q", env))
				return
			}
			var req struct {
				To string `json:"to"` // rollback only: the revision to deploy again
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				writeError(w, http.StatusBadRequest, errors.New(`body must be JSON: {} or, for rollback, {"to": "REVISION"}`))
				return
			}
			if req.To != "" && kind != deploy.RequestRollback {
				writeError(w, http.StatusBadRequest, fmt.Errorf(`"to" names the revision of a rollback; %s takes no revision`, name))
				return
			}
			m := s.releases(r)
			if req.To == "" {
				d, err := m.Request(r.Context(), env, kind)
				switch {
				case err == nil:
					writeJSON(w, http.StatusAccepted, map[string]string{"deployment": d.ID, "requested": name})
					return
				case kind != deploy.RequestRollback && (errors.Is(err, store.ErrNotFound) || d.ID == ""):
					writeError(w, http.StatusConflict, err)
					return
				case d.ID != "":
					writeError(w, http.StatusInternalServerError, err)
					return
				}
			}
			// Nothing in progress to flip back: deploy a stored revision again.
			// The deployment goes on if the client goes away.
			d, err := m.Rollback(context.WithoutCancel(r.Context()), env, release.RollbackOptions{To: req.To})
			var failed release.DeploymentFailed
			var usage release.UsageError
			switch {
			case err == nil:
				writeJSON(w, http.StatusOK, d)
			case errors.As(err, &failed):
				writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "deployment": d})
			case errors.As(err, &usage):
				writeError(w, http.StatusBadRequest, err)
			default:
				writeError(w, http.StatusConflict, err)
			}
		})
	}
}
