package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// environmentRequests are the requests a deployer may send to the running
// deployment of an environment, as `cutover stop|continue|rollback` do:
// through the event log its controller polls.
var environmentRequests = map[string]string{
	"stop": deploy.RequestStop, "continue": deploy.RequestContinue, "rollback": deploy.RequestRollback,
}

// environmentRoutes serves POST /v1/environments/{env}/stop|continue|rollback.
func (s *Server) environmentRoutes(mux *http.ServeMux) {
	for name, kind := range environmentRequests {
		mux.HandleFunc("POST /v1/environments/{env}/"+name, func(w http.ResponseWriter, r *http.Request) {
			env := r.PathValue("env")
			setAuditTarget(r, env)
			if _, ok := s.Config.Environments[env]; !ok {
				writeError(w, http.StatusNotFound, fmt.Errorf("no environment named %q", env))
				return
			}
			d, err := deploy.Request(r.Context(), s.Store, s.Config.Project, env, kind, identity(r).Name+" (api)")
			switch {
			case errors.Is(err, store.ErrNotFound) || (err != nil && d.ID == ""):
				writeError(w, http.StatusConflict, fmt.Errorf("%v; a rollback after the termination wait redeploys the previous revision: run `cutover rollback %s` on the daemon's machine", err, env))
			case err != nil:
				writeError(w, http.StatusInternalServerError, err)
			default:
				writeJSON(w, http.StatusAccepted, map[string]string{"deployment": d.ID, "requested": name})
			}
		})
	}
}
