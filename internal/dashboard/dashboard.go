// Package dashboard is the daemon's web dashboard, served by `cutover
// serve` at /: the environments (serving revision, traffic split, target
// health, the active deployment's step and time left, alarms), their
// history with the buttons that act on them, the executions with their
// stages, live logs and test reports, the approvals with their evidence,
// and the audit log. Pages are rendered on the server (html/template); the
// live parts are HTML fragments pushed by Server-Sent Events to a small
// embedded script. Every asset is embedded: it works offline.
//
// Trust: a browser logs in with an API token or a one-time link from
// `cutover dashboard` and then holds a session cookie (HttpOnly,
// SameSite=Strict, Secure under TLS) whose secret the store keeps only as a
// hash. Every POST carries the session's action key, which the login hands
// to the page's script in the URL's fragment and the script keeps in the
// origin's storage (a host's cookies reach every port of the host, and an
// app there could read every page: the key is in neither), and an Origin header
// (the daemon's guard refuses a foreign Origin before this package sees the
// request). What a role may not do is neither shown as a button nor
// accepted: its action routes answer 403. Actions go through the release
// use cases (Release), the same the API calls, and are recorded in the
// audit log like the API's.
package dashboard

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/stats"
	"github.com/cutoverdev/cutover/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Release is what the dashboard reads and does through the release use
// cases (release.Manager): every decision is taken there, as for the API
// and the CLI. Its calls act as the identity it was made for.
type Release interface {
	Status(ctx context.Context, env string) ([]release.Status, error)
	Deploy(ctx context.Context, env string, o release.DeployOptions) (store.Deployment, error)
	Rollback(ctx context.Context, env string, o release.RollbackOptions) (store.Deployment, error)
	Stop(ctx context.Context, env string) (store.Deployment, error)
	Continue(ctx context.Context, env string) (store.Deployment, error)
	Promote(ctx context.Context, env string) (store.Deployment, error)
	Approve(ctx context.Context, executionID string, d release.Decision) (store.Approval, error)
	Reject(ctx context.Context, executionID string, d release.Decision) (store.Approval, error)
}

// Handler serves the dashboard. Set the fields, then serve it; Close stops
// what it started.
type Handler struct {
	Config *config.Config
	Store  *store.Store
	// Release returns the release use cases acting as who.
	Release func(who auth.Identity) Release
	// Stats reads the load balancer's figures, sampled for the approval
	// page's charts; nil: no charts.
	Stats func(ctx context.Context) (stats.Stats, error)
	// Secure marks the session cookie Secure (the daemon serves TLS, or a
	// proxy in front does); a request that came over TLS is Secure anyway.
	Secure bool
	Now    func() time.Time // default time.Now; tests move it
	Log    *slog.Logger
	// Tick is how often live views look for changes (default 1s).
	Tick time.Duration
	// MaxSessionStreams bounds the live streams one session holds open at
	// once (default 8: a page opens at most two); MaxStreams bounds them
	// all together (default 128). A stream beyond either is refused (429):
	// each holds a connection and reads the store every Tick.
	MaxSessionStreams int
	MaxStreams        int

	once   sync.Once
	mux    *http.ServeMux
	pages  map[string]*template.Template
	series *sampler
	flash  flashes
	open   auth.Streams
	fails  failures
	ctx    context.Context // the work the handler started: actions, sampling
	stop   context.CancelFunc
}

// route policies: the weakest role that may call an action route, and how
// it is audited. A page needs a session of any role; the audit page admin.
type policy struct {
	role   auth.Role
	action string // audit action
}

// actionPolicies names every POST route but login and logout.
var actionPolicies = map[string]policy{
	"POST /environments/{env}/rollback": {auth.RoleDeployer, auth.ActionRollback},
	"POST /environments/{env}/stop":     {auth.RoleDeployer, auth.ActionStop},
	"POST /environments/{env}/continue": {auth.RoleDeployer, auth.ActionContinue},
	"POST /environments/{env}/promote":  {auth.RoleDeployer, auth.ActionPromote},
	"POST /environments/{env}/redeploy": {auth.RoleDeployer, auth.ActionDeploy},
	"POST /executions/{id}/approve":     {auth.RoleApprover, auth.ActionApprove},
	"POST /executions/{id}/reject":      {auth.RoleApprover, auth.ActionReject},
}

const (
	actionLogin  = "login"
	actionLogout = "logout"
)

func (h *Handler) init() {
	h.once.Do(func() {
		if h.Now == nil {
			h.Now = time.Now
		}
		if h.Log == nil {
			h.Log = slog.Default()
		}
		if h.Tick <= 0 {
			h.Tick = time.Second
		}
		if h.MaxSessionStreams <= 0 {
			h.MaxSessionStreams = 8
		}
		if h.MaxStreams <= 0 {
			h.MaxStreams = 128
		}
		h.ctx, h.stop = context.WithCancel(context.Background())
		h.pages = parsePages()
		h.series = newSampler(h.Config.Project, h.Config.EnvironmentNames(), h.Stats)
		if h.Stats != nil {
			go h.series.run(h.ctx, 5*time.Second)
		}
		h.mux = h.routes()
	})
}

// Close stops the sampling and the actions still running in the background
// (a deployment they started is left to its controller's reconciliation,
// as after any interrupted command).
func (h *Handler) Close() {
	h.init()
	h.stop()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// A login link's secret never leaves in a Referer to another site; and
	// the forms' Origin stays the daemon's (no-referrer would send "null").
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginToken)
	mux.HandleFunc("POST /logout", h.logout)

	mux.HandleFunc("GET /{$}", h.page(auth.RoleViewer, h.overview))
	mux.HandleFunc("GET /environments/{env}", h.page(auth.RoleViewer, h.environment))
	mux.HandleFunc("GET /executions", h.page(auth.RoleViewer, h.executions))
	mux.HandleFunc("GET /executions/{id}", h.page(auth.RoleViewer, h.execution))
	mux.HandleFunc("GET /executions/{id}/approval", h.page(auth.RoleViewer, h.approval))
	mux.HandleFunc("GET /audit", h.page(auth.RoleAdmin, h.audit))

	mux.HandleFunc("GET /live/overview", h.live(h.overview))
	mux.HandleFunc("GET /live/environments/{env}", h.live(h.environment))
	mux.HandleFunc("GET /live/executions", h.live(h.executions))
	mux.HandleFunc("GET /live/executions/{id}", h.live(h.execution))
	mux.HandleFunc("GET /live/executions/{id}/log", h.liveLog)

	for pattern, p := range actionPolicies {
		name := pattern[strings.LastIndex(pattern, "/")+1:]
		mux.HandleFunc(pattern, h.action(p, name))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the dashboard has no page "+r.URL.Path, http.StatusNotFound)
	})
	return mux
}
