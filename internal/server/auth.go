package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/cutoverdev/cutover/internal/auth"
)

// routePolicy is who may call a /v1 route, and the audit action a call of a
// mutating route is recorded as.
type routePolicy struct {
	public bool      // no token needed
	role   auth.Role // the weakest role allowed
	action string    // audit action; empty for reads
}

// routePolicies holds every /v1 route by its ServeMux pattern. A /v1 route
// missing here needs the admin role (and is audited when it mutates), so a
// route added without a policy fails closed.
var routePolicies = map[string]routePolicy{
	"GET /v1/health":                       {public: true},
	"/v1/":                                 {role: auth.RoleViewer}, // no such route: 404
	"GET /v1/executions":                   {role: auth.RoleViewer},
	"GET /v1/executions/{id}":              {role: auth.RoleViewer},
	"GET /v1/executions/{id}/evidence":     {role: auth.RoleViewer},
	"GET /v1/executions/{id}/logs":         {role: auth.RoleViewer},
	"GET /v1/environments":                 {role: auth.RoleViewer},
	"GET /v1/environments/{env}":           {role: auth.RoleViewer},
	"POST /v1/environments/{env}/deploy":   {role: auth.RoleDeployer, action: auth.ActionDeploy},
	"GET /v1/openapi.json":                 {public: true},
	"GET /metrics":                         {role: auth.RoleViewer},
	"POST /v1/executions":                  {role: auth.RoleDeployer, action: auth.ActionTrigger},
	"POST /v1/executions/{id}/cancel":      {role: auth.RoleDeployer, action: auth.ActionCancel},
	"POST /v1/executions/{id}/approve":     {role: auth.RoleApprover, action: auth.ActionApprove},
	"POST /v1/executions/{id}/reject":      {role: auth.RoleApprover, action: auth.ActionReject},
	"POST /v1/environments/{env}/stop":     {role: auth.RoleDeployer, action: auth.ActionStop},
	"POST /v1/environments/{env}/continue": {role: auth.RoleDeployer, action: auth.ActionContinue},
	"POST /v1/environments/{env}/rollback": {role: auth.RoleDeployer, action: auth.ActionRollback},
	"POST /v1/environments/{env}/promote":  {role: auth.RoleDeployer, action: auth.ActionPromote},
	"GET /v1/audit":                        {role: auth.RoleAdmin},
	"GET /v1/tokens":                       {role: auth.RoleAdmin},
	"POST /v1/tokens":                      {role: auth.RoleAdmin, action: auth.ActionTokenCreate},
	"POST /v1/tokens/{name}/revoke":        {role: auth.RoleAdmin, action: auth.ActionTokenRevoke},
}

func policyOf(pattern, method string) routePolicy {
	if p, ok := routePolicies[pattern]; ok {
		return p
	}
	p := routePolicy{role: auth.RoleAdmin}
	if mutating(method) {
		p.action = strings.ToLower(method) + " " + pattern
	}
	return p
}

func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

type ctxKey int

const (
	identityKey ctxKey = iota
	auditKey
)

// auditNote lets a handler name the target of its action (e.g. the branch
// and commit it queued) for the audit record the guard writes.
type auditNote struct{ target string }

// identity is the caller the guard authenticated.
func identity(r *http.Request) auth.Identity {
	id, _ := r.Context().Value(identityKey).(auth.Identity)
	return id
}

// setAuditTarget names what the request acted on, for the audit log.
func setAuditTarget(r *http.Request, target string) {
	if n, ok := r.Context().Value(auditKey).(*auditNote); ok {
		n.target = target
	}
}

