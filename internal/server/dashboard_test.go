package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/dashboard"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// dashRelease stands in for release.Manager in these tests, which attack
// the dashboard's doors, not deployments (the browser test in
// internal/cli drives the real Manager against Docker): approve and reject
// go to pipeline.Decide, the function the Manager calls; the environment
// actions are recorded with who asked.
type dashRelease struct {
	s   *Server
	who auth.Identity
	log *callLog
}

type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(c string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func (l *callLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

func (r dashRelease) Status(ctx context.Context, env string) ([]release.Status, error) {
	return []release.Status{{Environment: env, Status: "up", Traffic: map[string]int{"blue": 100}}}, nil
}
func (r dashRelease) record(what, env string) (store.Deployment, error) {
	r.log.add(what + " " + env + " by " + r.who.Name)
	return store.Deployment{ID: "d-test", Status: store.DeploymentInProgress}, nil
}
func (r dashRelease) Deploy(ctx context.Context, env string, o release.DeployOptions) (store.Deployment, error) {
	return r.record("deploy "+o.Revision, env)
}
func (r dashRelease) Rollback(ctx context.Context, env string, o release.RollbackOptions) (store.Deployment, error) {
	return r.record("rollback", env)
}
func (r dashRelease) Stop(ctx context.Context, env string) (store.Deployment, error) {
	return r.record("stop", env)
}
func (r dashRelease) Continue(ctx context.Context, env string) (store.Deployment, error) {
	return r.record("continue", env)
}
func (r dashRelease) Promote(ctx context.Context, env string) (store.Deployment, error) {
	return r.record("promote", env)
}
func (r dashRelease) Approve(ctx context.Context, id string, d release.Decision) (store.Approval, error) {
	return pipeline.Decide(ctx, r.s.Store, r.s.Config, d.Who, id, true, d.Comment)
}
func (r dashRelease) Reject(ctx context.Context, id string, d release.Decision) (store.Approval, error) {
	return pipeline.Decide(ctx, r.s.Store, r.s.Config, d.Who, id, false, d.Comment)
}

// dashServer is a running daemon serving the dashboard, with a clock the
// test moves.
type dashServer struct {
	*authServer
	skew  atomic.Int64 // added to the real time
	calls *callLog
}

func newDashServer(t *testing.T) *dashServer {
	t.Helper()
	return newDashServerWith(t, nil)
}

// newDashServerWith is newDashServer with setup applied to the dashboard
// before the daemon starts.
func newDashServerWith(t *testing.T, setup func(*dashboard.Handler)) *dashServer {
	t.Helper()
	d := &dashServer{calls: &callLog{}}
	a := newAuthServerWith(t, "{ required: true }", nil, func(s *Server) {
		h := &dashboard.Handler{
			Config: s.Config, Store: s.Store, Tick: 50 * time.Millisecond,
			Now:     func() time.Time { return time.Now().Add(time.Duration(d.skew.Load())) },
			Release: func(who auth.Identity) dashboard.Release { return dashRelease{s: s, who: who, log: d.calls} },
		}
		if setup != nil {
			setup(h)
		}
		s.Dashboard = h
	})
	d.authServer = a
	return d
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, sending the daemon's own Origin on POSTs as a browser does.
type browser struct {
	t      *testing.T
	base   string
	c      *http.Client
	origin string
	// key is the session's action key, as live.js keeps it: from the
	// fragment of the page a login goes to.
	key string
}

// loggedIn reports whether a login's answer goes to the overview with
// the session's action key in the fragment.
func loggedIn(code int, h http.Header) bool {
	return code == http.StatusSeeOther && strings.HasPrefix(h.Get("Location"), "/#key=")
}

func (d *dashServer) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: d.base, origin: d.base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	if k, ok := strings.CutPrefix(resp.Header.Get("Location"), "/#key="); ok {
		b.key = k
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), resp.Header
}

// login logs b in with the token of name and returns the session's action key.
func (b *browser) login(token string) string {
	b.t.Helper()
	code, body, h := b.post("/login", url.Values{"token": {token}})
	if !loggedIn(code, h) {
		b.t.Fatalf("login: %d %s\n%s", code, h.Get("Location"), body)
	}
	return b.actionKey()
}

var linkFormRE = regexp.MustCompile(`name="link" value="([^"]*)"`)

// useLink opens a login link (path: /login?link=...) as a person does: the
// page, then its button, which posts the link.
func (b *browser) useLink(path string) (int, string, http.Header) {
	b.t.Helper()
	code, body, _ := b.get(path)
	m := linkFormRE.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		b.t.Fatalf("login link page: %d, no link form\n%s", code, body)
	}
	return b.post("/login", url.Values{"link": {m[1]}})
}

// actionKey is the key b's forms send: what its login left in the
// browser's storage, never in a page (an overview with the key's empty
// field is checked).
func (b *browser) actionKey() string {
	b.t.Helper()
	code, body, _ := b.get("/")
	if code != http.StatusOK || !strings.Contains(body, `name="key" value=""`) || b.key != "" && strings.Contains(body, b.key) {
		b.t.Fatalf("overview: %d, without the empty action key field, or with the key in it\n%s", code, body)
	}
	return b.key
}

func (b *browser) sessionCookie() *http.Cookie {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == dashboard.CookieName {
			return c
		}
	}
	return nil
}

