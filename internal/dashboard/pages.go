package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// pageFunc builds a page's data for the session; an error wrapping
// store.ErrNotFound is a 404.
type pageFunc func(r *http.Request, s auth.Session) (name string, data any, err error)

// page serves a page to a live session of at least role (the login form
// otherwise, 403 for a weaker role).
func (h *Handler) page(role auth.Role, fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := h.session(r)
		if err != nil {
			h.noSession(w, r, err)
			return
		}
		if !s.Identity.Role.Allows(role) {
			h.render(w, r, http.StatusForbidden, "error", s, errorView{Code: http.StatusForbidden, Status: "Forbidden",
				Message: fmt.Sprintf("%s has the %s role; this page needs %s", s.Identity.Name, s.Identity.Role, role)})
			return
		}
		name, data, err := fn(r, s)
		if errors.Is(err, store.ErrNotFound) {
			h.render(w, r, http.StatusNotFound, "error", s, errorView{Code: http.StatusNotFound, Status: "Not Found", Message: err.Error()})
			return
		} else if err != nil {
			h.render(w, r, http.StatusInternalServerError, "error", s, errorView{Code: 500, Status: "Error", Message: err.Error()})
			return
		}
		h.render(w, r, http.StatusOK, name, s, data)
	}
}

// envCard is an environment as the overview and its page show it.
type envCard struct {
	Name        string
	PromoteFrom string
	Status      release.Status
	Error       string // the status could not be read
	Commit      string
	Images      []image
	Traffic     []segment
	// Refused: what the environment's listeners refused clients in the
	// last ten minutes (the proxy's doing, counted against no release).
	Refused []refusal
}

type image struct{ Service, Ref, Digest string }

// refusal is a count of one kind of refusal at the edge.
type refusal struct {
	Code string // a status, or "conn"
	What string
	N    uint64
}

// refusalWords says what each kind of refusal is.
var refusalWords = map[string]string{
	"400": "malformed or smuggling requests", "408": "heads or bodies too slow", "413": "bodies over max_body_bytes",
	"414": "request lines over max_header_bytes", "431": "heads over max_header_bytes", "501": "CONNECT requests",
	"503": "HTTP/2 requests over the in-flight budget", "505": "HTTP versions not served", "conn": "connections over max_client_conns",
}

// refusals lists counts by kind, statuses first, in order.
func refusals(m map[string]uint64) []refusal {
	var out []refusal
	for _, code := range sortedKeys(m) {
		what := refusalWords[code]
		if what == "" {
			what = "requests answered " + code
		}
		out = append(out, refusal{Code: code, What: what, N: m[code]})
	}
	return out
}

// segment is one color's share of production traffic.
type segment struct {
	Color   string
	Percent int
	X       int // where it starts on the bar, 0-100
}

func (h *Handler) envCards(ctx context.Context, s auth.Session, only string) []envCard {
	names := h.Config.EnvironmentNames()
	if only != "" {
		names = []string{only}
	}
	rel := h.Release(s.Identity)
	var out []envCard
	for _, name := range names {
		c := envCard{Name: name, PromoteFrom: h.Config.Environments[name].PromoteFrom}
		st, err := rel.Status(ctx, name)
		switch {
		case err != nil:
			c.Error = auth.Mask(err.Error())
		case len(st) > 0:
			c.Status = st[0]
		}
		if c.Status.Serving != nil {
			c.Commit = commitOf(c.Status.Serving.Source)
			for _, svc := range sortedKeys(c.Status.Serving.Services) {
				ref := c.Status.Serving.Services[svc].Image
				c.Images = append(c.Images, image{Service: svc, Ref: ref, Digest: digestOf(ref)})
			}
		}
		x := 0
		for _, color := range sortedKeys(c.Status.Traffic) {
			p := c.Status.Traffic[color]
			c.Traffic = append(c.Traffic, segment{Color: color, Percent: p, X: x})
			x += p
		}
		if h.series != nil {
			c.Refused = refusals(h.series.refused(name))
		}
		out = append(out, c)
	}
	return out
}