// guard puts every request through the browser and token checks before mux
// serves it, and writes the audit record of every mutating call:
//
//   - /webhooks/...: untouched (their signature is their authentication);
//     authentic deliveries that asked for a run are audited.
//   - /v1/... and /metrics: the Host must be the daemon's own address or a public name
//     (421 otherwise: DNS rebinding); an Origin, when sent, must be one of
//     them too (403: cross-site requests); then, except for /v1/health, a
//     live bearer token (401) of a strong enough role (403); a mutating
//     call must send a JSON body (415).
func (s *Server) guard(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/webhooks/") {
			s.serveWebhook(mux, w, r)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" {
			s.serveDashboard(w, r) // dashboard.go
			return
		}
		if !s.hostAllowed(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not this daemon's address (%s); add a public name with `cutover serve --public-host NAME`", r.Host, strings.Join(s.hostNames(), ", ")))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(origin) {
			writeError(w, http.StatusForbidden, fmt.Errorf("cross-origin request from %q refused", origin))
			return
		}
		_, pattern := mux.Handler(r)
		p := policyOf(pattern, r.Method)
		if p.public {
			mux.ServeHTTP(w, r)
			return
		}
		who, err := auth.Authenticate(r.Context(), s.Store, r.Header.Get("Authorization"), r.RemoteAddr)
		if err != nil {
			code := http.StatusUnauthorized
			if !errors.Is(err, auth.ErrNoToken) && !errors.Is(err, auth.ErrBadToken) {
				code = http.StatusInternalServerError
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cutover"`)
			}
			s.Log.Warn("API request refused: not authenticated", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			writeError(w, code, err)
			return
		}
		note := &auditNote{}
		ctx := context.WithValue(context.WithValue(r.Context(), identityKey, who), auditKey, note)
		r = r.WithContext(ctx)
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p.action == "" {
				return
			}
			if note.target == "" {
				note.target = firstNonEmpty(r.PathValue("id"), r.PathValue("name"), pathTarget(pattern, r.URL.Path))
			}
			if err := auth.Record(r.Context(), s.Store, who, p.action, note.target, rec.outcome()); err != nil {
				s.Log.Error("cannot write the audit log", "action", p.action, "err", err)
			}
		}()
		switch {
		case !who.Role.Allows(p.role):
			writeError(rec, http.StatusForbidden, fmt.Errorf("forbidden: token %q has the %s role; %s %s needs %s", who.Name, who.Role, r.Method, r.URL.Path, p.role))
		case mutating(r.Method) && pattern != "/v1/" && !isJSON(r.Header.Get("Content-Type")):
			writeError(rec, http.StatusUnsupportedMediaType, errors.New("send the request body as JSON with `Content-Type: application/json`"))
		default:
			mux.ServeHTTP(rec, r)
		}
	})
}

// serveWebhook passes a webhook to its handler and audits an authentic
// delivery that asked for a run (accepted, malformed or not startable).
func (s *Server) serveWebhook(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w}
	mux.ServeHTTP(rec, r)
	switch rec.code {
	case http.StatusOK, http.StatusBadRequest, http.StatusServiceUnavailable:
	default:
		return // unauthenticated, ignored (pings, tags) or not configured
	}
	var resp struct{ Kind, Branch, Commit, Message string }
	_ = json.Unmarshal(rec.body.Bytes(), &resp)
	var outcome error
	if rec.code != http.StatusOK {
		outcome = errors.New(firstNonEmpty(resp.Message, http.StatusText(rec.code)))
	}
	who := auth.Identity{Name: "webhook " + strings.TrimPrefix(r.URL.Path, "/webhooks/"), Via: auth.ViaWebhook, Remote: r.RemoteAddr}
	target := strings.TrimSpace(resp.Kind + " " + resp.Branch + " " + resp.Commit)
	if err := auth.Record(r.Context(), s.Store, who, auth.ActionTrigger, target, outcome); err != nil {
		s.Log.Error("cannot write the audit log", "action", auth.ActionTrigger, "err", err)
	}
}