// actionRoutes are the dashboard's action routes for environment
// production and execution id.
func actionRoutes(id string) []string {
	return []string{
		"/environments/production/rollback", "/environments/production/stop", "/environments/production/continue",
		"/environments/production/promote", "/environments/production/redeploy",
		"/executions/" + id + "/approve", "/executions/" + id + "/reject",
	}
}

func TestDashboardRefusesAnonymousForgedAndCrossSiteRequests(t *testing.T) {
	d := newDashServer(t)
	anon := d.browser(t)
	for _, p := range []string{"/", "/environments/production", "/executions", "/audit"} {
		if code, _, h := anon.get(p); code != http.StatusSeeOther || h.Get("Location") != "/login" {
			t.Fatalf("anonymous GET %s: %d %s, want 303 to /login", p, code, h.Get("Location"))
		}
	}
	if code, _, _ := anon.get("/live/overview"); code != http.StatusUnauthorized {
		t.Fatalf("anonymous live stream: %d, want 401", code)
	}
	for _, p := range actionRoutes("x-1") {
		if code, _, _ := anon.post(p, url.Values{"key": {"0"}}); code != http.StatusUnauthorized {
			t.Fatalf("anonymous POST %s: %d, want 401", p, code)
		}
	}
	// A wrong token logs nobody in, and the failure is audited.
	if code, body, h := anon.post("/login", url.Values{"token": {auth.TokenPrefix + strings.Repeat("A", 52)}}); code != http.StatusUnauthorized || h.Get("Set-Cookie") != "" {
		t.Fatalf("login with a bogus token: %d %q\n%s", code, h.Get("Set-Cookie"), body)
	}

	// A forged cookie (well-formed, or not) opens nothing.
	forged := d.browser(t)
	u, _ := url.Parse(d.base)
	for _, v := range []string{strings.Repeat("A", 52), "x", auth.Hash("y")} {
		forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: dashboard.CookieName, Value: v, Path: "/"}})
		if code, _, h := forged.get("/"); code != http.StatusSeeOther || h.Get("Location") != "/login" {
			t.Fatalf("forged cookie %q: %d %s", v, code, h.Get("Location"))
		}
	}

	// The cookie is HttpOnly and SameSite=Strict; not Secure over plain HTTP.
	b := d.browser(t)
	_, _, h := b.post("/login", url.Values{"token": {d.tokens["admin"]}})
	sc := h.Get("Set-Cookie")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") || strings.Contains(sc, d.tokens["admin"]) {
		t.Fatalf("session cookie %q: want HttpOnly, SameSite=Strict, and not the token", sc)
	}
	key := b.actionKey()
	x := d.trigger(t, "deployer")

	// A form without an Origin, from another site, or without the right
	// CSRF token is refused, and nothing is done.
	for name, try := range map[string]func() int{
		"no CSRF token": func() int { c, _, _ := b.post("/environments/production/stop", url.Values{}); return c },
		"wrong CSRF": func() int {
			c, _, _ := b.post("/environments/production/stop", url.Values{"key": {strings.Repeat("0", 64)}})
			return c
		},
		"another's CSRF": func() int {
			c, _, _ := b.post("/environments/production/stop", url.Values{"key": {d.browserAs(t, "deployer").actionKey()}})
			return c
		},
		"no Origin": func() int {
			b.origin = ""
			defer func() { b.origin = d.base }()
			c, _, _ := b.post("/environments/production/stop", url.Values{"key": {key}})
			return c
		},
		"cross-site Origin": func() int {
			b.origin = "https://evil.example"
			defer func() { b.origin = d.base }()
			c, _, _ := b.post("/executions/"+x.ID+"/approve", url.Values{"key": {key}})
			return c
		},
		"cross-site login": func() int {
			o := d.browser(t)
			o.origin = "http://127.0.0.1.evil.example"
			c, _, _ := o.post("/login", url.Values{"token": {d.tokens["admin"]}})
			return c
		},
	} {
		if code := try(); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if calls := d.calls.list(); len(calls) != 0 {
		t.Fatalf("refused forms reached the release use cases: %v", calls)
	}
	if ap := d.approval(t, x.ID); ap.Status != store.ApprovalPending {
		t.Fatalf("after a cross-site approve the approval is %s", ap.Status)
	}
	// A rebinding Host is refused before the dashboard.
	req, _ := http.NewRequest(http.MethodGet, d.base+"/login", nil)
	req.Host = "evil.example:80"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %v %v, want 421", resp.StatusCode, err)
	}

	// With all of it right, the action runs as the session's identity.
	if code, _, h := b.post("/environments/production/stop", url.Values{"key": {key}}); code != http.StatusSeeOther || h.Get("Location") != "/environments/production" {
		t.Fatalf("stop: %d %s", code, h.Get("Location"))
	}
	if calls := d.calls.list(); len(calls) != 1 || calls[0] != "stop production by admin" {
		t.Fatalf("calls = %v", calls)
	}
}