// pendingView is an approval waiting for a decision.
type pendingView struct {
	store.Approval
	Environment string
	Commit      string
	Left        time.Duration
}

func (h *Handler) pending(ctx context.Context) ([]pendingView, error) {
	as, err := h.Store.PendingApprovals(ctx, h.Config.Project)
	if err != nil {
		return nil, err
	}
	var out []pendingView
	for _, a := range as {
		var ev pipeline.Evidence
		_ = json.Unmarshal(a.Evidence, &ev)
		out = append(out, pendingView{Approval: a, Environment: ev.Environment, Commit: ev.Commit, Left: a.Expires.Sub(h.Now())})
	}
	return out, nil
}

type overviewView struct {
	Envs    []envCard
	Pending []pendingView
}

func (h *Handler) overviewData(ctx context.Context, s auth.Session) (overviewView, error) {
	p, err := h.pending(ctx)
	return overviewView{Envs: h.envCards(ctx, s, ""), Pending: p}, err
}

func (h *Handler) overview(r *http.Request, s auth.Session) (string, any, error) {
	v, err := h.overviewData(r.Context(), s)
	return "overview", v, err
}

// deploymentRow is a deployment in an environment's history.
type deploymentRow struct {
	store.Deployment
	Duration time.Duration
}

type environmentView struct {
	Card        envCard
	Deployments []deploymentRow
	Revisions   []store.Revision
	Events      []store.Event
	Active      bool // a deployment is in progress: stop, continue and promote apply
}

func (h *Handler) environmentData(ctx context.Context, s auth.Session, env string) (environmentView, error) {
	if _, ok := h.Config.Environments[env]; !ok {
		return environmentView{}, fmt.Errorf("no environment named %q: %w", env, store.ErrNotFound)
	}
	v := environmentView{Card: h.envCards(ctx, s, env)[0]}
	ds, err := h.Store.ListDeployments(ctx, h.Config.Project, env, 20)
	if err != nil {
		return v, err
	}
	for _, d := range ds {
		end := h.Now()
		if d.FinishedAt != nil {
			end = *d.FinishedAt
		}
		v.Deployments = append(v.Deployments, deploymentRow{Deployment: d, Duration: end.Sub(d.CreatedAt)})
		v.Active = v.Active || d.Status == store.DeploymentInProgress
	}
	if v.Revisions, err = h.Store.ListRevisions(ctx, h.Config.Project, env, 10); err != nil {
		return v, err
	}
	v.Events, err = h.recentEvents(ctx, env, 30)
	return v, err
}

func (h *Handler) recentEvents(ctx context.Context, env string, n int) ([]store.Event, error) {
	evs, err := h.Store.ListEvents(ctx, store.EventFilter{Project: h.Config.Project, Environment: env})
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	slices.Reverse(evs)
	return evs, err
}

func (h *Handler) environment(r *http.Request, s auth.Session) (string, any, error) {
	v, err := h.environmentData(r.Context(), s, r.PathValue("env"))
	return "environment", v, err
}

// executionRow is an execution with its stages read.
type executionRow struct {
	store.Execution
	Stages []pipeline.StageState
	// Untrusted: a branch outside pipeline.trusted_branches, run as a pull
	// request is (confined, without secrets, never deploying).
	Untrusted bool
}

func readExecution(x store.Execution) executionRow {
	row := executionRow{Execution: x}
	_ = json.Unmarshal(x.Stages, &row.Stages) // opaque to the store; an unreadable one shows no stages
	row.Untrusted = pipeline.UntrustedBranchRun(x)
	return row
}

func (h *Handler) executions(r *http.Request, s auth.Session) (string, any, error) {
	xs, err := h.Store.ListExecutions(r.Context(), h.Config.Project, 50)
	var rows []executionRow
	for _, x := range xs {
		rows = append(rows, readExecution(x))
	}
	return "executions", rows, err
}

type executionView struct {
	executionRow
	Approvals []store.Approval
}

