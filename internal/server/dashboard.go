package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/dashboard"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/release"
)

// newDashboard is the web dashboard of `cutover serve`: its actions go
// through m, as the API's do, acting as the logged-in identity.
func newDashboard(m *release.Manager, secure bool, log *slog.Logger) *dashboard.Handler {
	return &dashboard.Handler{
		Config: m.Config, Store: m.Store, Secure: secure, Log: log,
		Release: func(who auth.Identity) dashboard.Release { return m.As(who.Name + " (dashboard)") },
		Stats:   proxy.NewClient(m.Home).Stats,
	}
}

// serveDashboard serves everything outside /v1 and /webhooks: the web
// dashboard, after the same browser checks as the API: the Host must be
// the daemon's own (421: DNS rebinding), an Origin when sent must be too
// (403: cross-site requests). The dashboard itself authenticates its
// session cookie, checks each form's action key and role, and audits.
func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		http.Error(w, fmt.Sprintf("host %q is not this daemon's address (%s); add a public name with `cutover serve --public-host NAME`",
			r.Host, strings.Join(s.hostNames(), ", ")), http.StatusMisdirectedRequest)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(origin) {
		s.Log.Warn("dashboard request refused: cross-origin", "origin", origin, "remote", r.RemoteAddr, "path", r.URL.Path)
		http.Error(w, fmt.Sprintf("cross-origin request from %q refused", origin), http.StatusForbidden)
		return
	}
	if s.Dashboard == nil {
		http.NotFound(w, r)
		return
	}
	s.Dashboard.ServeHTTP(w, r)
}