// browserAs is a browser logged in with the token named who.
func (d *dashServer) browserAs(t *testing.T, who string) *browser {
	b := d.browser(t)
	b.login(d.tokens[who])
	return b
}

func TestDashboardViewerSeesNoButtonsAndIsRefusedEveryAction(t *testing.T) {
	d := newDashServer(t)
	x := d.trigger(t, "deployer")
	v := d.browserAs(t, "viewer")
	key := v.actionKey()
	for _, p := range []string{"/", "/environments/production", "/executions", "/executions/" + x.ID, "/executions/" + x.ID + "/approval"} {
		code, body, _ := v.get(p)
		if code != http.StatusOK {
			t.Fatalf("viewer GET %s: %d\n%s", p, code, body)
		}
		for _, button := range []string{`id="rollback"`, `id="stop"`, `id="promote"`, `id="approve"`, `id="reject"`, ">Redeploy<", `href="/audit"`} {
			if strings.Contains(body, button) {
				t.Fatalf("viewer sees %s on %s", button, p)
			}
		}
	}
	if code, _, _ := v.get("/audit"); code != http.StatusForbidden {
		t.Fatalf("viewer GET /audit: %d, want 403", code)
	}
	for _, p := range actionRoutes(x.ID) {
		if code, body, _ := v.post(p, url.Values{"key": {key}, "revision": {"r-1"}}); code != http.StatusForbidden {
			t.Fatalf("viewer POST %s: %d, want 403\n%s", p, code, body)
		}
	}
	// A deployer may act on environments but not decide approvals.
	dep := d.browserAs(t, "deployer")
	for _, verb := range []string{"approve", "reject"} {
		if code, _, _ := dep.post("/executions/"+x.ID+"/"+verb, url.Values{"key": {dep.actionKey()}}); code != http.StatusForbidden {
			t.Fatalf("deployer %s: %d, want 403", verb, code)
		}
	}
	if calls := d.calls.list(); len(calls) != 0 {
		t.Fatalf("refused actions reached the release use cases: %v", calls)
	}
	if ap := d.approval(t, x.ID); ap.Status != store.ApprovalPending {
		t.Fatalf("after refused decisions the approval is %s", ap.Status)
	}
	// The refusals are in the audit log, with the viewer's name.
	entries, _ := d.Store.ListAudit(context.Background(), time.Time{}, 0)
	refused := 0
	for _, e := range entries {
		if e.Actor == "viewer" && e.Via == auth.ViaDashboard && strings.HasPrefix(e.Outcome, "403") {
			refused++
		}
	}
	if refused != len(actionRoutes(x.ID)) {
		t.Fatalf("%d refusals of the viewer audited, want %d: %+v", refused, len(actionRoutes(x.ID)), entries)
	}

	// An approver approves from the approval page; the approver recorded
	// is the session's identity, whatever the form says.
	ap := d.browserAs(t, "approver")
	code, body, _ := ap.get("/executions/" + x.ID + "/approval")
	if code != http.StatusOK || !strings.Contains(body, `id="approve"`) {
		t.Fatalf("approver's approval page: %d\n%s", code, body)
	}
	if code, _, h := ap.post("/executions/"+x.ID+"/approve", url.Values{"key": {ap.actionKey()}, "comment": {"looks good"}, "by": {"cto"}}); code != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", code, h.Get("Location"))
	}
	if got := d.approval(t, x.ID); got.Status != store.ApprovalApproved || got.DecidedBy != "approver" || got.Comment != "looks good" {
		t.Fatalf("approval = %+v", got)
	}
}

