package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

// TestAPIRefusesBadBodies attacks the JSON bodies: each answer is a JSON
// error with the right code that names what is wrong.
func TestAPIRefusesBadBodies(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	dep := a.tokens["deployer"]
	huge := `{"revision": "` + strings.Repeat("x", maxBody) + `"}`
	for _, c := range []struct {
		name, path, body, ct string
		code                 int
		says                 string
	}{
		{"malformed", "/v1/environments/production/deploy", `{"revision": `, "", 400, "malformed JSON"},
		{"not an object", "/v1/environments/production/deploy", `["r-1"]`, "", 400, "must be"},
		{"null", "/v1/environments/production/deploy", `null`, "", 400, "the body is null, not a JSON object"},
		{"a string", "/v1/environments/production/deploy", `"r-1"`, "", 400, "the body is a string"},
		{"unknown field", "/v1/environments/production/deploy", `{"revision": "r-1", "force": true}`, "", 400, `unknown field "force"`},
		{"wrong type", "/v1/environments/production/deploy", `{"revision": 42}`, "", 400, `field "revision"`},
		{"missing field", "/v1/environments/production/deploy", `{}`, "", 400, `field "revision" is required`},
		{"empty body", "/v1/environments/production/deploy", ``, "", 400, "empty request body"},
		{"trailing data", "/v1/environments/production/deploy", `{"revision": "r-1"} {"revision": "r-2"}`, "", 400, "data after the JSON object"},
		{"huge", "/v1/environments/production/deploy", huge, "", 413, "over 65536 bytes"},
		{"not JSON", "/v1/environments/production/deploy", `revision=r-1`, "application/x-www-form-urlencoded", 415, "Content-Type: application/json"},
		{"no content type", "/v1/environments/production/deploy", `{"revision": "r-1"}`, "-", 415, "Content-Type"},
		{"unknown revision", "/v1/environments/production/deploy", `{"revision": "r-nope"}`, "", 404, `no revision "r-nope"`},
		{"trigger: unknown field", "/v1/executions", `{"branch": "main", "ref": "x"}`, "", 400, `unknown field "ref"`},
		{"trigger: no branch", "/v1/executions", `{"commit": "abc"}`, "", 400, `field "branch" is required`},
		{"trigger: huge", "/v1/executions", `{"branch": "` + strings.Repeat("m", maxBody) + `"}`, "", 413, "over"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := a.expect(t, req{method: "POST", path: c.path, token: dep, body: c.body, contentType: c.ct}, c.code)
			if msg, _ := out["error"].(string); !strings.Contains(msg, c.says) {
				t.Errorf("error %q does not say %q", msg, c.says)
			}
		})
	}
	// Approvals: a bad body is refused before any decision.
	a.expect(t, req{method: "POST", path: "/v1/executions/x-1/approve", token: a.tokens["approver"], body: `{"comment": 1}`}, 400)
	a.expect(t, req{method: "POST", path: "/v1/tokens", token: a.tokens["admin"], body: `{"name": "x", "role": "admin", "admin": true}`}, 400)
}

// TestAPIRevisionOfAnotherEnvironment: a revision is redeployed only to
// its own environment (or it would run staging's untested build in
// production by a typo).
func TestAPIRevisionOfAnotherEnvironment(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	rev := store.Revision{ID: "r-other", Project: a.Config.Project, Environment: "staging", Source: "test",
		Services: map[string]store.ServiceRevision{"hello": {Image: "127.0.0.1:5999/hello@sha256:" + strings.Repeat("b", 64), ConfigHash: "h"}}}
	if err := a.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	out := a.expect(t, req{method: "POST", path: "/v1/environments/production/deploy", token: a.tokens["deployer"], body: `{"revision": "r-other"}`}, 400)
	if msg, _ := out["error"].(string); !strings.Contains(msg, "belongs to "+a.Config.Project+"/staging") {
		t.Errorf("error %q", msg)
	}
	if ds, _ := a.Store.ListDeployments(ctx, a.Config.Project, "", 0); len(ds) != 0 {
		t.Fatalf("a refused deploy recorded deployments: %v", ds)
	}
}