// pathTarget is the {id} or {name} wildcard of pattern in path, for the
// audit record of a request refused before the mux saw it; else the path.
func pathTarget(pattern, path string) string {
	_, pat, _ := strings.Cut(pattern, " ")
	ps, segs := strings.Split(pat, "/"), strings.Split(path, "/")
	if len(ps) == len(segs) {
		for i, p := range ps {
			if p == "{id}" || p == "{name}" || p == "{env}" {
				return segs[i]
			}
		}
	}
	return path
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// recorder remembers the status and (for errors and webhooks) the body of
// an answer, for the audit record.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

// Unwrap lets http.ResponseController reach the connection (flushes).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.body.Len() < 8<<10 {
		r.body.Write(b[:min(len(b), 8<<10-r.body.Len())])
	}
	return r.ResponseWriter.Write(b)
}

// outcome is nil for a success, else the error the answer carried.
func (r *recorder) outcome() error {
	if r.code < 400 {
		return nil
	}
	var e struct{ Error string }
	_ = json.Unmarshal(r.body.Bytes(), &e)
	return fmt.Errorf("%d %s", r.code, firstNonEmpty(e.Error, http.StatusText(r.code)))
}

// hostNames are the Host values the API answers to: its listen address
// (with the loopback names when it listens on loopback or on every
// interface) and the configured public names.
func (s *Server) hostNames() []string {
	var names []string
	if s.addr != nil {
		host, port, _ := net.SplitHostPort(s.addr.String())
		names = append(names, net.JoinHostPort(host, port))
		if ip, err := netip.ParseAddr(host); err == nil && (ip.IsLoopback() || ip.IsUnspecified()) {
			names = append(names, "localhost:"+port, "127.0.0.1:"+port, "[::1]:"+port)
		}
	}
	return append(names, s.PublicHosts...)
}

// hostAllowed: host (as in a Host header or an origin) is one of
// hostNames; a public name given without a port matches any port.
func (s *Server) hostAllowed(host string) bool {
	bare := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		bare = h
	}
	for _, n := range s.hostNames() {
		if strings.EqualFold(n, host) {
			return true
		}
		if _, _, err := net.SplitHostPort(n); err != nil && strings.EqualFold(n, bare) {
			return true
		}
	}
	return false
}

func (s *Server) originAllowed(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // includes "null" (sandboxed frames, file: pages)
	}
	return s.hostAllowed(u.Host)
}

func (s *Server) checkExposure() error {
	return CheckExposure(s.Addr, s.TLSCert, s.TLSKey, s.BehindProxy)
}

// CheckExposure refuses to serve the API beyond this machine in plain HTTP:
// tokens would cross the network in the clear. TLS (--tls-cert/--tls-key),
// or a proxy in front that terminates it (--behind-proxy), lifts it. Run
// checks it; `cutover serve` checks it first, before starting anything.
func CheckExposure(addr, tlsCert, tlsKey string, behindProxy bool) error {
	if (tlsCert == "") != (tlsKey == "") {
		return errors.New("cutover serve: --tls-cert and --tls-key go together: give both, or neither")
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		example := "127.0.0.1:8790"
		if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
			example = "127.0.0.1:" + addr
		}
		return fmt.Errorf("cutover serve: --addr %q is not HOST:PORT (write %s, for instance)", addr, example)
	}
	if tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(tlsCert, tlsKey); err != nil {
			return fmt.Errorf("cutover serve: --tls-cert %s / --tls-key %s: %v", tlsCert, tlsKey, err)
		}
		return nil
	}
	if behindProxy || loopback(addr) {
		return nil
	}
	return fmt.Errorf("cutover serve: --addr %s is reachable from other machines and the API would carry tokens in plain HTTP; "+
		"serve TLS (--tls-cert FILE --tls-key FILE), or say a proxy in front terminates TLS (--behind-proxy), or listen on 127.0.0.1", addr)
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// serve serves srv on ln, with TLS when it is configured.
func (s *Server) serve(srv *http.Server, ln net.Listener) error {
	if s.TLSCert != "" {
		return srv.ServeTLS(ln, s.TLSCert, s.TLSKey)
	}
	return srv.Serve(ln)
}