func TestDashboardLoginLinksAndLogout(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	owner := auth.Identity{Name: "owner", Role: auth.RoleAdmin}
	link := func() string {
		l, err := dashboard.NewLink(ctx, d.Store, owner, strings.TrimPrefix(d.base, "http://"), time.Now().Add(time.Duration(d.skew.Load())))
		if err != nil || !l.Answering || !strings.HasPrefix(l.URL, d.base+"/login?link=") {
			t.Fatalf("NewLink = %+v, %v", l, err)
		}
		return strings.TrimPrefix(l.URL, d.base)
	}

	// Used once: a second use, even by the same browser, is refused.
	first := link()
	b := d.browser(t)
	if code, _, h := b.useLink(first); !loggedIn(code, h) {
		t.Fatalf("first use: %d %s", code, h.Get("Location"))
	}
	if code, body, _ := b.get("/audit"); code != http.StatusOK || !strings.Contains(body, "owner") {
		t.Fatalf("the link's session is the owner's, an admin: %d", code)
	}
	if code, body, _ := d.browser(t).useLink(first); code != http.StatusForbidden || !strings.Contains(body, "used already") {
		t.Fatalf("second use: %d\n%s", code, body)
	}

	// Expired: 5 minutes later it opens nothing.
	late := link()
	d.skew.Store(int64(5*time.Minute + time.Second))
	if code, body, h := d.browser(t).useLink(late); code != http.StatusForbidden || !strings.Contains(body, "expired") || h.Get("Set-Cookie") != "" {
		t.Fatalf("expired link: %d %q\n%s", code, h.Get("Set-Cookie"), body)
	}
	// Within 5 minutes it works.
	soon := link()
	d.skew.Add(int64(4 * time.Minute))
	if code, _, _ := d.browser(t).useLink(soon); code != http.StatusSeeOther {
		t.Fatalf("a link 4 minutes old: %d", code)
	}
	if code, _, _ := d.browser(t).useLink("/login?link=cutover-link_" + strings.Repeat("A", 52)); code != http.StatusForbidden {
		t.Fatalf("an unknown link: %d", code)
	}

	// Logout ends the session on the server: the old cookie, replayed, opens nothing.
	d.skew.Store(0)
	b = d.browserAs(t, "admin")
	old := b.sessionCookie()
	if code, _, h := b.post("/logout", url.Values{"key": {b.actionKey()}}); code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Fatalf("logout: %d %s", code, h.Get("Location"))
	}
	replay := d.browser(t)
	u, _ := url.Parse(d.base)
	replay.c.Jar.SetCookies(u, []*http.Cookie{old})
	if code, _, h := replay.get("/"); code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Fatalf("the cookie after logout: %d %s", code, h.Get("Location"))
	}

	// A session started from a token ends when the token is revoked.
	b = d.browserAs(t, "deployer")
	if _, err := auth.RevokeToken(ctx, d.Store, "deployer"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := b.get("/"); code != http.StatusSeeOther {
		t.Fatalf("a session of a revoked token: %d", code)
	}
}