// TestAPIOddPaths: traversal and odd names in {env} and {id} never reach
// another route or a handler with a name that is not the project's.
func TestAPIOddPaths(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/environments/../audit", 403},                // cleaned to /v1/audit: admin only
		{"GET", "/v1/environments/production/../../tokens", 403}, // idem
		{"GET", "/v1/environments/..%2F..%2Fetc%2Fpasswd", 404},
		{"GET", "/v1/environments/production%2Fdeploy", 404},
		{"GET", "/v1/environments/%00", 404},
		{"GET", "/v1/environments/" + strings.Repeat("p", 5000), 404},
		{"POST", "/v1/environments/..%2Fproduction/stop", 404},
		{"POST", "/v1/environments/production%00/deploy", 404},
		{"GET", "/v1/executions/..%2F..%2Faudit", 404},
		{"GET", "/v1/executions/x'%20OR%201=1--/evidence", 404},
		{"GET", "/v1/executions/nope/logs?follow=1", 404},
	} {
		hr, err := http.NewRequest(c.method, a.base+c.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Authorization", "Bearer "+a.tokens["deployer"])
		hr.Header.Set("Content-Type", "application/json")
		resp, err := noRedirect.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.want || err != nil || e.Error == "" {
			t.Errorf("%s %s: %d (%s, decode %v), want %d with a JSON error", c.method, c.path, resp.StatusCode, e.Error, err, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
	}
	// A method a route does not take: 405 naming the ones it does.
	a.expect(t, req{method: "TRACE", path: "/v1/executions", token: a.tokens["viewer"]}, 405)
	a.expect(t, req{method: "DELETE", path: "/v1/tokens/admin", token: a.tokens["admin"]}, 404)
	out := a.expect(t, req{method: "PUT", path: "/v1/environments/production/deploy", token: a.tokens["admin"], body: "{}"}, 405)
	if msg, _ := out["error"].(string); !strings.Contains(msg, "takes POST") {
		t.Errorf("405 error %q", msg)
	}
	if tok, _ := a.Store.ListTokens(context.Background(), false); len(tok) != 4 {
		t.Fatalf("tokens after the odd methods: %v", tok)
	}
	a.expect(t, req{method: "GET", path: "/v1/executions/x-1/logs?follow=2", token: a.tokens["viewer"]}, 400)
	a.expect(t, req{method: "GET", path: "/v1/executions/x-1/logs?after=-1", token: a.tokens["viewer"]}, 400)
}

// TestAPIEvidenceAndFollowedLog: an approver sees the evidence before the
// decision; a followed log streams the execution's lines and ends when it
// finishes.
func TestAPIEvidenceAndFollowedLog(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	x := a.trigger(t, "deployer")

	ev := a.expect(t, req{method: "GET", path: "/v1/executions/" + x.ID + "/evidence", token: a.tokens["viewer"]}, 200)
	aps, _ := ev["approvals"].([]any)
	if len(aps) != 1 {
		t.Fatalf("evidence: %v", ev)
	}
	ap := aps[0].(map[string]any)
	evidence, _ := ap["evidence"].(map[string]any)
	if ap["status"] != "pending" || evidence["commit"] != x.Commit || evidence["environment"] != "production" {
		t.Fatalf("evidence before the decision: %v", ap)
	}

	// Lines written as the engine writes them (masked before they are stored).
	if err := a.Store.AppendLog(ctx, x.ID, "probe", []string{"waiting for an approver", "token ***"}); err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodGet, a.base+"/v1/executions/"+x.ID+"/logs?follow=1", nil)
	hr.Header.Set("Authorization", "Bearer "+a.tokens["viewer"])
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	type event struct{ name, id, data string }
	events := make(chan event, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					events <- e
				}
				e = event{}
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				e.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	next := func() event {
		t.Helper()
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the stream ended early")
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
		return event{}
	}
	// The engine's own lines come first; ours follow, each with its Seq as id.
	var seen []string
	for len(seen) < 2 {
		e := next()
		var l store.LogLine
		if e.name != "line" || json.Unmarshal([]byte(e.data), &l) != nil || e.id != strconv.FormatInt(l.Seq, 10) {
			t.Fatalf("not a line event: %+v", e)
		}
		if l.Action == "probe" {
			seen = append(seen, l.Line)
		}
	}
	if seen[0] != "waiting for an approver" || seen[1] != "token ***" {
		t.Fatalf("lines: %q", seen)
	}
	// A line written while following arrives too.
	if err := a.Store.AppendLog(ctx, x.ID, "probe", []string{"approver asked"}); err != nil {
		t.Fatal(err)
	}
	for {
		e := next()
		if e.name != "line" {
			t.Fatalf("live line: %+v", e)
		}
		if strings.Contains(e.data, "approver asked") {
			break
		}
	}
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/approve", token: a.tokens["approver"], body: `{"comment":"seen the evidence"}`}, 200)
	e := next()
	for e.name == "line" { // the engine's lines of the approval
		e = next()
	}
	if e.name != "end" || !strings.Contains(e.data, `"status":"succeeded"`) {
		t.Fatalf("end of the stream: %+v", e)
	}
	if _, ok := <-events; ok {
		t.Fatal("events after the end")
	}

	// Without follow: the lines as JSON, after a Seq.
	resp2, err := http.DefaultClient.Do(func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, a.base+"/v1/executions/"+x.ID+"/logs?after=1", nil)
		r.Header.Set("Authorization", "Bearer "+a.tokens["viewer"])
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var lines []store.LogLine
	if err := json.NewDecoder(resp2.Body).Decode(&lines); err != nil || len(lines) < 2 || lines[0].Seq != 2 {
		t.Fatalf("logs after 1: %v %v", lines, err)
	}
	ev = a.expect(t, req{method: "GET", path: "/v1/executions/" + x.ID + "/evidence", token: a.tokens["viewer"]}, 200)
	if ap := ev["approvals"].([]any)[0].(map[string]any); ap["status"] != "approved" || ap["decided_by"] != "approver" {
		t.Fatalf("evidence after the decision: %v", ap)
	}
}

// A followed log is bounded: past followMax it ends with a "timeout"
// event that says where to resume, even while the execution still waits.
func TestAPIFollowedLogIsBounded(t *testing.T) {
	old := followMax
	followMax = 400 * time.Millisecond
	defer func() { followMax = old }()
	a := newAuthServer(t, "{ required: true }", nil)
	x := a.trigger(t, "deployer")
	hr, _ := http.NewRequest(http.MethodGet, a.base+"/v1/executions/"+x.ID+"/logs?follow=1", nil)
	hr.Header.Set("Authorization", "Bearer "+a.tokens["viewer"])
	began := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body) // ends when the daemon ends the stream
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("the stream lasted %s", took)
	}
	if !strings.Contains(string(b), "event: timeout\ndata: ") || !strings.Contains(string(b), `"status":"waiting"`) || !strings.Contains(string(b), `?follow=1&after=`) {
		t.Fatalf("stream:\n%s", b)
	}
}

