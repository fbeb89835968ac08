package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/cutoverdev/cutover/internal/dashboard"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// sseEvents parses a Server-Sent Events stream as a browser's EventSource
// does (WHATWG HTML §9.2.6): lines end with CRLF, LF or a lone CR; a blank
// line dispatches the event buffered so far.
func sseEvents(stream string) (events [][2]string) {
	stream = strings.ReplaceAll(stream, "\r\n", "\n")
	stream = strings.ReplaceAll(stream, "\r", "\n")
	typ, data, has := "", []string(nil), false
	for _, line := range strings.Split(stream, "\n") {
		if line == "" {
			if has {
				events = append(events, [2]string{cmpOr(typ, "message"), strings.Join(data, "\n")})
			}
			typ, data, has = "", nil, false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data, has = append(data, value), true
		}
	}
	return events
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Attack (SSE framing): a pull request's JUnit report is untrusted; a test
// case named with &#13; reached the live part's "html" event raw, and
// EventSource ends a line at a lone CR: the report's author sent an html
// event of their own ("EXECUTION SUCCEEDED") and an "end" that froze the
// page on it. The live stream now sends CR as LF.
func TestAttackLiveFragmentCRInjectsSSEEvents(t *testing.T) {
	d := newDashServer(t)
	ctx := context.Background()
	report := `<testsuite name="unit"><testcase name="TestX&#13;&#13;event: html&#13;data: EXECUTION SUCCEEDED - all 412 tests passed&#13;&#13;event: end&#13;data: done&#13;&#13;"><failure message="boom"/></testcase></testsuite>`
	suites, err := pipeline.ParseJUnit([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	stages, _ := json.Marshal([]pipeline.StageState{{Name: "test", Status: pipeline.StatusFailed, Started: &now, Finished: &now,
		Actions: []pipeline.ActionState{{Name: "unit", Kind: "test", Status: pipeline.StatusFailed, Summary: "1 of 1 tests failed", Reports: suites}}}})
	x := store.Execution{ID: "x-pr-sse", Project: d.Config.Project, Pipeline: "main", Trigger: store.TriggerPullRequest,
		Branch: "feature", Commit: strings.Repeat("a", 40), Status: store.ExecutionRunning, Stages: stages}
	if err := d.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	b := d.browserAs(t, "viewer")
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, d.base+"/live/executions/"+x.ID, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 0, 1<<16)
	for !strings.Contains(string(buf), "\n\n") && len(buf) < cap(buf) { // the server's first event
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	evs := sseEvents(string(buf))
	if len(evs) != 1 || evs[0][0] != "html" || !strings.Contains(evs[0][1], "EXECUTION SUCCEEDED") {
		t.Fatalf("a browser reads %d events from the server's first, want the one html event with the test's name in it: %q", len(evs), evs)
	}
}

// Attack (another project's execution): the store may hold several
// projects; the API's reads of one execution served another project's
// record, log and approval evidence to any viewer.
func TestAttackAPIReadsAnotherProjectsExecution(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	x := store.Execution{ID: "x-foreign", Project: "other", Pipeline: "main", Trigger: store.TriggerManual,
		Branch: "main", Commit: strings.Repeat("b", 40), Status: store.ExecutionWaiting}
	if err := a.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	if err := a.Store.AppendLog(ctx, x.ID, "build", []string{"other project's build output"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Store.RequestApproval(ctx, store.Approval{Execution: x.ID, Stage: "prod", Action: "approve",
		Expires: time.Now().Add(time.Hour), Evidence: json.RawMessage(`{"environment":"prod","commit":"bbbb"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/executions/" + x.ID, "/v1/executions/" + x.ID + "/logs", "/v1/executions/" + x.ID + "/logs?follow=1", "/v1/executions/" + x.ID + "/evidence"} {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second) // a followed log of a waiting execution never ends
		defer cancel()
		hr, _ := http.NewRequestWithContext(rctx, http.MethodGet, a.base+p, nil)
		hr.Header.Set("Authorization", "Bearer "+a.tokens["viewer"])
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "other project") || strings.Contains(string(body), "bbbb") {
			t.Errorf("GET %s of another project's execution: %d %s", p, resp.StatusCode, body)
		}
	}
}

// Attack (a credential in a log): a build line printing a cutover token
// that no pipeline secret names was stored and served whole by the API's
// log, its page and its followed stream (the dashboard masked it). The
// pipeline now stores it masked, and the API masks what was stored before.
func TestAttackAPILogShowsATokenTheDashboardMasks(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	x := store.Execution{ID: "x-leak", Project: a.Config.Project, Pipeline: "main", Trigger: store.TriggerManual,
		Branch: "main", Commit: strings.Repeat("a", 40), Status: store.ExecutionFailed}
	if err := a.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	leak := "cutover_" + strings.Repeat("Q", 52)
	if err := a.Store.AppendLog(ctx, x.ID, "unit", []string{"deploying with CUTOVER_TOKEN=" + leak}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/executions/" + x.ID + "/logs", "/v1/executions/" + x.ID + "/logs?follow=1"} {
		hr, _ := http.NewRequest(http.MethodGet, a.base+p, nil)
		hr.Header.Set("Authorization", "Bearer "+a.tokens["viewer"])
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if strings.Contains(string(body), leak) || !strings.Contains(string(body), "CUTOVER_TOKEN=cutover_***") {
			t.Errorf("viewer GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
}

// Attack (a host's cookies reach every port): logged in to the dashboard
// at 127.0.0.1:PORT, the browser sent the session cookie to an app on
// another port of 127.0.0.1 too. The app's server then read a page for
// its CSRF token, posted /approve with the dashboard's Origin and approved
// a production deployment as the admin. Now a form needs the session's
// action key, which the login hands to the page's script in the URL's
// fragment (never sent) and no page holds: the cookie still reads pages,
// but acts on nothing.
func TestAttackSessionCookieFromAnotherPortCannotAct(t *testing.T) {
	d := newDashServer(t)
	x := d.trigger(t, "deployer")
	admin := d.browserAs(t, "admin")
	got := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(dashboard.CookieName); err == nil {
			got <- c.Value
		}
		io.WriteString(w, "staging app")
	}))
	defer app.Close()
	resp, err := admin.c.Get(app.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var stolen string
	select {
	case stolen = <-got:
	default:
		t.Fatal("the cookie jar did not send the dashboard's cookie to another port of the host: this test no longer attacks anything")
	}
	thief := d.browser(t)
	u, _ := url.Parse(d.base)
	thief.c.Jar.SetCookies(u, []*http.Cookie{{Name: dashboard.CookieName, Value: stolen, Path: "/"}})
	for _, p := range []string{"/", "/executions/" + x.ID + "/approval"} {
		if code, body, _ := thief.get(p); code != http.StatusOK || strings.Contains(body, admin.key) {
			t.Fatalf("GET %s with the stolen cookie: %d, or the page holds the action key", p, code)
		}
	}
	for _, key := range []string{"", thief.actionKey(), strings.Repeat("A", 52)} {
		code, _, _ := thief.post("/executions/"+x.ID+"/approve", url.Values{"key": {key}, "comment": {"lgtm"}})
		if ap := d.approval(t, x.ID); code != http.StatusForbidden || ap.Status != store.ApprovalPending {
			t.Fatalf("the stolen cookie with key %q approved: %d, approval %s by %s", key, code, ap.Status, ap.DecidedBy)
		}
	}
	// The admin's own browser, with the key its login left, still acts.
	if code, _, _ := admin.post("/executions/"+x.ID+"/approve", url.Values{"key": {admin.key}, "comment": {"lgtm"}}); code != http.StatusSeeOther {
		t.Fatalf("the admin's approval: %d", code)
	}
	if ap := d.approval(t, x.ID); ap.Status != store.ApprovalApproved {
		t.Fatalf("approval %s after the admin's", ap.Status)
	}
}

// Attack (found by a review): the routes that act answered another
// project's execution or revision (in a shared store) differently from a
// missing one, naming that project: an enumeration of IDs read the
// store's other projects. They answer as for a missing one now.
func TestAttackActingRoutesNameNoOtherProject(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	const other = "secret-payroll"
	x := store.Execution{ID: "x-20261207-050000-abcd", Project: other, Pipeline: "main", Trigger: store.TriggerManual,
		Branch: "main", Commit: strings.Repeat("c", 40), Status: store.ExecutionWaiting}
	if err := a.Store.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	if err := a.Store.RequestApproval(ctx, store.Approval{Execution: x.ID, Stage: "prod", Action: "approve",
		Expires: time.Now().Add(time.Hour), Evidence: json.RawMessage(`{"environment":"production"}`)}); err != nil {
		t.Fatal(err)
	}
	rev := store.Revision{ID: "r-0123456789ab", Project: other, Environment: "production",
		Services: map[string]store.ServiceRevision{"hello": {Image: "127.0.0.1:5999/hello@sha256:" + strings.Repeat("0", 64), ConfigHash: "h"}},
		Source:   "commit cccccccccccc", CreatedAt: time.Now()}
	if err := a.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, token, body, missing string
	}{
		{"/v1/executions/" + x.ID + "/cancel", "deployer", `{}`, "/v1/executions/x-20261207-050000-ffff/cancel"},
		{"/v1/executions/" + x.ID + "/approve", "approver", `{}`, "/v1/executions/x-20261207-050000-ffff/approve"},
		{"/v1/environments/production/deploy", "deployer", `{"revision":"` + rev.ID + `"}`, ""},
		{"/v1/environments/production/rollback", "deployer", `{"to":"` + rev.ID + `"}`, ""},
	} {
		code, out := a.do(t, req{method: http.MethodPost, path: c.path, token: a.tokens[c.token], body: c.body})
		msg, _ := out["error"].(string)
		missingPath, missingBody := c.path, strings.ReplaceAll(c.body, rev.ID, "r-ffffffffffff")
		if c.missing != "" {
			missingPath = c.missing
		}
		mcode, _ := a.do(t, req{method: http.MethodPost, path: missingPath, token: a.tokens[c.token], body: missingBody})
		if code != mcode || code < 400 || strings.Contains(msg, other) {
			t.Errorf("POST %s of another project's: %d %q; a missing one: %d (want the same refusal, naming no other project)", c.path, code, msg, mcode)
		}
	}
}

// Attack (found by a review): a viewer's refused request still writes an
// audit entry whose target is the request's path segment as sent. With a
// CR, a newline and ANSI escapes in it, `cutover audit` printed a forged
// line on the admin's terminal (here: an admin creating a token) and
// erased the viewer's own. Stored fields are printable now.
func TestAttackAuditTargetCarriesNoControlCharacters(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	forged := "\r\x1b[2K" + time.Now().Format("2006-01-02 15:04:05") +
		"  admin            admin     api      127.0.0.1:40000        token create   backdoor                  ok\n"
	b, _ := json.Marshal(forged)
	for _, r := range []req{
		{method: http.MethodPost, path: "/v1/environments/" + url.PathEscape(forged) + "/deploy", token: a.tokens["viewer"], body: `{"revision":"x"}`},
		{method: http.MethodPost, path: "/v1/environments/" + url.PathEscape(forged) + "/stop", token: a.tokens["deployer"], body: `{}`},
		{method: http.MethodPost, path: "/v1/environments/production/deploy", token: a.tokens["deployer"], body: `{"revision":` + string(b) + `}`},
	} {
		if code, _ := a.do(t, r); code < 400 {
			t.Fatalf("%s %q: %d, want a refusal", r.method, r.path, code)
		}
	}
	entries, err := a.Store.ListAudit(context.Background(), time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		for field, v := range map[string]string{"target": e.Target, "outcome": e.Outcome} {
			if strings.IndexFunc(v, unicode.IsControl) >= 0 {
				t.Errorf("audit entry %d (%s by %s): %s holds control characters: %q", e.Seq, e.Action, e.Actor, field, v)
			}
		}
		if strings.Contains(e.Target, `\x1b[2K`) {
			seen++
		}
	}
	if seen != 3 {
		t.Errorf("%d of the 3 refusals are in the audit log with their target escaped", seen)
	}
}