func (h *Handler) executionData(ctx context.Context, id string) (executionView, error) {
	x, err := h.Store.GetExecution(ctx, id)
	if err != nil {
		return executionView{}, err
	}
	if x.Project != h.Config.Project {
		return executionView{}, fmt.Errorf("execution %s is not one of %s: %w", id, h.Config.Project, store.ErrNotFound)
	}
	as, err := h.Store.ListApprovals(ctx, id)
	return executionView{executionRow: readExecution(x), Approvals: as}, err
}

func (h *Handler) execution(r *http.Request, s auth.Session) (string, any, error) {
	v, err := h.executionData(r.Context(), r.PathValue("id"))
	return "execution", v, err
}

// stagingEvidence is the evidence of the environment promoted from, as the
// pipeline's Evidence.Staging carries it (cutover serve's evidence).
type stagingEvidence struct {
	Environment string `json:"environment"`
	Warning     string `json:"warning"`
	Figures     []struct {
		Group         string  `json:"group"`
		Requests      uint64  `json:"requests"`
		P95           float64 `json:"p95_seconds"`
		ErrorRate     float64 `json:"error_rate"`
		ConnectFailed uint64  `json:"connect_failed"`
		Healthy       int     `json:"healthy"`
		Unhealthy     int     `json:"unhealthy"`
	} `json:"load_balancer"`
	Events []store.Event       `json:"events"`
	Logs   map[string][]string `json:"logs"`
}

type approvalView struct {
	Execution executionRow
	Approval  store.Approval
	Evidence  pipeline.Evidence
	Staging   stagingEvidence
	Images    []image
	From      *envCard // the environment promoted from, now
	P95       chart
	Errors    chart
	Pending   bool
}

func (h *Handler) approval(r *http.Request, s auth.Session) (string, any, error) {
	ctx := r.Context()
	xv, err := h.executionData(ctx, r.PathValue("id"))
	if err != nil {
		return "", nil, err
	}
	if len(xv.Approvals) == 0 {
		return "", nil, fmt.Errorf("execution %s has no approval: %w", xv.ID, store.ErrNotFound)
	}
	v := approvalView{Execution: xv.executionRow, Approval: xv.Approvals[len(xv.Approvals)-1]}
	for _, a := range xv.Approvals {
		if a.Status == store.ApprovalPending {
			v.Approval = a
		}
	}
	v.Pending = v.Approval.Status == store.ApprovalPending
	_ = json.Unmarshal(v.Approval.Evidence, &v.Evidence)
	if v.Evidence.Staging != nil {
		raw, _ := json.Marshal(v.Evidence.Staging)
		_ = json.Unmarshal(raw, &v.Staging)
	}
	for _, svc := range sortedKeys(v.Evidence.Images) {
		ref := v.Evidence.Images[svc]
		v.Images = append(v.Images, image{Service: svc, Ref: ref, Digest: digestOf(ref)})
	}
	if from := v.Evidence.PromoteFrom; from != "" && h.Config.Environments[from] != nil {
		c := h.envCards(ctx, s, from)[0]
		v.From = &c
		p95, errs := h.series.series(from)
		v.P95 = lineChart("p95 latency", p95, formatSeconds)
		v.Errors = lineChart("error rate", errs, formatPercent)
	}
	return "approval", v, nil
}

func (h *Handler) audit(r *http.Request, s auth.Session) (string, any, error) {
	es, err := h.Store.ListAudit(r.Context(), time.Time{}, 300)
	slices.Reverse(es)
	return "audit", es, err
}

// commitOf is the commit of a revision's source ("commit abc..."), else the source.
func commitOf(source string) string {
	return strings.TrimPrefix(source, "commit ")
}

// digestOf is the short digest of an image reference pinned by digest.
func digestOf(ref string) string {
	if _, d, ok := strings.Cut(ref, "@sha256:"); ok {
		return "sha256:" + d[:min(12, len(d))]
	}
	if d, ok := strings.CutPrefix(ref, "sha256:"); ok {
		return "sha256:" + d[:min(12, len(d))]
	}
	return ref
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