// Attack: a token revoked while it follows a log kept reading it for up to
// followMax (an hour). The stream re-checks its token every followRecheck
// and ends with an "error" event once it is revoked.
func TestAPIFollowedLogEndsWhenItsTokenIsRevoked(t *testing.T) {
	old := followRecheck
	followRecheck = 200 * time.Millisecond
	defer func() { followRecheck = old }()
	a := newAuthServer(t, "{ required: true }", map[string]string{"reader": "viewer"})
	x := a.trigger(t, "deployer")
	hr, _ := http.NewRequest(http.MethodGet, a.base+"/v1/executions/"+x.ID+"/logs?follow=1", nil)
	hr.Header.Set("Authorization", "Bearer "+a.tokens["reader"])
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("follow: %d", resp.StatusCode)
	}
	time.Sleep(300 * time.Millisecond) // a live token passes its checks
	if _, err := auth.RevokeToken(context.Background(), a.Store, "reader"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	b, err := io.ReadAll(resp.Body) // ends when the daemon ends the stream
	if err != nil {
		t.Fatalf("the stream of a revoked token goes on: %v\n%s", err, b)
	}
	if took := time.Since(revoked); took > 3*time.Second || !strings.Contains(string(b), "event: error\ndata: ") || !strings.Contains(string(b), "revoked") {
		t.Fatalf("after %s, stream:\n%s", took, b)
	}
}

// Attack: one token opened followed logs without bound, each holding a
// connection and a store poll for up to an hour. At most followPerToken per
// token are open at once (429 beyond, in the API's JSON error shape); other
// tokens are not starved by it, and an ended stream frees its place.
func TestAPIFollowedLogsAreCappedPerToken(t *testing.T) {
	oldPer, oldTotal := followPerToken, followTotal
	followPerToken, followTotal = 3, 5
	defer func() { followPerToken, followTotal = oldPer, oldTotal }()
	a := newAuthServer(t, "{ required: true }", map[string]string{"greedy": "viewer", "other": "viewer", "third": "viewer"})
	x := a.trigger(t, "deployer")
	client := &http.Client{Timeout: 10 * time.Second}
	follow := func(token string) *http.Response {
		t.Helper()
		hr, _ := http.NewRequest(http.MethodGet, a.base+"/v1/executions/"+x.ID+"/logs?follow=1", nil)
		hr.Header.Set("Authorization", "Bearer "+a.tokens[token])
		resp, err := client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	for range 3 {
		r := follow("greedy")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("follow within the cap: %d", r.StatusCode)
		}
		open = append(open, r)
	}
	r := follow("greedy")
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"error"`) || !strings.Contains(string(b), "at most 3 per token") {
		t.Fatalf("fourth follow of one token: %d %q %s", r.StatusCode, r.Header.Get("Retry-After"), b)
	}
	// Another token still follows; the total cap (5) holds across tokens.
	for range 2 {
		r := follow("other")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("another token's follow: %d", r.StatusCode)
		}
		open = append(open, r)
	}
	if r := follow("third"); r.StatusCode != http.StatusTooManyRequests {
		r.Body.Close()
		t.Fatalf("follow past the total cap: %d", r.StatusCode)
	} else {
		r.Body.Close()
	}
	// Ending a stream gives its place back (the daemon notices the closed
	// connection at its next write: a beat or a poll).
	open[0].Body.Close()
	open = open[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := follow("greedy")
		if r.StatusCode == http.StatusOK {
			open = append(open, r)
			break
		}
		r.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("an ended stream did not free its place: %d", r.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