// An execution's page shows its stages with their JUnit reports, and its
// log streams over SSE with credentials masked, ending once the
// execution has finished.
func TestDashboardExecutionPageAndLiveLog(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	now := time.Now().UTC()
	stages, _ := json.Marshal([]pipeline.StageState{{Name: "test", Status: pipeline.StatusFailed, Started: &now, Finished: &now,
		Actions: []pipeline.ActionState{{Name: "unit", Kind: "test", Status: pipeline.StatusFailed, Summary: "2 of 5 tests failed",
			Reports: []pipeline.Suite{{Name: "backend", Tests: 5, Passed: 2, Failed: 2, Skipped: 1,
				FailedCases: []string{"api.TestPay: want 200, got 500", "api.TestRefund: <script>alert(1)</script>"}}}}}}})
	x := store.Execution{ID: "x-junit", Project: d.Config.Project, Pipeline: "main", Trigger: store.TriggerManual,
		Branch: "main", Commit: strings.Repeat("a", 40), Status: store.ExecutionFailed, Stages: stages}
	if err := d.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	leak := auth.TokenPrefix + strings.Repeat("Q", 52)
	if err := d.Store.AppendLog(ctx, x.ID, "unit", []string{"=== RUN TestPay", "token " + leak + " in the output"}); err != nil {
		t.Fatal(err)
	}
	b := d.browserAs(t, "viewer")
	code, body, _ := b.get("/executions/" + x.ID)
	for _, want := range []string{"2 passed", "2 failed", "1 skipped", "api.TestPay: want 200, got 500", "&lt;script&gt;alert(1)&lt;/script&gt;", `data-stage="test"`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("execution page (%d) lacks %q:\n%s", code, want, body)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Fatal("a failure message was not escaped")
	}

	req, _ := http.NewRequest(http.MethodGet, d.base+"/live/executions/"+x.ID+"/log", nil)
	req.Header.Set("Last-Event-ID", "0")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16)) // the stream ends: the execution has finished
	stream := string(raw)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		!strings.Contains(stream, "id: 1\nevent: log\n") || !strings.Contains(stream, "=== RUN TestPay") ||
		!strings.Contains(stream, "event: end\ndata: failed") {
		t.Fatalf("log stream: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), stream)
	}
	if strings.Contains(stream, leak) {
		t.Fatalf("the log stream shows a token:\n%s", stream)
	}
	// Resuming after line 1 sends only line 2.
	req.Header.Set("Last-Event-ID", "1")
	resp2, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(io.LimitReader(resp2.Body, 1<<16))
	resp2.Body.Close()
	if strings.Contains(string(raw), "=== RUN") || !strings.Contains(string(raw), "id: 2\n") {
		t.Fatalf("resumed stream:\n%s", raw)
	}
	// Another project's execution is not shown.
	if err := d.Store.CreateExecution(ctx, store.Execution{ID: "x-other", Project: "other", Pipeline: "main", Trigger: store.TriggerManual}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := b.get("/executions/x-other"); code != http.StatusNotFound {
		t.Fatalf("another project's execution: %d, want 404", code)
	}
}

// A live stream ends with its session: a logout elsewhere closes it.
func TestDashboardLiveStreamEndsAtLogout(t *testing.T) {
	d := newDashServer(t)
	b := d.browserAs(t, "viewer")
	resp, err := b.c.Get(d.base + "/live/overview")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		got <- string(raw)
	}()
	time.Sleep(200 * time.Millisecond) // some html events
	if code, _, _ := b.post("/logout", url.Values{"key": {b.actionKey()}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	d.skew.Add(int64(6 * time.Second)) // past the stream's next session check
	select {
	case stream := <-got:
		if !strings.Contains(stream, "event: html\n") || !strings.HasSuffix(stream, "event: end\ndata: session ended\n\n") {
			t.Fatalf("stream:\n%s", stream)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the live stream of a logged-out session goes on")
	}
}

// Attack: one session (or a few) opens live streams until the daemon runs
// out of connections and store reads. Each session holds at most
// MaxSessionStreams, all together at most MaxStreams; the next is refused
// with 429, and a stream closed by its client frees its place.
func TestDashboardLiveStreamsAreBounded(t *testing.T) {
	d := newDashServerWith(t, func(h *dashboard.Handler) { h.MaxSessionStreams = 3; h.MaxStreams = 5 })
	open := func(b *browser) *http.Response {
		t.Helper()
		resp, err := b.c.Get(d.base + "/live/overview")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	a := d.browserAs(t, "viewer")
	var held []*http.Response
	for i := 0; i < 3; i++ {
		resp := open(a)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of a session: %d", i+1, resp.StatusCode)
		}
		held = append(held, resp)
	}
	over := open(a)
	if over.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a session's 4th stream: %d, want 429", over.StatusCode)
	}
	body, _ := io.ReadAll(io.LimitReader(over.Body, 1<<16))
	if over.StatusCode != http.StatusTooManyRequests || over.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many live views") {
		t.Fatalf("a session's 4th stream: %d %q\n%s", over.StatusCode, over.Header.Get("Retry-After"), body)
	}
	// Another session has its own 3, within the 5 in all.
	b := d.browserAs(t, "deployer")
	for i := 0; i < 2; i++ {
		if resp := open(b); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of another session: %d", i+1, resp.StatusCode)
		}
	}
	if resp := open(d.browserAs(t, "admin")); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the 6th stream in all: %d, want 429", resp.StatusCode)
	}
	// The client closes one: its place is free again.
	held[0].Body.Close()
	waitFor(t, "a closed stream's place to be free", func() bool {
		resp, err := a.c.Get(d.base + "/live/overview")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Attack: a GET of a login link must not use it. A link previewer (chat
// unfurl, mail scanner, prefetch) would burn it, and a page of another
// site could navigate a browser to an attacker's link and log it in as the
// attacker (login CSRF): what the victim then approves or types is the
// attacker's to see. Only the page's form, posted with the daemon's
// Origin, uses the link.
func TestDashboardLoginLinkIsUsedOnlyByItsForm(t *testing.T) {
	d := newDashServer(t)
	l, err := dashboard.NewLink(context.Background(), d.Store, auth.Identity{Name: "owner", Role: auth.RoleAdmin},
		strings.TrimPrefix(d.base, "http://"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(l.URL, d.base)
	b := d.browser(t)
	for i := 0; i < 2; i++ { // a previewer, then the person
		code, body, h := b.get(path)
		if code != http.StatusOK || h.Get("Set-Cookie") != "" || b.sessionCookie() != nil || !linkFormRE.MatchString(body) {
			t.Fatalf("GET %s: %d, Set-Cookie %q; want the link's form and no session\n%s", path, code, h.Get("Set-Cookie"), body)
		}
	}
	secret := linkFormRE.FindStringSubmatch(func() string { _, body, _ := b.get(path); return body }())[1]
	// Posted from another site, or by a client that hides where it comes from: refused, the link kept.
	foreign := d.browser(t)
	foreign.origin = "http://evil.example"
	if code, _, _ := foreign.post("/login", url.Values{"link": {secret}}); code != http.StatusForbidden {
		t.Fatalf("a cross-site post of the link: %d, want 403", code)
	}
	foreign.origin = ""
	if code, _, _ := foreign.post("/login", url.Values{"link": {secret}}); code != http.StatusForbidden {
		t.Fatalf("a post of the link without Origin: %d, want 403", code)
	}
	if code, _, h := b.post("/login", url.Values{"link": {secret}}); !loggedIn(code, h) {
		t.Fatalf("the link's form: %d %s", code, h.Get("Location"))
	}
	if code, body, _ := b.get("/audit"); code != http.StatusOK || !strings.Contains(body, "owner") {
		t.Fatalf("the link's session: %d", code)
	}
}

// Attack: a browser left logged in (a shared machine, a stolen cookie of a
// session nobody uses) stays a key to production for the whole 12 hours.
// A session not used for auth.SessionIdle ends; using it keeps it alive,
// up to its 12 hours.
func TestDashboardSessionEndsWhenIdle(t *testing.T) {
	d := newDashServer(t)
	b := d.browserAs(t, "deployer")
	step := auth.SessionIdle - time.Minute
	for i := 1; i <= 3; i++ { // used every 59 minutes: still logged in after 3 hours
		d.skew.Add(int64(step))
		if code, _, h := b.get("/"); code != http.StatusOK {
			t.Fatalf("after %s of use: %d %s", time.Duration(i)*step, code, h.Get("Location"))
		}
	}
	d.skew.Add(int64(auth.SessionIdle))
	if code, _, h := b.get("/"); code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Fatalf("a session idle for %s: %d %s, want the login form", auth.SessionIdle, code, h.Get("Location"))
	}
	// Its forms are refused too, and using it again does not revive it.
	if code, _, _ := b.post("/environments/production/stop", url.Values{"key": {"x"}}); code != http.StatusUnauthorized {
		t.Fatalf("a form of the idle session: %d, want 401", code)
	}
	d.skew.Store(0)
	// The 12 hours still hold for a session in use.
	c := d.browserAs(t, "viewer")
	for i := 0; i < 12; i++ {
		d.skew.Add(int64(time.Hour - time.Minute))
		c.get("/")
	}
	d.skew.Add(int64(time.Hour))
	if code, _, _ := c.get("/"); code != http.StatusSeeOther {
		t.Fatalf("a session used past %s: %d", auth.SessionTTL, code)
	}
}

// Attack: an anonymous client posts wrong tokens to the login form without
// end; each failure is an audit entry (the log grows without bound) and a
// guess. After 10 failures within a minute an address is refused (429,
// not audited), even with a valid token, until the minute has passed.
func TestDashboardFailedLoginsAreLimited(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	failedLogins := func() int {
		es, err := d.Store.ListAudit(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Action == "login" && e.Outcome != auth.OutcomeOK {
				n++
			}
		}
		return n
	}
	b := d.browser(t)
	for i := 0; i < 10; i++ {
		if code, _, _ := b.post("/login", url.Values{"token": {auth.TokenPrefix + strings.Repeat("A", 52)}}); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, code)
		}
	}
	for _, form := range []url.Values{
		{"token": {"guess"}}, {"link": {"cutover-link_" + strings.Repeat("B", 52)}}, {"token": {d.tokens["admin"]}},
	} {
		code, body, h := b.post("/login", form)
		if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(body, "too many failed logins") || b.sessionCookie() != nil {
			t.Fatalf("a login after 10 failures: %d %q, session %v\n%s", code, h.Get("Retry-After"), b.sessionCookie(), body)
		}
	}
	if n := failedLogins(); n != 10 {
		t.Fatalf("%d failed logins audited, want the 10 before the limit", n)
	}
	d.skew.Add(int64(time.Minute + time.Second))
	b.login(d.tokens["admin"])
}

// Attack (IDOR): the daemon's store holds other projects' executions too.
// An approver of this project posts the approval form of another
// project's execution, its evidence page, and its live log: nothing is
// decided or shown, and the refused decision is audited as this approver's.
func TestDashboardRefusesAnotherProjectsExecution(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	x := store.Execution{ID: "x-foreign", Project: "other", Pipeline: "main", Trigger: store.TriggerManual,
		Branch: "main", Commit: strings.Repeat("b", 40), Status: store.ExecutionWaiting}
	if err := d.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.RequestApproval(ctx, store.Approval{Execution: x.ID, Stage: "prod", Action: "approve",
		Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b := d.browserAs(t, "approver")
	key := b.actionKey()
	for _, act := range []string{"approve", "reject"} {
		code, _, h := b.post("/executions/"+x.ID+"/"+act, url.Values{"key": {key}, "comment": {"lgtm"}})
		if code != http.StatusSeeOther {
			t.Fatalf("%s of another project's execution: %d", act, code)
		}
		if _, body, _ := b.get(h.Get("Location")); !strings.Contains(body, act+" failed") {
			t.Fatalf("%s of another project's execution: no failure shown\n%s", act, body)
		}
	}
	if ap := d.approval(t, x.ID); ap.Status != store.ApprovalPending || ap.DecidedBy != "" {
		t.Fatalf("another project's approval was decided: %+v", ap)
	}
	for _, p := range []string{"/executions/" + x.ID + "/approval", "/executions/" + x.ID, "/live/executions/" + x.ID + "/log"} {
		if code, _, _ := b.get(p); code != http.StatusNotFound {
			t.Fatalf("GET %s of another project: %d, want 404", p, code)
		}
	}
	es, err := d.Store.ListAudit(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, e := range es {
		if e.Actor == "approver" && (e.Action == auth.ActionApprove || e.Action == auth.ActionReject) && e.Target == x.ID && e.Outcome != auth.OutcomeOK {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("%d refused decisions audited, want 2: %+v", refused, es)
	}
}

// Attack (XSS): a branch name comes from whoever pushes, an execution's
// error from the build. Markup in them is shown as text in the pages and
// in the live fragments the script puts in place with innerHTML.
func TestDashboardEscapesPushedNamesInPagesAndLiveFragments(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	branch, msg := `<img src=x onerror=alert(1)>`, `"><svg onload=alert(2)>`
	x := store.Execution{ID: "x-xss", Project: d.Config.Project, Pipeline: "main", Trigger: store.TriggerManual,
		Branch: branch, Commit: strings.Repeat("c", 40), Status: store.ExecutionFailed, Error: msg}
	if err := d.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	b := d.browserAs(t, "viewer")
	check := func(where, body string) {
		t.Helper()
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "<svg onload") || !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Fatalf("%s: markup from a branch name or an error is not escaped:\n%s", where, body)
		}
	}
	for _, p := range []string{"/executions", "/executions/" + x.ID} {
		code, body, h := b.get(p)
		if code != http.StatusOK || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("GET %s: %d, CSP %q", p, code, h.Get("Content-Security-Policy"))
		}
		check(p, body)
	}
	for _, p := range []string{"/live/executions", "/live/executions/" + x.ID} {
		req, _ := http.NewRequest(http.MethodGet, d.base+p, nil)
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := b.c.Do(req.WithContext(reqCtx))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		buf := make([]byte, 0, 1<<16)
		for !strings.Contains(string(buf), "\n\n") && len(buf) < cap(buf) { // the first event
			n, err := resp.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		cancel()
		check(p, string(buf))
	}
}

// Attack (race): a one-time link posted by many browsers at once opens
// exactly one session.
func TestDashboardLoginLinkRaceOpensOneSession(t *testing.T) {
	d := newDashServer(t)
	l, err := dashboard.NewLink(context.Background(), d.Store, auth.Identity{Name: "owner", Role: auth.RoleAdmin},
		strings.TrimPrefix(d.base, "http://"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(l.URL)
	secret := u.Query().Get("link")
	const n = 8 // under the failed-login limit of one address
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, d.base+"/login", strings.NewReader(url.Values{"link": {secret}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", d.base)
			resp, err := d.browser(t).c.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	won := 0
	for c := range codes {
		switch c {
		case http.StatusSeeOther:
			won++
		case http.StatusForbidden:
		default:
			t.Fatalf("a concurrent use of the link: %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("%d sessions from one link, want 1", won)
	}
}

// A branch outside pipeline.trusted_branches runs as a pull request does
// (confined, no secrets, no deploys) though its trigger is a push: the
// pages say so, where before the run showed as any push, only its skipped
// stages telling why.
func TestDashboardMarksAnUntrustedBranchRun(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	untrusted := pipeline.QueuedExecution(pipeline.Trigger{Kind: pipeline.TriggerPush, Project: d.Config.Project, Branch: "feature",
		Commit: strings.Repeat("a", 40), UntrustedBranch: true}, time.Now())
	trusted := pipeline.QueuedExecution(pipeline.Trigger{Kind: pipeline.TriggerPush, Project: d.Config.Project, Branch: "main",
		Commit: strings.Repeat("b", 40)}, time.Now().Add(time.Second))
	for _, x := range []store.Execution{untrusted, trusted} {
		if err := d.Store.CreateExecution(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	b := d.browserAs(t, "viewer")
	_, list, _ := b.get("/executions")
	row := func(id string) string {
		i := strings.Index(list, `data-key="x-`+id+`"`)
		if i < 0 {
			t.Fatalf("no row for %s:\n%s", id, list)
		}
		end := strings.Index(list[i:], "</tr>")
		return list[i : i+end]
	}
	if !strings.Contains(row(untrusted.ID), "untrusted branch") || strings.Contains(row(trusted.ID), "untrusted branch") {
		t.Fatalf("the list marks the wrong run:\n%s\n%s", row(untrusted.ID), row(trusted.ID))
	}
	for x, want := range map[string]bool{untrusted.ID: true, trusted.ID: false} {
		if _, page, _ := b.get("/executions/" + x); strings.Contains(page, "untrusted branch") != want {
			t.Fatalf("the page of %s says untrusted branch: %v, want %v", x, !want, want)
		}
	}
}
